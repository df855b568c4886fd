"""Row filters and column masks on a PostgreSQL parent reach its partitions, inheritance children and foreign tables.

``sales`` is range-partitioned by year, its 2024 partition list-partitioned by region again (two levels); ``events``
has a plain ``INHERITS`` child. Both parents carry a row filter (the user's region) and a column mask, and the
policies hold on every partition and child read by its own name, in a subquery, a join or a UNION: each answer
equals what PostgreSQL itself answers (through psycopg) for the hand-written filtered and masked query. A view
over a partition, a parent whose child has policies of its own and a foreign table (``postgres_fdw`` looping back
to ``sales``) are refused, naming why; a foreign table with a policy of its own is read through it. A view
reading a parent ``ONLY`` reads none of its children, so their policies do not refuse it: it answers what the
read written by hand answers (its definition read as ``pg_get_viewdef`` prints it), while the same view without
``ONLY`` (or with ``logs*``) stays refused. Administrators,
and users every policy of the source exempts, read everything as PostgreSQL answers it, without the gateway
reading the source's lineage. The gateway, the catalog and PostgreSQL are real.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.backends.postgres import PostgresBackend
from nexus_flight.catalog.directory import CatalogSourceDirectory
from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.policies import PolicySpec, add_policy
from nexus_flight.catalog.users import add_role, add_user
from tests.security.conftest import ALICE_PASSWORD, bearer, module_store, sign_in, start_secured, stop_secured
from tests.support import flightsql_raw as raw
from tests.support.servers import READER

DATABASE = "policy_lineage"
PASSWORD = "lineage-test-password-1"
#: Who signs in besides alice (an administrator): roles and region. ida's roles are exempt from every policy.
USERS = {"bea": (["analyst"], "EU"), "dana": (["analyst"], "US"), "ida": (["analyst", "auditor", "hr"], "EU")}
SALES = [
    (1, "EU", Decimal("10.50"), "4111-1", "2023-03-01"),
    (2, "US", Decimal("20.25"), "4111-2", "2023-07-14"),
    (3, "EU", Decimal("30.00"), None, "2024-02-29"),
    (4, "US", Decimal("40.75"), "4111-4", "2024-05-05"),
    (5, "APAC", Decimal("99999999.99"), "4111-5", "2024-12-31"),
    (6, "EU", None, "4111-6", "2024-06-30"),
    (7, "it's", Decimal("-0.01"), "4111-7", "2024-01-01"),
    (8, "EU", Decimal("1.00"), "4111-8", "2022-05-05"),
    (9, "US", Decimal("2.00"), None, "2022-06-06"),
    (10, "EU", Decimal("3.00"), "4111-10", "2023-10-10"),
    (11, "US", Decimal("4.00"), "4111-11", "2023-11-11"),
    (12, "EU", Decimal("5.00"), "4111-12", "2021-12-12"),
    (13, "US", Decimal("6.00"), "4111-13", "2021-01-01"),
]
DDL = [
    "CREATE TABLE sales (id int, region text, amount numeric(10, 2), card text, sold date) PARTITION BY RANGE (sold)",
    "CREATE TABLE sales_2023 PARTITION OF sales FOR VALUES FROM ('2023-01-01') TO ('2024-01-01') "
    "PARTITION BY HASH (id)",
    "CREATE TABLE sales_2023_h0 PARTITION OF sales_2023 FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
    "CREATE TABLE sales_2023_h1 PARTITION OF sales_2023 FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
    'CREATE TABLE "Sales_2021" PARTITION OF sales FOR VALUES FROM (\'2021-01-01\') TO (\'2022-01-01\')',
    "CREATE TABLE sales_2024 PARTITION OF sales FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') "
    "PARTITION BY LIST (region)",
    "CREATE TABLE sales_2024_eu PARTITION OF sales_2024 FOR VALUES IN ('EU')",
    "CREATE TABLE sales_2024_rest PARTITION OF sales_2024 DEFAULT",
    "CREATE SCHEMA hist",
    "CREATE TABLE hist.sales_2022 PARTITION OF sales FOR VALUES FROM ('2022-01-01') TO ('2023-01-01')",
    "CREATE TABLE events (id int, region text, note text)",
    "CREATE TABLE events_archive (archived date) INHERITS (events)",
    "INSERT INTO events VALUES (1, 'EU', 'live eu'), (2, 'US', 'live us')",
    "INSERT INTO events_archive VALUES (3, 'EU', 'old eu', '2020-01-01'), (4, 'US', 'old us', '2020-02-02'), "
    "(5, 'EU', NULL, NULL)",
    "CREATE TABLE logs (id int, line text)",  # no policy of its own; its child has one
    "CREATE TABLE logs_secret () INHERITS (logs)",
    "INSERT INTO logs VALUES (1, 'open')",
    "INSERT INTO logs_secret VALUES (2, 'secret')",
    "CREATE TABLE notes (id int, body text)",  # a mask of its own, and its child's own other mask
    "CREATE TABLE notes_child () INHERITS (notes)",
    "INSERT INTO notes VALUES (1, 'parent')",
    "INSERT INTO notes_child VALUES (2, 'child')",
    "CREATE TABLE depts (region text, name text)",
    "INSERT INTO depts VALUES ('EU', 'Europe'), ('US', 'States'), ('APAC', NULL)",
    "CREATE VIEW sales_eu_v AS SELECT id, amount FROM sales_2024_eu",
    "CREATE VIEW archive_vv AS SELECT * FROM (SELECT id, note FROM events_archive) a",
    "CREATE VIEW logs_v AS SELECT * FROM logs",
    "CREATE VIEW depts_v AS SELECT upper(name) AS name FROM depts",
    # views reading parents ONLY, written the ways PostgreSQL takes it (pg_get_viewdef prints each as ONLY public.x)
    "CREATE VIEW logs_only_v AS SELECT * FROM ONLY logs",
    "CREATE VIEW logs_only_join_v AS SELECT a.id, b.line FROM ONLY (logs) a JOIN ONLY public.logs b USING (id)",
    "CREATE VIEW logs_only_vv AS SELECT id FROM logs_only_v UNION ALL SELECT id FROM (SELECT id FROM ONLY logs) x",
    "CREATE VIEW logs_star_v AS SELECT * FROM logs*",
    "CREATE VIEW logs_half_only_v AS SELECT a.id FROM ONLY logs a JOIN logs b USING (id)",
    "CREATE VIEW events_only_v AS SELECT id FROM ONLY events",
    "CREATE VIEW archive_only_v AS SELECT id FROM ONLY events_archive",
    "CREATE VIEW notes_only_v AS SELECT id FROM ONLY notes",
]
FDW = [
    "CREATE EXTENSION postgres_fdw",
    "CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{host}', port '{port}', "
    f"dbname '{DATABASE}')",
    f"CREATE USER MAPPING FOR {READER} SERVER loopback OPTIONS (user 'postgres', password_required 'false')",
    "CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres')",
    "CREATE FOREIGN TABLE sales_remote (id int, region text, amount numeric(10, 2), card text, sold date) "
    "SERVER loopback OPTIONS (schema_name 'public', table_name 'sales')",
    "CREATE FOREIGN TABLE sales_remote_own (id int, region text, amount numeric(10, 2), card text, sold date) "
    "SERVER loopback OPTIONS (schema_name 'public', table_name 'sales')",
    "CREATE VIEW remote_v AS SELECT id FROM sales_remote_own",
    "CREATE VIEW remote_raw_v AS SELECT r.id FROM depts d, sales_remote r",
    # a list-partitioned table without policies whose US partition is a foreign table
    "CREATE TABLE orders (id int, region text) PARTITION BY LIST (region)",
    "CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('EU')",
    "CREATE TABLE orders_us_rows (id int, region text)",
    "INSERT INTO orders_eu VALUES (1, 'EU')",
    "INSERT INTO orders_us_rows VALUES (2, 'US')",
    "CREATE FOREIGN TABLE orders_us PARTITION OF orders FOR VALUES IN ('US') SERVER loopback "
    "OPTIONS (schema_name 'public', table_name 'orders_us_rows')",
    "CREATE VIEW orders_only_v AS SELECT * FROM ONLY orders",
]
POLICIES = [
    PolicySpec("sales-region", "row_filter", "lin.public.sales", expression="region = {user.region}",
               exempt_roles=("auditor",)),
    PolicySpec("sales-card", "column_mask", "lin.public.sales", column="card", exempt_roles=("hr",)),
    PolicySpec("events-region", "row_filter", "lin.public.events", expression="region = {user.region}",
               exempt_roles=("auditor",)),
    PolicySpec("events-note", "column_mask", "lin.public.events", column="note",
               expression="'***' || right(note, 2)", exempt_roles=("hr",)),
    PolicySpec("logs-secret", "row_filter", "lin.public.logs_secret", expression="id < 0", exempt_roles=("auditor",)),
    PolicySpec("notes-body", "column_mask", "lin.public.notes", column="body", expression="left(body, 1)",
               exempt_roles=("hr",)),
    PolicySpec("notes-child-body", "column_mask", "lin.public.notes_child", column="body",
               exempt_roles=("hr",)),
    PolicySpec("remote-region", "row_filter", "lin.public.sales_remote_own", expression="region = {user.region}",
               exempt_roles=("auditor",)),
    PolicySpec("remote-card", "column_mask", "lin.public.sales_remote_own", column="card", exempt_roles=("hr",)),
]
SALES_COLUMNS = "id, region, amount, NULL::text AS card, sold"
EVENTS_COLUMNS = "id, region, '***' || right(note, 2) AS note"
#: (through the gateway, the same read written by hand with the policies applied, for {region}).
READS = [
    ("SELECT * FROM sales_2023", f"SELECT {SALES_COLUMNS} FROM sales_2023 WHERE region = {{region}}"),
    ("SELECT * FROM sales_2024", f"SELECT {SALES_COLUMNS} FROM sales_2024 WHERE region = {{region}}"),
    ("SELECT * FROM public.sales_2024_eu", f"SELECT {SALES_COLUMNS} FROM sales_2024_eu WHERE region = {{region}}"),
    ("SELECT * FROM sales_2024_rest", f"SELECT {SALES_COLUMNS} FROM sales_2024_rest WHERE region = {{region}}"),
    ('SELECT * FROM "sales_2024_rest" r WHERE r.region <> {region} OR true',
     f"SELECT {SALES_COLUMNS} FROM sales_2024_rest WHERE region = {{region}}"),
    ("SELECT count(*) AS n, sum(amount) AS total, max(card) AS card FROM sales_2024",
     "SELECT count(*) AS n, sum(amount) AS total, NULL::text AS card FROM sales_2024 WHERE region = {region}"),
    ("SELECT * FROM (SELECT id, card FROM sales_2024_rest) x",
     "SELECT id, NULL::text AS card FROM sales_2024_rest WHERE region = {region}"),
    ("SELECT id, card FROM sales_2023 UNION ALL SELECT id, card FROM sales_2024_rest",
     "SELECT id, NULL::text AS card FROM sales WHERE region = {region} AND id IN (1, 2, 4, 5, 7, 10, 11)"),
    ("SELECT s.id, p.card FROM sales s JOIN sales_2024 p ON p.id = s.id",
     "SELECT id, NULL::text AS card FROM sales_2024 WHERE region = {region}"),
    ("WITH y AS (SELECT * FROM sales_2024_eu) SELECT id, amount FROM y",
     "SELECT id, amount FROM sales_2024_eu WHERE region = {region}"),
    ("SELECT * FROM events_archive",
     f"SELECT {EVENTS_COLUMNS}, archived FROM events_archive WHERE region = {{region}}"),
    ("SELECT * FROM ONLY events", f"SELECT {EVENTS_COLUMNS} FROM ONLY events WHERE region = {{region}}"),
    ("SELECT * FROM events", f"SELECT {EVENTS_COLUMNS} FROM events WHERE region = {{region}}"),
    ("SELECT note FROM events_archive EXCEPT SELECT note FROM ONLY events",
     "SELECT '***' || right(note, 2) AS note FROM events_archive WHERE region = {region} "
     "EXCEPT SELECT '***' || right(note, 2) FROM ONLY events WHERE region = {region}"),
    ("SELECT * FROM sales_remote_own", f"SELECT {SALES_COLUMNS} FROM sales WHERE region = {{region}}"),
    ("SELECT * FROM logs_secret", "SELECT * FROM logs_secret WHERE id < 0"),
    ("SELECT * FROM hist.sales_2022", f"SELECT {SALES_COLUMNS} FROM hist.sales_2022 WHERE region = {{region}}"),
    ("SELECT h.id FROM hist.sales_2022 AS h UNION SELECT id FROM sales_2023",
     "SELECT id FROM sales WHERE region = {region} AND sold >= '2022-01-01' AND sold < '2024-01-01'"),
    ("SELECT * FROM notes_child", "SELECT id, NULL::text AS body FROM notes_child"),  # its own mask, not the parent's
    ("SELECT * FROM ONLY notes", "SELECT id, left(body, 1) AS body FROM ONLY notes"),
    ("SELECT * FROM orders_eu", "SELECT * FROM orders_eu"),
    ("SELECT * FROM sales_2023_h0", f"SELECT {SALES_COLUMNS} FROM sales_2023_h0 WHERE region = {{region}}"),
    ("SELECT id, card FROM sales_2023_h1 t WHERE t.card IS NOT NULL OR t.region <> {region}",
     "SELECT id, NULL::text AS card FROM sales_2023_h1 WHERE false"),
    ('SELECT * FROM public."Sales_2021"', f'SELECT {SALES_COLUMNS} FROM "Sales_2021" WHERE region = {{region}}'),
]
#: (query, words of the PERMISSION_DENIED).
REFUSED = [
    ("SELECT * FROM sales_remote", "lin.public.sales_remote is a foreign table: what it reads cannot be seen"),
    ("SELECT id FROM sales_2024 UNION SELECT id FROM sales_remote", "lin.public.sales_remote is a foreign table"),
    ("SELECT * FROM sales_eu_v", "lin.public.sales_eu_v is a view reading lin.public.sales_2024_eu, a partition or "
                                 "inheritance child of lin.public.sales, which has policies"),
    ("SELECT d.name FROM depts d JOIN sales_eu_v v ON v.id = 1", "lin.public.sales_eu_v is a view reading"),
    ("SELECT * FROM archive_vv", "reading lin.public.events_archive, a partition or inheritance child of "
                                 "lin.public.events"),
    ("SELECT * FROM logs", "lin.public.logs is a parent of lin.public.logs_secret, a partition or inheritance child "
                           "with policies that reading the parent would not apply"),
    ("SELECT * FROM logs_v", "lin.public.logs_v is a view reading lin.public.logs, a parent of "
                             "lin.public.logs_secret"),
    ("SELECT * FROM notes", "lin.public.notes is a parent of lin.public.notes_child, a partition or inheritance "
                            "child with policies that reading the parent would not apply"),
    ("SELECT * FROM orders", "lin.public.orders is a parent of the foreign table lin.public.orders_us: what that "
                             "reads cannot be seen"),
    ("SELECT * FROM orders_us", "lin.public.orders_us is a foreign table"),
    ("SELECT * FROM remote_raw_v", "lin.public.remote_raw_v is a view reading lin.public.sales_remote, a foreign "
                                   "table: what it reads cannot be seen from the source's metadata"),
    ("SELECT * FROM remote_v", "lin.public.remote_v is a view reading lin.public.sales_remote_own, which has policies"),
    ("SELECT * FROM logs_star_v", "lin.public.logs_star_v is a view reading lin.public.logs, a parent of "
                                  "lin.public.logs_secret"),
    ("SELECT * FROM logs_half_only_v", "lin.public.logs_half_only_v is a view reading lin.public.logs, a parent of "
                                       "lin.public.logs_secret"),
    ("SELECT * FROM events_only_v", "lin.public.events_only_v is a view reading lin.public.events, which has "
                                    "policies"),
    ("SELECT * FROM archive_only_v", "lin.public.archive_only_v is a view reading lin.public.events_archive, a "
                                     "partition or inheritance child of lin.public.events, which has policies"),
    ("SELECT * FROM notes_only_v", "lin.public.notes_only_v is a view reading lin.public.notes, which has policies"),
]
OPEN = ["SELECT * FROM depts", "SELECT * FROM depts_v", "SELECT * FROM ONLY logs", "SELECT * FROM ONLY orders"]
#: Views reading a parent ``ONLY`` whose children carry policies the parent does not: (view, the read by hand).
ONLY_VIEWS = [
    ("logs_only_v", "SELECT * FROM ONLY logs"),
    ("logs_only_join_v", "SELECT id, line FROM ONLY logs"),
    ("logs_only_vv", "SELECT id FROM ONLY logs UNION ALL SELECT id FROM ONLY logs"),
    ("orders_only_v", "SELECT * FROM ONLY orders"),
]


def _literal(region: str) -> str:
    return "'" + region.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, postgres_server):
    postgres_server.create_database(DATABASE)
    with psycopg.connect(postgres_server.dsn(DATABASE), autocommit=True) as con:
        for statement in DDL:
            con.execute(statement)
        for row in SALES:
            con.execute("INSERT INTO sales VALUES (%s, %s, %s, %s, %s)", row)
        for statement in FDW:
            con.execute(statement.replace("{host}", postgres_server.host).replace("{port}", str(postgres_server.port)))
    with module_store(tmp_path_factory.mktemp("lineage") / "data") as store:
        for role in ("auditor", "hr"):
            add_role(store, role)
        for user, (roles, region) in USERS.items():
            add_user(store, user, PASSWORD, roles=roles, attributes={"region": region})
        store.add_source("lin", "postgresql", postgres_server.options(DATABASE), {})
        add_grant(store, "analyst", "lin")
        for policy in POLICIES:
            add_policy(store, policy)
        secured = start_secured(store, demo_data_dir,
                                sources=CatalogSourceDirectory(store, default="lin", refresh_seconds=0),
                                demo_scale=None)
        try:
            client = secured.client()
            tokens = {user: sign_in(client, user, PASSWORD) for user in USERS}
            tokens["alice"] = sign_in(client, "alice", ALICE_PASSWORD)
            yield {"client": client, "tokens": tokens, "server": postgres_server, "secured": secured}
            client.close()
        finally:
            stop_secured(secured)


def run(world, sql: str, user: str = "bea"):
    return raw.info_and_table(world["client"], pb.CommandStatementQuery(query=sql), bearer(world["tokens"][user]))[1]


def engine(world, sql: str) -> tuple[list[str], list[tuple]]:
    """PostgreSQL's own answer, through psycopg."""
    with psycopg.connect(world["server"].dsn(DATABASE)) as con:
        cur = con.execute(sql)
        return [d.name for d in cur.description], [tuple(r) for r in cur.fetchall()]


