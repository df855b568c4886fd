"""Shared fixtures of the backend tests: TPC-H sf0.01 as parquet, loaded once into this run's PostgreSQL and MariaDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.flightsql_upstreams import running_roapi
from tests.support.snowflake_reference import running_fakesnow
from tests.support.tpch import TPCH_TABLES

TPCH_SCHEMA = "nexus_tpch"

#: Keys declared in the loaded copies, so introspection has something to find.
PRIMARY_KEYS = {
    "region": ["r_regionkey"],
    "nation": ["n_nationkey"],
    "customer": ["c_custkey"],
    "orders": ["o_orderkey"],
    "lineitem": ["l_orderkey", "l_linenumber"],
}
FOREIGN_KEYS = [
    ("nation", "n_regionkey", "region", "r_regionkey", "CASCADE", "RESTRICT"),
    ("customer", "c_nationkey", "nation", "n_nationkey", "NO ACTION", "SET NULL"),
    ("orders", "o_custkey", "customer", "c_custkey", "NO ACTION", "NO ACTION"),
]


def tpch_table(tpch_dir: Path, name: str) -> pa.Table:
    """One TPC-H table with plain string columns (the generator writes string_view)."""
    table = pq.read_table(tpch_dir / f"{name}.parquet")
    schema = pa.schema(
        [pa.field(f.name, pa.utf8() if pa.types.is_string_view(f.type) else f.type, f.nullable) for f in table.schema]
    )
    return table.cast(schema)


def row_counts(tpch_dir: Path) -> dict[str, int]:
    return {t: pq.ParquetFile(tpch_dir / f"{t}.parquet").metadata.num_rows for t in TPCH_TABLES}


def column_definitions(schema: pa.Schema, names: dict[pa.DataType, str], decimal: str) -> str:
    """The NOT NULL columns of a TPC-H table's CREATE TABLE: decimals as ``decimal(p,s)``, others by ``names``."""

    def ddl_type(t: pa.DataType) -> str:
        return f"{decimal}({t.precision},{t.scale})" if pa.types.is_decimal(t) else names[t]

    return ", ".join(f"{f.name} {ddl_type(f.type)} NOT NULL" for f in schema)


def primary_key_clause(table: str) -> str:
    """The ``, PRIMARY KEY (...)`` clause of a TPC-H table's CREATE TABLE (empty for tables without one)."""
    return f", PRIMARY KEY ({', '.join(PRIMARY_KEYS[table])})" if table in PRIMARY_KEYS else ""


def add_foreign_key(child: str, col: str, parent: str, pcol: str, on_update: str, on_delete: str) -> str:
    """The ALTER TABLE that declares one of ``FOREIGN_KEYS`` in the ``nexus_tpch`` schema."""
    return (
        f"ALTER TABLE {TPCH_SCHEMA}.{child} ADD CONSTRAINT fk_{child}_{parent} FOREIGN KEY ({col}) "
        f"REFERENCES {TPCH_SCHEMA}.{parent} ({pcol}) ON UPDATE {on_update} ON DELETE {on_delete}"
    )


