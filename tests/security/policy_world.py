"""The same staff table on DuckDB, SQLite and PostgreSQL, each with a row filter and a column mask, behind a gateway.

Each engine also holds a *truth* copy, written through the engine's own client: the table as the policies show it
to bob (region EU only, ``ssn`` NULL). Whatever SQL bob sends through the gateway must answer exactly what the
same SQL answers on the truth copy, asked of the engine directly: that is the proof the policies hold.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.directory import history_observer
from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import add_role, add_user
from nexus_flight.catalog.vault import ENV_KEY, ENV_KEY_ID, ENV_OLD_KEYS
from nexus_flight.core.settings import AuthSettings, ServerSettings
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.app.security import start_security
from tests.security.conftest import bearer, sign_in
from tests.support import flightsql_raw as raw

PASSWORD = "policy-test-password-1"
ROWS = [
    (1, "ann", "EU", Decimal("91000.50"), "111-22-3333"),
    (2, "bo", "US", Decimal("72000.00"), "222-33-4444"),
    (3, "cy", "EU", Decimal("65000.25"), "333-44-5555"),
    (4, "di", "APAC", Decimal("88000.00"), "444-55-6666"),
    (5, "o'neil", "US", Decimal("50000.00"), None),
    (6, "eve", "EU", Decimal("70000.00"), None),
]
DEPTS = [("EU", "Europe"), ("US", "States"), ("APAC", "Asia")]
#: Who signs in: roles and the region attribute their row filter reads.
USERS = {
    "alice": (["admin"], {"region": "US"}),
    "bob": (["analyst"], {"region": "EU"}),
    "carol": (["analyst", "hr"], {"region": "EU"}),  # hr is exempt from the mask: raw ssn, EU rows
    "quinn": (["analyst"], {"region": "EU' OR '1'='1"}),  # an attribute that tries to break out of its literal
    "nora": (["analyst"], {}),  # no region at all
    "wide": (["everything"], {"region": "EU"}),  # may read whole sources, table functions included
    "ida": (["everything", "hr", "auditor"], {"region": "EU"}),  # exempt from every policy
}
ENGINES = ("duck", "lite", "pg", "files")
SCHEMA = {"duck": "main", "lite": "main", "pg": "public", "files": "main"}


def visible(rows=ROWS, region="EU", unmask=False):
    """The rows a user of ``region`` sees, masked unless ``unmask``."""
    return [r if unmask else (*r[:4], None) for r in rows if r[2] == region]


#: Views of each engine, by name: over the open depts table only, or reaching the filtered staff table.
OPEN_VIEWS = ("depts_v", "depts_vv", "staff_named_cte")
FILTERED_VIEWS = ("staff_v", "staff_vv", "depts_staff", "shadow_cte", "shadow_sub", "staff_self_cte")


def _ddl(engine: str) -> list[str]:
    decimal = "NUMERIC(10, 2)" if engine != "lite" else "NUMERIC"
    schema = "public" if engine == "pg" else "main"
    views = [
        "CREATE VIEW staff_v AS SELECT * FROM staff",
        f"CREATE VIEW depts_v AS SELECT region, upper(name) AS name, length(name) AS size, "
        f"CAST(1.5 AS {decimal}) AS rate FROM depts",
        "CREATE VIEW depts_vv AS SELECT name, size, rate FROM depts_v WHERE region <> 'US'",
        "CREATE VIEW staff_named_cte AS WITH staff AS (SELECT region, name FROM depts) SELECT * FROM staff",
        "CREATE VIEW staff_vv AS SELECT id, region FROM staff_v",
        "CREATE VIEW depts_staff AS SELECT d.name, s.id FROM depts d JOIN staff s ON s.region = d.region",
        "CREATE VIEW shadow_cte AS WITH depts AS (SELECT id, region FROM staff) SELECT * FROM depts",
        "CREATE VIEW shadow_sub AS SELECT depts.id FROM (SELECT id, region FROM staff) AS depts",
    ]
    if engine == "lite":  # SQLite reads a CTE naming itself as a circular reference: a view of the table instead
        views.append("CREATE VIEW staff_self_cte AS SELECT id, region FROM staff_v")
    else:
        views.append(f"CREATE VIEW staff_self_cte AS WITH staff AS (SELECT id, region FROM {schema}.staff) "
                     "SELECT * FROM staff")
    if engine == "duck":
        views += ["CREATE MACRO twice(x) AS x * 2",
                  "CREATE VIEW depts_udf AS SELECT region, twice(1) AS n FROM depts",
                  "CREATE VIEW numbers_v AS SELECT * FROM range(3)"]
    if engine == "pg":
        views += ["CREATE FUNCTION twice(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'",
                  "CREATE VIEW depts_udf AS SELECT region, twice(1) AS n FROM depts",
                  "CREATE VIEW stats_v AS SELECT attname FROM pg_stats"]
    return [f"CREATE TABLE staff (id INTEGER, name VARCHAR(40), region VARCHAR(10), salary {decimal}, "
            "ssn VARCHAR(20))",
            "CREATE TABLE depts (region VARCHAR(10), name VARCHAR(40))", *views]


def _fill(con, engine: str, staff_rows) -> None:
    mark = "%s" if engine == "pg" else "?"
    for statement in _ddl(engine):
        con.execute(statement)
    cast = str if engine == "lite" else (lambda v: v)
    for row in staff_rows:
        values = (*row[:3], None if row[3] is None else cast(row[3]), row[4])
        con.execute(f"INSERT INTO staff VALUES ({', '.join([mark] * 5)})", values)
    for row in DEPTS:
        con.execute(f"INSERT INTO depts VALUES ({mark}, {mark})", row)


@dataclass
class PolicyWorld:
    """The running gateway, its catalog and how to ask each engine directly."""

    gateway: Gateway
    store: CatalogStore
    security: Any
    client: flight.FlightClient
    tokens: dict[str, str]
    truth: dict[str, Any]
    postgres: Any
    databases: tuple[str, str] = ("policies", "policies_truth")
    closers: list = field(default_factory=list)

    def run(self, sql: str, user: str = "bob", catalog: str | None = None) -> pa.Table:
        """``sql`` through the gateway as ``user``."""
        _, table = raw.info_and_table(self.client, pb.CommandStatementQuery(query=sql),
                                      bearer(self.tokens[user]))
        return table

    def engine(self, engine: str, sql: str, truth: bool = True) -> tuple[list[str], list[tuple]]:
        """Column names and rows of ``sql`` asked of the engine's own client (the truth copy by default)."""
        if engine in ("duck", "files"):  # the files source's parquet files hold the DuckDB tables' rows
            with duckdb.connect(str(self.truth["duck" if truth else "duck_raw_copy"]), read_only=True) as con:
                cur = con.execute(sql)
                return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
        if engine == "lite":
            con = sqlite3.connect(str(self.truth["lite" if truth else "lite_raw"]))
            try:
                cur = con.execute(sql)
                return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
            finally:
                con.close()
        import psycopg

        with psycopg.connect(self.postgres.dsn(self.databases[1] if truth else self.databases[0])) as con:
            cur = con.execute(sql)
            return [d.name for d in cur.description], [tuple(r) for r in cur.fetchall()]

    def close(self) -> None:
        self.client.close()
        self.gateway.shutdown()
        self.security.close()
        self.store.close()


