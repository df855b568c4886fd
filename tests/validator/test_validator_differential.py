"""Differential check against DuckDB's own parser: whatever the validator accepts, DuckDB reads as one query.

Mutations of the corpora (inserted quotes, comment markers, semicolons, fragments of other queries) probe the
places where two parsers can disagree about where a string, a comment or a statement ends.
"""

from __future__ import annotations

import logging
import random

import duckdb
import pytest

from backends.errors import GatewayError
from server.readonly import validate
from tests.validator.corpus import ATTACKS, LEGIT

_POOL = [s for d, _, s in ATTACKS if d == "duckdb" and len(s) < 500] + [s for d, s in LEGIT if d == "duckdb"]
_ALPHABET = list("()[]{};'\"`$-/*+.,:?=<>|&!@#\\ \n\tabcSELECTFROMDELETE0123eE")
_READS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _mutations(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        sql = rng.choice(_POOL)
        for _ in range(rng.randint(1, 4)):
            k = rng.randint(0, len(sql))
            roll = rng.random()
            if roll < 0.4:
                sql = sql[:k] + rng.choice(_ALPHABET) + sql[k:]
            elif roll < 0.7:
                sql = sql[:k] + sql[k + rng.randint(1, 5) :]
            else:
                sql = sql[:k] + rng.choice(_POOL)[: rng.randint(0, 40)] + sql[k:]
        yield sql


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_accepted_mutations_are_single_reads_for_duckdb(seed):
    logging.getLogger("sqlglot").setLevel(logging.CRITICAL)
    con = duckdb.connect()
    accepted = 0
    for sql in _mutations(seed, 2000):
        try:
            validate(sql, "duckdb")
        except GatewayError:
            continue
        accepted += 1
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error:
            continue  # DuckDB cannot parse it either: it would never run
        types = [s.type for s in statements]
        if sql.lstrip().upper().startswith("PIVOT") and types == [duckdb.StatementType.CREATE,
                                                                duckdb.StatementType.SELECT]:
            continue  # PIVOT without an IN list: DuckDB adds a temporary ENUM type of the pivot values
        assert len(types) == 1 and types[0] in _READS, (sql, types)
    assert accepted > 100  # the mutations do reach DuckDB's parser
