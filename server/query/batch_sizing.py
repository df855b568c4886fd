"""Result batches sized by bytes, for every source: no Flight message may exceed what clients accept.

Engines size their batches by rows (DuckDB 64k rows, drivers their own), so a batch of wide rows can exceed the
16 MiB most gRPC clients accept in one message (ADBC's Flight SQL driver: "received message larger than max").
Every result stream passes through ``within_message_limit``: a batch over half the limit is cut into slices
(zero-copy) of at most that size, and a single row over the limit itself is refused with an error naming the
limit and the client option that raises it, instead of a failure the client cannot explain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import pyarrow as pa

from nexus_flight.core.errors import LimitExceededError

#: What ADBC's Flight SQL driver and other gRPC clients accept in one message by default.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Room for the IPC message's metadata, validity bitmaps and padding next to a batch's buffers.
_MESSAGE_OVERHEAD = 64 * 1024


def message_bytes(batch: pa.RecordBatch) -> int:
    """The bytes of ``batch``'s buffers its IPC message carries (a dictionary travels in its own message)."""
    total = 0
    for column in batch.columns:
        total += column.indices.nbytes if pa.types.is_dictionary(column.type) else column.nbytes
    return total


def within_message_limit(batches: Iterable[pa.RecordBatch], max_message_bytes: int) -> Iterator[pa.RecordBatch]:
    """Yield ``batches``, each cut into slices of at most half ``max_message_bytes``.

    Raises:
        LimitExceededError: one row alone does not fit in a message of ``max_message_bytes``.

    """
    target = max(1, max_message_bytes // 2)
    for batch in batches:
        # ``nbytes`` (one C++ call) also counts dictionaries, so it is never below ``message_bytes``.
        if batch.nbytes <= target or message_bytes(batch) <= target:
            yield batch
        else:
            yield from _split(batch, target, max_message_bytes)


def _split(batch: pa.RecordBatch, target: int, limit: int) -> Iterator[pa.RecordBatch]:
    # Cut by the average row first; a slice still too big (rows of uneven width) is halved until it fits.
    step = max(1, math.ceil(batch.num_rows / math.ceil(message_bytes(batch) / target)))
    pending = [batch.slice(offset, step) for offset in reversed(range(0, batch.num_rows, step))]
    while pending:
        piece = pending.pop()
        size = message_bytes(piece)
        if size <= target:
            yield piece
        elif piece.num_rows > 1:
            half = piece.num_rows // 2
            pending += [piece.slice(half), piece.slice(0, half)]
        elif size + _MESSAGE_OVERHEAD <= limit:
            yield piece
        else:
            raise LimitExceededError(too_large(size, limit))


def too_large(size: int, limit: int) -> str:
    """What a client is told about a row that no message it accepts can carry."""
    return (
        f"a result row of {size / 1e6:.1f} MB does not fit in one Flight message: clients accept "
        f"{limit} bytes ({limit / 2**20:g} MiB) by default (the gateway's max_message_bytes). Raise the client's "
        "limit (ADBC: adbc.flight.sql.client_option.with_max_msg_size; pyarrow.flight: the "
        "grpc.max_receive_message_length generic option) and the gateway's max_message_bytes (--max-message-bytes "
        "or [server] max_message_bytes) together, or select less of the value"
    )