def build(root: Path, demo_data_dir: Path, postgres_server, tag: str) -> PolicyWorld:
    """Make the three engines' tables and truth copies, the catalog with users and policies, and the gateway."""
    truth: dict[str, Path] = {}
    for name, rows in (("duck_raw", ROWS), ("duck", visible())):
        truth[name] = root / f"{name}.duckdb"
        with duckdb.connect(str(truth[name])) as con:
            _fill(con, "duck", rows)
    truth["duck_raw_copy"] = root / "duck_raw_copy.duckdb"  # read here while the gateway holds duck_raw
    shutil.copy(truth["duck_raw"], truth["duck_raw_copy"])
    with duckdb.connect(str(truth["duck_raw_copy"]), read_only=True) as con:
        for table in ("staff", "depts"):
            con.execute(f"COPY {table} TO '{root / table}.parquet' (FORMAT parquet)")
    for name, rows in (("lite_raw", ROWS), ("lite", visible())):
        truth[name] = root / f"{name}.sqlite"
        con = sqlite3.connect(str(truth[name]))
        _fill(con, "lite", rows)
        con.commit()
        con.close()
    import psycopg

    databases = (f"policies_{tag}", f"policies_{tag}_truth")
    for database, rows in zip(databases, (ROWS, visible()), strict=True):
        postgres_server.create_database(database)
        with psycopg.connect(postgres_server.dsn(database), autocommit=True) as con:
            _fill(con, "pg", rows)
        postgres_server.reader_grants(database)

    os.environ[ENV_KEY] = base64.b64encode(os.urandom(32)).decode()
    os.environ.pop(ENV_KEY_ID, None)
    os.environ.pop(ENV_OLD_KEYS, None)
    store = CatalogStore(data_dir=root / "catalog")
    for role in ("analyst", "hr", "everything", "auditor"):
        add_role(store, role)
    for user, (roles, attributes) in USERS.items():
        add_user(store, user, PASSWORD, roles=roles, attributes=attributes)
    for engine in ENGINES:
        for table in ("staff", "depts"):
            add_grant(store, "analyst", engine, SCHEMA[engine], table)
        add_grant(store, "everything", engine)
        add_policy(store, PolicySpec(f"{engine}-region", "row_filter", f"{engine}.{SCHEMA[engine]}.staff",
                                     expression="region = {user.region}", exempt_roles=("auditor",)))
        add_policy(store, PolicySpec(f"{engine}-ssn", "column_mask", f"{engine}.{SCHEMA[engine]}.staff",
                                     column="ssn", exempt_roles=("hr",)))
    security = start_security(store, AuthSettings(enabled=True))
    sources = [SourceSpec("duck", "duckdb", {"path": str(truth["duck_raw"])}),
               SourceSpec("lite", "sqlite", {"path": str(truth["lite_raw"])}),
               SourceSpec("pg", "postgres", postgres_server.options(databases[0])),
               SourceSpec("files", "files", {"tables": [{"name": t, "location": str(root / f"{t}.parquet")}
                                                        for t in ("staff", "depts")]})]
    history = history_observer(store, background=False)
    gateway = Gateway(ServerSettings(port=0, data_dir=demo_data_dir), sources, [history],
                      authenticator=security.authenticator, access=security.access).start()
    client = flight.FlightClient(gateway.location)
    tokens = {user: sign_in(client, user, PASSWORD) for user in USERS}
    return PolicyWorld(gateway, store, security, client, tokens, truth, postgres_server, databases)