def rows(values) -> list[tuple]:
    return sorted((tuple(str(v) if v is not None else None for v in row) for row in values), key=repr)


@pytest.mark.parametrize("user", ["bea", "dana"])
@pytest.mark.parametrize(("sql", "truth"), READS)
def test_a_partition_or_child_is_read_through_its_parents_policies(world, sql, truth, user):
    region = _literal(USERS[user][1])
    got = run(world, sql.format(region=region), user=user)
    names, expected = engine(world, truth.format(region=region))
    assert got.column_names == names
    assert rows(tuple(r.values()) for r in got.to_pylist()) == rows(expected)
    unfiltered = run(world, sql.format(region=region), user="alice")
    assert got.schema.types == unfiltered.schema.types  # a mask keeps the column's type


def test_the_filtered_rows_are_really_there(world):
    """Each partition read above holds rows the filter hides (so equal answers prove the filter, not emptiness)."""
    for table in ("sales_2023", "sales_2023_h0", "sales_2023_h1", "sales_2024_rest", '"Sales_2021"',
                  "hist.sales_2022", "events_archive"):
        _, everything = engine(world, f"SELECT * FROM {table}")
        assert 0 < run(world, f"SELECT * FROM {table}", user="dana").num_rows < len(everything), table
    assert run(world, "SELECT card FROM sales_2024_eu").column("card").null_count == 2
    assert engine(world, "SELECT count(card) FROM sales_2024_eu")[1] == [(1,)]


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_what_could_read_a_partition_or_foreign_table_unfiltered_is_refused(world, sql, message):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        run(world, sql)
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("sql", OPEN)
def test_tables_and_views_without_policies_answer_as_postgresql_does(world, sql):
    names, expected = engine(world, sql)
    got = run(world, sql)
    assert got.column_names == names
    assert rows(tuple(r.values()) for r in got.to_pylist()) == rows(expected)


