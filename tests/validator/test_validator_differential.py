"""Differential fuzz: sqlglot's reading against the engine's own reading, on mutated attack and legitimate SQL.

Mutations insert quotes, comment markers, escapes (``U&"..."``, ``E'...'``, dollar quotes), semicolons, non-ASCII
letters and fragments of other queries, where two parsers can disagree about where a string, a comment, an
identifier or a statement ends, or which function a name is. For every mutation:

- what the validator accepts with the engine's reading on, it also accepts with sqlglot's alone (the engine
  only adds refusals);
- what it accepts, an independent oracle over the engine's full parse tree finds harmless: one query, and
  only allowed functions (DuckDB: ``json_serialize_sql``, DuckDB's own parser; PostgreSQL: libpg_query through
  pglast, walked here without the validator's code);
- so where sqlglot's reading passes and the engine's reading would call a function that is not allowed (or
  see a second statement, or a write), the validator refuses.
"""

from __future__ import annotations

import logging

import duckdb
import pytest

from nexus_flight.core.errors import GatewayError
from nexus_flight.server.query.sql.readonly import validate
from nexus_flight.server.query.sql.rules import allowed_functions
from tests.validator.corpus import ATTACKS, LEGIT
from tests.validator.duckdb_oracle import DUCKDB_SYNTAX, duckdb_functions
from tests.validator.mutations import mutations as _mutations
from tests.validator.postgres_oracle import postgres_reading

_READS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _pool(dialect: str) -> list[str]:
    return [s for d, _, s in ATTACKS if d == dialect and len(s) < 500] + [s for d, s in LEGIT if d == dialect]


def _accepts(sql: str, dialect: str, engine: str | None) -> bool:
    try:
        validate(sql, dialect, engine=engine)
    except GatewayError:
        return False
    return True


# -- DuckDB --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duckdb_accepted_mutations_are_single_harmless_reads(seed):
    logging.getLogger("sqlglot").setLevel(logging.CRITICAL)
    con = duckdb.connect()
    allowed = allowed_functions("duckdb") | DUCKDB_SYNTAX
    accepted = 0
    for sql in _mutations(_pool("duckdb"), seed, 3000):
        with_engine = _accepts(sql, "duckdb", "duckdb")
        sqlglot_alone = _accepts(sql, "duckdb", None)
        assert sqlglot_alone or not with_engine, sql  # the engine's reading only adds refusals
        if not sqlglot_alone:
            continue
        try:
            statements = con.extract_statements(sql)
            called = duckdb_functions(con, sql)
        except duckdb.Error:
            continue  # DuckDB cannot parse it either: it would never run
        harmful = called is not None and {n for n in called if not n.isidentifier() or n in allowed} != called
        if not with_engine:
            continue
        accepted += 1
        types = [s.type for s in statements]
        if types != [duckdb.StatementType.CREATE, duckdb.StatementType.SELECT]:  # PIVOT's temporary ENUM
            assert len(types) == 1 and types[0] in _READS, (sql, types)
        assert not harmful, (sql, sorted(called - allowed))
    assert accepted > 100  # the mutations do reach DuckDB's parser


# -- PostgreSQL ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_postgres_accepted_mutations_are_single_harmless_reads(seed):
    logging.getLogger("sqlglot").setLevel(logging.CRITICAL)
    allowed = allowed_functions("postgres")
    accepted = 0
    pool = _pool("postgres") + [s for d, s in LEGIT if d == "duckdb" and "SELECT" in s[:10]][:40]
    for sql in _mutations(pool, seed, 2000):
        with_engine = _accepts(sql, "postgres", "postgres")
        sqlglot_alone = _accepts(sql, "postgres", None)
        assert sqlglot_alone or not with_engine, sql
        if not sqlglot_alone:
            continue
        reading = postgres_reading(sql)
        if reading is None:
            continue  # PostgreSQL cannot parse it either: it would never run
        kinds, called, dml = reading
        harmful = dml or bool(called - allowed) or len(kinds) != 1
        if not with_engine:
            continue
        accepted += 1
        assert kinds[0] in ("SelectStmt", "ExplainStmt", "VariableShowStmt"), (sql, kinds)
        assert not harmful, (sql, kinds, sorted(called - allowed))
    assert accepted > 50