@pytest.fixture(scope="session")
def duckdb_tpch(tpch_dir: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB views over the parquet files: the reference every backend's answers are compared with."""
    con = duckdb.connect()
    for t in TPCH_TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{tpch_dir / t}.parquet')")
    return con


# -- PostgreSQL ----------------------------------------------------------------------------------------------

_PG_TYPES = {pa.int64(): "bigint", pa.int32(): "integer", pa.utf8(): "text", pa.date32(): "date"}


@pytest.fixture(scope="session")
def pg_tpch(tpch_dir: Path, postgres_server) -> str:
    """Load TPC-H into PostgreSQL's ``nexus_tpch`` schema once per run."""
    import adbc_driver_postgresql.dbapi as pg

    expected = row_counts(tpch_dir)
    with pg.connect(postgres_server.uri(), autocommit=True) as con:
        with con.cursor() as cur:
            cur.execute(
                "SELECT c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON "
                "n.oid = c.relnamespace "
                f"WHERE n.nspname = '{TPCH_SCHEMA}' AND c.relkind = 'r'"
            )
            present = dict(cur.fetchall())
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {TPCH_SCHEMA}")
            cur.execute(f"CREATE SEQUENCE IF NOT EXISTS {TPCH_SCHEMA}.nexus_seq")
            if set(present) >= set(TPCH_TABLES) and all(_pg_count(cur, t) == n for t, n in expected.items()):
                return TPCH_SCHEMA
            cur.execute(f"DROP SCHEMA IF EXISTS {TPCH_SCHEMA} CASCADE")
            cur.execute(f"CREATE SCHEMA {TPCH_SCHEMA}")
            cur.execute(f"CREATE SEQUENCE {TPCH_SCHEMA}.nexus_seq")
            for t in TPCH_TABLES:
                data = tpch_table(tpch_dir, t)
                columns = column_definitions(data.schema, _PG_TYPES, "numeric")
                cur.execute(f"CREATE TABLE {TPCH_SCHEMA}.{t} ({columns}{primary_key_clause(t)})")
                cur.adbc_ingest(t, data, mode="append", db_schema_name=TPCH_SCHEMA)
            for child, col, parent, pcol, on_update, on_delete in FOREIGN_KEYS:
                cur.execute(f"ALTER TABLE {TPCH_SCHEMA}.{child} ALTER COLUMN {col} DROP NOT NULL")
                cur.execute(add_foreign_key(child, col, parent, pcol, on_update, on_delete))
            cur.execute(f"CREATE VIEW {TPCH_SCHEMA}.nation_names AS SELECT n_name FROM {TPCH_SCHEMA}.nation")
            cur.execute("ANALYZE")
    return TPCH_SCHEMA


def _pg_count(cur, table: str) -> int:
    cur.execute(f"SELECT count(*) FROM {TPCH_SCHEMA}.{table}")
    return cur.fetchone()[0]


# -- MariaDB -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mysql_tpch(tpch_dir: Path, mariadb_server) -> str:
    """Load TPC-H into MariaDB's ``nexus_tpch`` database once per run."""
    expected = row_counts(tpch_dir)
    con = mariadb_server.connect()
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {TPCH_SCHEMA}")
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (TPCH_SCHEMA,))
            present = {r[0] for r in cur.fetchall()}
            if present >= set(TPCH_TABLES):
                counts = {}
                for t in TPCH_TABLES:
                    cur.execute(f"SELECT count(*) FROM {TPCH_SCHEMA}.{t}")
                    counts[t] = cur.fetchone()[0]
                if counts == expected:
                    return TPCH_SCHEMA
            cur.execute(f"DROP DATABASE {TPCH_SCHEMA}")
            cur.execute(f"CREATE DATABASE {TPCH_SCHEMA} CHARACTER SET utf8mb4")
            for t in TPCH_TABLES:
                data = tpch_table(tpch_dir, t)
                columns = column_definitions(data.schema, _MY_TYPES, "decimal")
                cur.execute(f"CREATE TABLE {TPCH_SCHEMA}.{t} ({columns}{primary_key_clause(t)}) ENGINE=InnoDB")
                names = ", ".join(data.column_names)
                marks = ", ".join(["%s"] * data.num_columns)
                rows = [tuple(r.values()) for r in data.to_pylist()]
                for start in range(0, len(rows), 5000):
                    cur.executemany(
                        f"INSERT INTO {TPCH_SCHEMA}.{t} ({names}) VALUES ({marks})",
                        rows[start : start + 5000],
                    )
            for child, col, parent, pcol, on_update, on_delete in FOREIGN_KEYS:
                cur.execute(f"ALTER TABLE {TPCH_SCHEMA}.{child} MODIFY {col} bigint NULL")
                cur.execute(add_foreign_key(child, col, parent, pcol, on_update, on_delete))
            cur.execute(f"CREATE VIEW {TPCH_SCHEMA}.nation_names AS SELECT n_name FROM {TPCH_SCHEMA}.nation")
    finally:
        con.close()
    return TPCH_SCHEMA


_MY_TYPES = {pa.int64(): "bigint", pa.int32(): "int", pa.utf8(): "varchar(200)", pa.date32(): "date"}


# -- comparing results ---------------------------------------------------------------------------------------

#: Queries every SQL backend answers alike (standard SQL over the TPC-H tables).
TPCH_QUERIES = {
    "q1_pricing_summary": """
        SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price,
               count(*) AS count_order
        FROM {s}lineitem WHERE l_shipdate <= DATE '1998-09-02'
        GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus""",
    "q6_revenue": """
        SELECT sum(l_extendedprice * l_discount) AS revenue FROM {s}lineitem
        WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'
          AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24""",
    "join_nation_customers": """
        SELECT n.n_name, count(*) AS customers, sum(c.c_acctbal) AS balance
        FROM {s}customer c JOIN {s}nation n ON c.c_nationkey = n.n_nationkey
        GROUP BY n.n_name ORDER BY n.n_name""",
    "orders_rows": """
        SELECT o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate, o_comment
        FROM {s}orders WHERE o_orderkey < 2000 ORDER BY o_orderkey""",
}