@pytest.mark.parametrize(("view", "truth"), ONLY_VIEWS)
def test_a_view_reading_a_parent_only_answers_its_own_rows_as_postgresql_does(world, view, truth):
    """The definition is read as ``pg_get_viewdef`` prints it (``FROM ONLY public.logs``); the children's rows,
    which their own policies hide, are not read, so the view answers what the same read written by hand answers."""
    with psycopg.connect(world["server"].dsn(DATABASE)) as con:
        con.execute("SELECT pg_catalog.set_config('search_path', '', true)")
        definition = con.execute(f"SELECT pg_catalog.pg_get_viewdef('public.{view}'::regclass)").fetchone()[0]
    assert "ONLY public." in definition
    names, expected = engine(world, truth)
    got = run(world, f"SELECT * FROM {view}")
    assert got.column_names == names
    assert rows(tuple(r.values()) for r in got.to_pylist()) == rows(expected)
    assert rows(engine(world, f"SELECT * FROM {view}")[1]) == rows(expected)
    assert rows(engine(world, truth.replace("ONLY ", ""))[1]) != rows(expected)  # the children hold rows of their own


@pytest.mark.parametrize("user", ["alice", "ida"])
def test_who_no_policy_applies_to_reads_everything_as_postgresql_does(world, user):
    for sql in ("SELECT * FROM sales_2024", "SELECT * FROM sales_remote", "SELECT * FROM sales_eu_v",
                "SELECT * FROM logs", "SELECT * FROM events_archive", "SELECT * FROM remote_v",
                "SELECT * FROM orders", "SELECT * FROM hist.sales_2022", "SELECT * FROM remote_raw_v"):
        names, expected = engine(world, sql)
        got = run(world, sql, user=user)
        assert got.column_names == names, sql
        assert rows(tuple(r.values()) for r in got.to_pylist()) == rows(expected), sql


