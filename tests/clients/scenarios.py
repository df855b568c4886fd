"""The scenarios every native Flight SQL client (Java FlightSqlClient, Go, Rust) runs, and the reference answers.

A scenario file has one tab-separated line per scenario: ``name``, ``kind``, arguments; ``\\N`` stands for an
absent argument. The kinds each program understands:

- ``connect URI USER PASSWORD CA``: connect (TLS when CA is a PEM file), hand user/password to the Handshake and
  keep the bearer token; later scenarios use this connection.
- ``statement SQL``; ``prepared SQL VALUE…`` (values as text, cast by the client to the server's parameter types).
- ``catalogs``; ``schemas CATALOG PATTERN``; ``tables CATALOG SCHEMA_PATTERN TABLE_PATTERN TYPES INCLUDE_SCHEMA``;
  ``table_types``; ``primary_keys|exported_keys|imported_keys CATALOG SCHEMA TABLE``; ``xdbc_type_info [TYPE]``;
  ``sql_info ID…``.
- ``cancel SQL``: read the result while another task cancels it (CancelFlightInfo) after 0.5 s.
- ``timeout SQL MILLIS``: read the result under a client deadline.
- ``session_options NAME VALUE``: SetSessionOptions, then GetSessionOptions; reports the value read back.

Each program prints one JSON line per scenario (``name``, ``ok``, ``rows``, ``code`` and ``message`` on failure,
``value``) and writes each result table to ``OUT_DIR/<name>.arrows``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

NULL = "\\N"
SLOW = "SELECT count(*) FROM range(100000000000) a"  # minutes unless something stops it
#: Run right after the cancel and timeout scenarios: the slow queries must have ended on the server before it.
AFTER_STOP = "SELECT 2 AS after_stop"

#: A DuckDB query over the demo with one column of each type the demo's engine returns.
DEMO_TYPES = (
    "SELECT n_nationkey, n_name, CAST(n_nationkey * 1.25 AS DECIMAL(10, 2)) AS price, "
    "CAST(n_nationkey AS SMALLINT) AS small, CAST(n_nationkey AS DOUBLE) / 4 AS ratio, n_nationkey % 2 = 0 AS even, "
    "DATE '1995-01-01' + CAST(n_nationkey AS INTEGER) AS day, TIMESTAMP '2020-01-02 03:04:05.123456' AS ts, "
    "TIMESTAMPTZ '2020-06-30 23:59:59.5+00' AS tstz, TIME '12:34:56' AS tod, "
    "encode(n_name) AS bin, 'Zürich 東京 ✓' AS unicode, CASE WHEN n_nationkey > 2 THEN NULL ELSE n_nationkey END "
    "AS maybe, [n_nationkey, n_regionkey] AS pair, {'key': n_nationkey, 'name': n_name} AS rec "
    "FROM nation WHERE n_nationkey < 5 ORDER BY n_nationkey"
)
PG_TYPES = "SELECT * FROM pg.client_types.everything ORDER BY id"


@dataclass(frozen=True)
class Scenario:
    """One line of the scenario file and what the tests expect of it."""

    name: str
    capability: str
    kind: str
    args: tuple[str, ...] = ()
    #: For statements: the SQL and Python parameters ADBC runs for the reference answer.
    reference: tuple[str, tuple] | None = None
    #: For failures: the gRPC status and a fragment of the message.
    error: tuple[str, str] | None = None
    clients: frozenset[str] = field(default_factory=lambda: frozenset({"java", "go", "rust"}))

    def line(self) -> str:
        """The scenario file line."""
        return "\t".join((self.name, self.kind, *self.args))


def _statement(name: str, capability: str, sql: str) -> Scenario:
    return Scenario(name, capability, "statement", (sql,), reference=(sql, ()))


def _prepared(name: str, sql: str, *params) -> Scenario:
    text = tuple(NULL if p is None else str(p).lower() if isinstance(p, bool) else str(p) for p in params)
    return Scenario(name, "prepared", "prepared", (sql, *text), reference=(sql, params))


def scenarios(uri: str, tls_uri: str, ca: Path) -> list[Scenario]:
    """Every scenario, in the order the programs run them."""
    return [
        Scenario("connect", "connect", "connect", (uri, NULL, NULL, NULL)),
        _statement("statement_anonymous", "connect", "SELECT 1 AS one"),
        Scenario("auth", "auth", "connect", (uri, "alice", "secret", NULL)),
        _statement("statement", "statement", "SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey"),
        _statement("types_demo", "types", DEMO_TYPES),
        _statement("types_postgres", "types", PG_TYPES),
        _prepared("prepared_typed", "SELECT o_orderkey, o_totalprice FROM orders WHERE o_custkey = ? AND "
                  "o_orderdate < ? AND o_orderstatus = ? AND o_totalprice > ? ORDER BY o_orderkey",
                  1, datetime.date(1998, 1, 1), "O", Decimal("1000.50")),
        _prepared("prepared_double_bool", "SELECT count(*) AS n FROM lineitem WHERE l_discount < ? AND "
                  "(l_returnflag = 'R') = ?", 0.05, True),
        _prepared("prepared_postgres", "SELECT id, txt FROM pg.client_types.everything WHERE day >= ? AND "
                  "i8 < ? ORDER BY id", datetime.date(1970, 1, 1), 1),
        Scenario("catalogs", "catalogs", "catalogs"),
        Scenario("schemas", "schemas", "schemas", (NULL, "client%")),
        Scenario("tables", "tables", "tables", ("demo", NULL, "n%", "TABLE", "true")),
        Scenario("tables_all_types", "tables", "tables", ("pg", "client_%", NULL, NULL, "false")),
        Scenario("table_types", "table_types", "table_types"),
        Scenario("primary_keys", "primary_keys", "primary_keys", ("pg", "client_types", "everything")),
        Scenario("exported_keys", "exported_keys", "exported_keys", ("pg", "client_types", "everything")),
        Scenario("imported_keys", "imported_keys", "imported_keys", ("pg", "client_types", "child")),
        Scenario("type_info", "type_info", "xdbc_type_info"),
        Scenario("type_info_date", "type_info", "xdbc_type_info", ("91",)),
        Scenario("sql_info", "sql_info", "sql_info", ("0", "1", "2", "3", "4", "504", "9")),
        Scenario("error_bad_sql", "errors", "statement", ("SELEC 1",), error=("INVALID_ARGUMENT", "QV-001")),
        Scenario("error_unknown_table", "errors", "statement", ("SELECT * FROM no_such_table",),
                 error=("NOT_FOUND", "no_such_table")),
        Scenario("error_write", "errors", "statement", ("DELETE FROM nation",),
                 error=("PERMISSION_DENIED", "read-only")),
        # The timeout first: the server notices an expired deadline within its cancel watch's poll (0.1 s), and
        # the half second the cancel scenario waits lets that show before the marker query.
        Scenario("timeout", "timeout", "timeout", (SLOW, "1000"), error=("DEADLINE_EXCEEDED", "")),
        Scenario("cancel", "cancel", "cancel", (SLOW,), error=("CANCELLED", "interrupted")),
        _statement("after_stop", "statement", AFTER_STOP),
        Scenario("session_catalog", "session", "session_options", ("catalog", "pg"),
                 clients=frozenset({"java", "go"})),
        Scenario("session_statement", "session", "statement", ("SELECT count(*) AS n FROM client_types.everything",),
                 reference=("SELECT count(*) AS n FROM pg.client_types.everything", ()),
                 clients=frozenset({"java", "go"})),
        Scenario("tls", "tls", "connect", (tls_uri, "alice", "secret", str(ca))),
        _statement("tls_statement", "tls", "SELECT count(*) AS n FROM region"),
    ]


def stopped_before(events: list, marker_sql: str) -> list[str]:
    """Statuses of the slow queries that ended on the server before the query ``marker_sql`` ran.

    The clients run a marker query right after their cancel and timeout scenarios, on the same connection: a slow
    query that ended before it was stopped by the cancel or deadline itself, not by the client going away.
    """
    marker = next(i for i, e in enumerate(events) if e.sql == marker_sql and e.status == "success")
    return [e.status for e in events[:marker] if e.sql == SLOW]


def write_file(path: Path, items: list[Scenario], client: str) -> list[Scenario]:
    """Write the scenario file for one client; returns the scenarios it holds."""
    chosen = [s for s in items if client in s.clients]
    path.write_text("".join(s.line() + "\n" for s in chosen), encoding="utf-8")
    return chosen


#: Status names as each client spells them, mapped to gRPC's.
_CODE_ALIASES = {"UNAUTHORIZED": "PERMISSION_DENIED", "TIMED_OUT": "DEADLINE_EXCEEDED", "CANCELED": "CANCELLED"}


def grpc_code(name: str) -> str:
    """``InvalidArgument``, ``INVALID_ARGUMENT``, ``Canceled``… as the gRPC status name."""
    if name.isupper() or "_" in name:
        upper = name.upper()
    else:  # CamelCase (Go, Rust)
        upper = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(name)).upper()
    return _CODE_ALIASES.get(upper, upper)
