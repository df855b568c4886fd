"""The validator's two walks agree, and its per-thread parsers stay correct under concurrency.

Most trees are checked in one counting pass; only a tree whose counts could break a depth limit is walked again
keeping depths. These tests pin both sides of that threshold with small limits.
"""

from __future__ import annotations

import threading

import pytest

import nexus_flight.server.query.sql.readonly as readonly
from nexus_flight.core.errors import LimitExceededError
from nexus_flight.core.source import ValidationLimits
from nexus_flight.server.query.sql.readonly import validate
from tests.validator.tpch import TPCH_QUERIES


@pytest.fixture(autouse=True)
def _fresh():
    readonly.clear_cache()
    yield
    readonly.clear_cache()


def test_a_wide_but_shallow_tree_passes_the_depth_walk():
    """More nodes, operators and queries than the limits, none nested that deep: allowed."""
    sql = "SELECT " + ", ".join(f"{i} + {i} AS c{i}" for i in range(40)) + " UNION ALL SELECT " + ", ".join(
        f"{i} * {i}" for i in range(40)
    )
    limits = ValidationLimits(max_expression_depth=30, max_operator_depth=3, max_nesting=1)
    validate(sql, "duckdb", limits=limits, engine="duckdb")


@pytest.mark.parametrize(
    ("sql", "limits", "message"),
    [
        ("SELECT 1 + 2 + 3 + 4 + 5 AS s", ValidationLimits(max_operator_depth=3), "max_operator_depth=3"),
        ("SELECT * FROM (SELECT * FROM (SELECT 1 AS a) x) y", ValidationLimits(max_nesting=2), "max_nesting=2"),
        (
            "SELECT NOT NOT NOT NOT NOT NOT NOT NOT true AS b",
            ValidationLimits(max_expression_depth=6),
            "max_expression_depth=6",
        ),
    ],
)
def test_a_deep_tree_is_refused_by_the_depth_walk(sql, limits, message):
    with pytest.raises(LimitExceededError, match=message):
        validate(sql, "duckdb", limits=limits)


def test_threads_parsing_at_once_get_their_own_answers():
    """Each thread keeps its own sqlglot tokenizer and parser; concurrent cold validations give serial answers."""
    queries = [TPCH_QUERIES[n] for n in (1, 3, 5, 6, 10, 12, 14, 19)]
    expected = {q: validate(q, "duckdb").sql("duckdb") for q in queries}
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for round_ in range(30):
                readonly.clear_cache()
                q = queries[(offset + round_) % len(queries)]
                assert validate(q, "duckdb").sql("duckdb") == expected[q]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]