def test_the_lineage_is_read_only_for_callers_with_policies_and_then_reused(world, monkeypatch):
    """A spy on the real ``PostgresBackend.table_lineage`` counts the gateway's catalog queries for it."""
    calls = []
    real = PostgresBackend.table_lineage

    def counted(self):
        calls.append(self.name)
        return real(self)

    monkeypatch.setattr(PostgresBackend, "table_lineage", counted)
    for sql in ("SELECT * FROM sales_2024 WHERE id > 0", "SELECT * FROM sales_remote", "SELECT id FROM logs"):
        run(world, sql, user="ida")
        run(world, sql, user="alice")
    assert calls == []  # no policy applies to them: no catalog round trip
    for n in range(3):  # distinct queries, each rewritten anew: the lineage is read at most once
        run(world, f"SELECT id FROM sales_2024_eu WHERE id > {n}", user="bea")
    assert len(calls) <= 1


@pytest.mark.parametrize(("sql", "parameters", "truth"), [
    ("SELECT id, amount, card FROM sales_2024 WHERE amount > ? OR id = ?", (Decimal("-1.00"), 5),
     "SELECT id, amount, NULL::text AS card FROM sales_2024 WHERE (amount > -1.00 OR id = 5) AND region = 'US'"),
    ("SELECT id, sold FROM sales WHERE sold >= ? AND region <> ?", (date(2022, 1, 1), "nowhere"),
     "SELECT id, sold FROM sales WHERE sold >= '2022-01-01' AND region = 'US'"),
    ("SELECT id, note FROM events_archive WHERE note LIKE ? OR archived IS NULL", ("%us",),
     "SELECT id, '***' || right(note, 2) AS note FROM events_archive WHERE (note LIKE '%us' OR archived IS NULL) "
     "AND region = 'US'"),
])
def test_a_prepared_statement_on_a_partition_is_filtered_for_every_parameter(world, sql, parameters, truth):
    """Through ADBC: a prepared statement reading partitions and children, bound with typed parameters."""
    import adbc_driver_flightsql.dbapi as flightsql

    header = {"adbc.flight.sql.authorization_header": f"Bearer {world['tokens']['dana']}"}
    with flightsql.connect(world["secured"].location, db_kwargs=header, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(sql, parameters)
        got = cur.fetch_arrow_table()
        cur.close()
    names, expected = engine(world, truth)
    assert got.column_names == names
    assert rows(tuple(r.values()) for r in got.to_pylist()) == rows(expected)
