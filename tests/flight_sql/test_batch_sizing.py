"""Result batches are cut by bytes in one place: every slice fits, rows stay in order, nothing is copied."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nexus_flight.core.errors import LimitExceededError
from nexus_flight.server.query.batch_sizing import message_bytes, within_message_limit

LIMIT = 1024 * 1024


def test_small_batches_pass_untouched():
    batch = pa.record_batch([pa.array(range(10))], names=["i"])
    assert list(within_message_limit([batch], LIMIT)) == [batch]


def test_uneven_rows_are_cut_until_every_slice_fits_in_order():
    # Mostly tiny rows and a few of 300 KB: cutting by the average alone would leave slices over the budget.
    values = ["x" * (300_000 if i % 997 == 0 else 10) for i in range(20_000)]
    batch = pa.record_batch([pa.array(values), pa.array(range(20_000))], names=["s", "i"])
    pieces = list(within_message_limit([batch], LIMIT))
    assert len(pieces) > 1
    assert all(message_bytes(p) <= LIMIT // 2 for p in pieces)
    assert pa.Table.from_batches(pieces).column("i").to_pylist() == list(range(20_000))
    # Slices share the engine's buffers.
    assert pieces[0].column(0).buffers()[2].address == batch.column(0).buffers()[2].address


def test_a_row_between_half_and_the_whole_limit_goes_alone():
    batch = pa.record_batch([pa.array(["a", "x" * (LIMIT * 3 // 4), "b"])], names=["s"])
    assert [p.num_rows for p in within_message_limit([batch], LIMIT)] == [1, 1, 1]


def test_a_row_over_the_limit_is_refused_naming_the_limit_and_the_client_option():
    batch = pa.record_batch([pa.array(["x" * (LIMIT + 1)])], names=["s"])
    with pytest.raises(LimitExceededError, match="1048576 bytes.*with_max_msg_size.*max_message_bytes"):
        list(within_message_limit([batch], LIMIT))


def test_a_dictionary_travels_in_its_own_message_so_only_indices_count():
    column = pa.array(["y" * (LIMIT * 2), "z"] * 4).dictionary_encode()
    batch = pa.record_batch([column], names=["d"])
    assert list(within_message_limit([batch], LIMIT)) == [batch]