def normalized(table: pa.Table) -> list[tuple]:
    """Rows as tuples of comparable Python values (decimals as their exact text scale-independent)."""
    from decimal import Decimal

    def norm(v):
        if isinstance(v, Decimal):
            return v.normalize()
        if isinstance(v, float):
            return round(v, 6)
        return v

    return [tuple(norm(v) for v in row.values()) for row in table.to_pylist()]


# -- Sources shared by the backend modules (each would otherwise start or build its own) ----------------------

#: The TPC-H tables ROAPI serves.
ROAPI_TABLES = ("region", "nation", "customer", "orders", "lineitem")


@pytest.fixture(scope="session")
def roapi(tpch_dir):
    """ROAPI serving the TPC-H parquet files."""
    with running_roapi({t: tpch_dir / f"{t}.parquet" for t in ROAPI_TABLES}) as uri:
        yield uri


@pytest.fixture(scope="session")
def sqlite_file(tmp_path_factory, tpch_dir) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "tpch.db"
    con = sqlite3.connect(path)
    for t in TPCH_TABLES:
        data = tpch_table(tpch_dir, t)
        columns = []
        for f in data.schema:
            kind = "REAL" if pa.types.is_decimal(f.type) else "INTEGER" if pa.types.is_integer(f.type) else "TEXT"
            columns.append(f"{f.name} {kind}")
        pk = primary_key_clause(t)
        fk = ""
        if t == "nation":
            fk = ", FOREIGN KEY (n_regionkey) REFERENCES region (r_regionkey) ON UPDATE CASCADE ON DELETE RESTRICT"
        con.execute(f"CREATE TABLE {t} ({', '.join(columns)}{pk}{fk})")
        rows = [
            tuple(
                float(v) if hasattr(v, "as_tuple") else v.isoformat() if hasattr(v, "isoformat") else v
                for v in r.values()
            )
            for r in data.to_pylist()
        ]
        con.executemany(f"INSERT INTO {t} VALUES ({', '.join('?' * data.num_columns)})", rows)
    con.execute("CREATE VIEW nation_names AS SELECT n_name FROM nation")
    con.commit()
    con.close()
    return path


@pytest.fixture(scope="session")
def fakesnow():
    with running_fakesnow() as port:
        yield port


def options(port, **extra):
    return {
        "account": "nexus",
        "username": "fake",
        "host": "127.0.0.1",
        "port": port,
        "protocol": "http",
        "database": "NEXUS_DB",
        "schema": "TPCH",
        **extra,
    }


@pytest.fixture(scope="session")
def loaded(fakesnow, tpch_dir):
    """Create NEXUS_DB.TPCH with nation and region through the driver directly (the backend cannot write)."""
    import adbc_driver_snowflake.dbapi as sf

    from nexus_flight.backends.snowflake import SnowflakeConfig, _db_kwargs

    kwargs = _db_kwargs(SnowflakeConfig(**{**options(fakesnow), "database": None, "schema": None}, password="x"))
    with sf.connect(db_kwargs=kwargs, autocommit=True) as con, con.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS NEXUS_DB")
        cur.execute("CREATE SCHEMA IF NOT EXISTS NEXUS_DB.TPCH")
        cur.execute(
            "CREATE OR REPLACE TABLE NEXUS_DB.TPCH.REGION (r_regionkey int PRIMARY KEY, "
            "r_name varchar, r_comment varchar)"
        )
        cur.execute(
            "CREATE OR REPLACE TABLE NEXUS_DB.TPCH.NATION (n_nationkey int PRIMARY KEY, n_name varchar, "
            "n_regionkey int, n_comment varchar)"
        )
        for name in ("region", "nation"):
            rows = tpch_table(tpch_dir, name).to_pylist()
            values = ", ".join(
                "("
                + ", ".join(str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'" for v in r.values())
                + ")"
                for r in rows
            )
            cur.execute(f"INSERT INTO NEXUS_DB.TPCH.{name.upper()} VALUES {values}")
        cur.execute(
            "CREATE OR REPLACE TABLE NEXUS_DB.TPCH.TYPES (i int, d number(12,2), f float, s "
            "varchar, b boolean, "
            "dt date, ts timestamp_ntz, v variant, bin binary)"
        )
        cur.execute(
            "INSERT INTO NEXUS_DB.TPCH.TYPES SELECT 7, 1234.56, 1.5, 'x', true, '2024-02-29'::date, "
            "'2024-01-01 12:00:00'::timestamp_ntz, parse_json('{\"k\": 1}'), to_binary('DEADBEEF', 'HEX')"
        )
    return fakesnow
