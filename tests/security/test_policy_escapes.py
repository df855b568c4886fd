"""Escapes from row filters and column masks: every way SQL offers to reach the raw rows, on three real engines.

bob sees the staff table filtered to his region and with ``ssn`` masked. Each query below is sent through the
gateway as bob, and the same query is asked of the engine directly on a *truth* copy holding only what bob may see
(``tests/security/policy_world.py``): the answers must be equal (column names and values), so no query reads a
row or a value the policies hide. What cannot be rewritten with certainty (views, table functions, file paths,
system relations) is refused with PERMISSION_DENIED.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.history import search_history
from nexus_flight.catalog.policies import PolicySpec, add_policy, remove_policy
from nexus_flight.catalog.users import add_role, add_user, remove_role, remove_user
from tests.security.conftest import bearer, sign_in
from tests.security.policy_world import ENGINES, FILTERED_VIEWS, OPEN_VIEWS, PASSWORD, SCHEMA, build
from tests.security.test_policies import normal, rows_of
from tests.support import flightsql_raw as raw

#: Each query names the staff table as {staff}, the depts table as {depts} (three-part names through the gateway,
#: which pick the source; plain names on the engine) and the schema as {schema}; engines a case does not run on.
ESCAPES = [
    ("SELECT * FROM {staff}", ()),
    ("SELECT s.* FROM {staff} AS s", ()),
    ("SELECT * FROM {staff} s WHERE s.region <> 'EU' OR 1 = 1", ()),
    ("SELECT id, ssn FROM {staff} WHERE ssn IS NOT NULL", ()),
    ("SELECT count(*) AS n FROM {staff}", ()),
    ("SELECT region, count(*) AS n FROM {staff} GROUP BY region", ()),
    ("SELECT ssn, count(*) AS n FROM {staff} GROUP BY ssn", ()),
    ("SELECT max(ssn) AS m, min(salary) AS low, sum(salary) AS total FROM {staff}", ()),
    ("SELECT upper(ssn) || name AS x, length(ssn) AS l FROM {staff}", ()),
    ("SELECT * FROM (SELECT * FROM {staff}) t", ()),
    ("SELECT * FROM (SELECT * FROM (SELECT id, region, ssn FROM {staff}) a) b", ()),
    ("WITH x AS (SELECT * FROM {staff}) SELECT * FROM x", ()),
    ("WITH staff AS (SELECT * FROM {staff}) SELECT * FROM staff", ("lite",)),  # SQLite: a circular reference
    ("WITH staff AS (SELECT 2 AS id, 'US' AS region) SELECT staff.*, d.name FROM staff JOIN {depts} d "
     "ON d.region = staff.region", ()),
    ("SELECT id FROM {staff} UNION SELECT id FROM {staff} WHERE region = 'US'", ()),
    ("SELECT name FROM {staff} EXCEPT SELECT 'nobody'", ()),
    ("SELECT name, ssn FROM {staff} UNION ALL SELECT name, NULL FROM {depts}", ()),
    ("SELECT name FROM {staff} INTERSECT SELECT name FROM {schema}.staff", ()),
    ("SELECT d.name, s.name AS who FROM {depts} d JOIN {schema}.staff s ON s.region = d.region", ()),
    ("SELECT d.name, s.ssn FROM {depts} d LEFT JOIN {schema}.staff s ON s.region = d.region", ()),
    ("SELECT * FROM {depts} d WHERE EXISTS (SELECT 1 FROM {schema}.staff s WHERE s.region = d.region)", ()),
    ("SELECT (SELECT count(*) FROM {staff} WHERE region = 'US') AS n", ()),
    ("SELECT d.region, x.n FROM {depts} d, "
     "LATERAL (SELECT count(*) AS n FROM {schema}.staff s WHERE s.region = d.region) x",
     ("lite",)),
    ("SELECT * FROM {staff} WHERE ssn LIKE '2%'", ()),
    ("SELECT id FROM {staff} WHERE ssn = '222-33-4444' OR name = 'bo'", ()),
    ("SELECT a.id, b.ssn FROM {staff} a, {schema}.staff b WHERE a.id = b.id", ()),
    ("SELECT CASE WHEN ssn IS NULL THEN 'masked' ELSE ssn END AS v FROM {staff}", ()),
    ("SELECT id, row_number() OVER (PARTITION BY region ORDER BY id) AS rn FROM {staff}", ()),
    ("SELECT coalesce(ssn, 'none') AS v FROM {staff} s "
     "WHERE s.id IN (SELECT id FROM {schema}.staff WHERE region = 'US')", ()),
    ("SELECT * FROM {STAFF}", ()),
    ('SELECT * FROM {"staff"}', ()),
    ("SELECT staff.id, staff.ssn FROM {staff}", ()),
    ("SELECT {schema}.staff.ssn, id FROM {staff}", ()),
    ("SELECT DISTINCT region FROM {staff}", ()),
    ("SELECT s.id, d.name FROM {staff} s NATURAL JOIN {depts} d", ()),
    ("SELECT * FROM {staff} s(a, b, c, d, e) WHERE c <> 'EU' OR true", ("lite",)),
    ("SELECT id FROM {staff} WHERE salary > (SELECT avg(salary) FROM {schema}.staff)", ()),
    ("SELECT id FROM {staff} WHERE region IN ('US', 'APAC') OR ssn IS NULL", ()),
]


def gateway_form(sql: str, engine: str) -> str:
    schema = SCHEMA[engine]
    return sql.format(staff=f"{engine}.{schema}.staff", depts=f"{engine}.{schema}.depts", schema=schema,
                      STAFF=f"{engine}.{schema}.STAFF", **{'"staff"': f'{engine}.{schema}."staff"'})


def engine_form(sql: str, engine: str) -> str:
    return sql.format(staff="staff", depts="depts", schema=SCHEMA[engine], STAFF="STAFF", **{'"staff"': '"staff"'})


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, postgres_server):
    instance = build(tmp_path_factory.mktemp("escapes"), demo_data_dir, postgres_server, "escapes")
    yield instance
    instance.close()


CASES = [pytest.param(sql, engine, id=f"{engine}-{n}") for n, (sql, skip) in enumerate(ESCAPES)
         for engine in ENGINES if engine not in skip]


@pytest.mark.parametrize(("sql", "engine"), CASES)
def test_no_query_reads_past_the_policies(world, sql, engine):
    got = world.run(gateway_form(sql, engine))
    names, expected = world.engine(engine, engine_form(sql, engine))
    assert [n.lower() for n in got.column_names] == [n.lower() for n in names]
    assert normal(zip(*(c.to_pylist() for c in got.columns), strict=True)) == normal(expected)


REFUSED = [
    ("duck", "SELECT * FROM duck.main.staff_v", "wide", "duck.main.staff_v is a view"),
    ("lite", "SELECT * FROM lite.main.staff_v", "wide", "lite.main.staff_v is a view"),
    ("pg", "SELECT * FROM pg.public.staff_v", "wide", "pg.public.staff_v is a view"),
    ("pg", "SELECT * FROM pg.pg_catalog.pg_stats", "wide", "pg.pg_catalog.pg_stats is not a table of the source"),
    ("pg", "SELECT s.* FROM pg.public.staff s, generate_series(1, 2)", "wide", "table function generate_series"),
    ("duck", "SELECT * FROM duck.main.staff, range(2)", "wide", "table function range"),
    ("files", "SELECT * FROM files.main.staff, range(2)", "wide", "range"),
    ("duck", "SELECT * FROM query_table('staff') JOIN duck.main.depts USING (region)", "wide", "query_table"),
    ("duck", "SELECT * FROM duck.main.depts, 'staff.csv'", "wide", "staff.csv"),
    ("duck", 'SELECT * FROM duck.main.depts, "staff.csv"', "wide", "staff.csv"),
    ("lite", "SELECT * FROM lite.main.sqlite_master", "wide", "not a table of the source"),
    ("duck", "SELECT * FROM duck.main.staff_v", "bob", "no SELECT privilege on table duck.main.staff_v"),
    ("pg", "EXPLAIN SELECT * FROM pg.public.staff", "bob", "EXPLAIN of a query is not offered there"),
]


@pytest.mark.parametrize(("engine", "sql", "user", "message"), REFUSED, ids=[f"{r[0]}-{r[2]}-{i}"
                                                                             for i, r in enumerate(REFUSED)])
def test_what_could_read_a_filtered_table_unfiltered_is_refused(world, engine, sql, user, message):
    with pytest.raises((flight.FlightUnauthorizedError, flight.FlightServerError)) as info:
        world.run(sql, user=user)
    assert message in str(info.value)


VIEW_ENGINES = ("duck", "lite", "pg")


def view(engine: str, name: str) -> str:
    return f"{engine}.{SCHEMA[engine]}.{name}"


def exact(rows):
    """Rows sorted, values as they are (a Decimal stays exact)."""
    return sorted((tuple(row) for row in rows), key=repr)


@pytest.mark.parametrize(("engine", "name"), [(e, v) for e in VIEW_ENGINES for v in OPEN_VIEWS])
def test_a_view_over_open_tables_answers_as_the_engine_answers_it(world, engine, name):
    """wide's row filter and mask apply to staff only: a view reading depts alone is read as it is."""
    got = world.run(f"SELECT * FROM {view(engine, name)}", user="wide")
    names, expected = world.engine(engine, f"SELECT * FROM {name}", truth=False)
    assert got.column_names == names
    assert exact(rows_of(got)) == exact(expected)
    assert got.schema == world.run(f"SELECT * FROM {view(engine, name)}", user="alice").schema
    if engine == "duck":  # the Arrow types DuckDB's own client gives the view
        import duckdb

        with duckdb.connect(str(world.truth["duck_raw_copy"]), read_only=True) as con:
            own = con.execute(f"SELECT * FROM {name}").to_arrow_table().schema
        assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in own]


#: View, what its refusal names: every relation it reads, at any depth, is looked through.
REFUSED_VIEWS = [(engine, name, f"reading {view(engine, 'staff')}") for engine in VIEW_ENGINES
                 for name in FILTERED_VIEWS]
REFUSED_VIEWS += [
    ("duck", "staff_vv", "reading duck.main.staff (through duck.main.staff_v)"),
    ("pg", "staff_vv", "reading pg.public.staff (through pg.public.staff_v)"),
    ("duck", "depts_udf", "the definition of duck.main.depts_udf is refused by the read-only validator: QV-011: "
                          "twice() is not allowed"),
    ("pg", "depts_udf", "the definition of pg.public.depts_udf is refused by the read-only validator: QV-011"),
    ("pg", "depts_udf", "twice"),
    ("duck", "numbers_v", "duck.main.numbers_v reads the table function range"),
    ("pg", "stats_v", "pg.public.stats_v reads pg.pg_catalog.pg_stats, which is not a table of the source"),
]


@pytest.mark.parametrize(("engine", "name", "message"), REFUSED_VIEWS,
                         ids=[f"{e}-{v}-{i}" for i, (e, v, _) in enumerate(REFUSED_VIEWS)])
def test_a_view_that_could_reach_a_filtered_table_is_refused(world, engine, name, message):
    with pytest.raises(flight.FlightUnauthorizedError) as info:
        world.run(f"SELECT * FROM {view(engine, name)}", user="wide")
    assert f"{view(engine, name)} is a view" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("engine", VIEW_ENGINES)
def test_an_administrator_and_an_exempt_role_read_every_view_as_before(world, engine):
    """alice (admin) and ida (exempt from both policies) read the views unfiltered: as the engine answers them."""
    extra = {"duck": ("depts_udf", "numbers_v"), "pg": ("depts_udf",), "lite": ()}[engine]
    for name in (*OPEN_VIEWS, *FILTERED_VIEWS, *extra):
        names, expected = world.engine(engine, f"SELECT * FROM {name}", truth=False)
        for user in ("alice", "ida"):
            got = world.run(f"SELECT * FROM {view(engine, name)}", user=user)
            assert got.column_names == names, (name, user)
            assert exact(rows_of(got)) == exact(expected), (name, user)


def test_what_a_view_reads_is_read_from_the_metadata_once_a_while(world, monkeypatch):
    """A dashboard's repeated queries over a view do not read its definition again (it is kept with the metadata)."""
    backend = world.gateway.sources.backend("duck")
    reads = []
    original = backend.view_definition
    monkeypatch.setattr(backend, "view_definition", lambda *args: reads.append(args) or original(*args))
    world.security.access.policies._metadata.clear()
    for n in range(3):
        world.run(f"SELECT name, {n} AS n FROM duck.main.depts_vv", user="wide")
    assert reads == [("main", "depts_vv"), ("main", "depts_v")]


def test_a_whole_source_grant_still_reads_through_the_policies(world):
    for engine in ENGINES:
        got = world.run(f"SELECT * FROM {engine}.{SCHEMA[engine]}.staff", user="wide")
        _, expected = world.engine(engine, "SELECT * FROM staff")
        assert normal(rows_of(got)) == normal(expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_prepared_statements_with_parameters_are_rewritten_at_each_execution(world, engine):
    client, options = world.client, bearer(world.tokens["bob"])
    sql = f"SELECT id, ssn FROM {engine}.{SCHEMA[engine]}.staff WHERE region = ? OR id > ?"
    prepared = raw.prepare(client, sql, options)
    handle = prepared.prepared_statement_handle
    params = pa.record_batch([pa.array(["US"]), pa.array([0], pa.int64())], names=["region", "id"])
    descriptor = raw.descriptor(pb.CommandPreparedStatementQuery(prepared_statement_handle=handle))
    writer, reader = client.do_put(descriptor, params.schema, options)
    writer.write_batch(params)
    writer.done_writing()
    reader.read()
    writer.close()
    _, table = raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=handle),
                                  options)
    assert sorted(rows_of(table)) == [(1, None), (3, None), (6, None)]
    raw.close_prepared(client, handle, options)


def test_history_records_whether_a_policy_rewrote_the_query(world):
    marker = "/* history-mark */"
    world.run(f"SELECT id {marker} FROM duck.main.staff")
    world.run(f"SELECT region {marker} FROM duck.main.depts")
    world.run(f"SELECT id {marker} FROM duck.main.staff", user="alice")
    rows = [r for r in search_history(world.store, limit=200) if marker in (r.get("sql_text") or "")]
    seen = sorted((r["user_name"], "staff" in r["sql_text"], r["policy_rewritten"]) for r in rows)
    assert seen == [("alice", True, False), ("bob", False, False), ("bob", True, True)]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_masked_column_keeps_its_type(world, engine):
    """bob (ssn masked to NULL), carol (exempt) and alice (admin, no policy) get one Arrow schema: the engine's."""
    sql = f"SELECT * FROM {engine}.{SCHEMA[engine]}.staff"
    masked, exempt, admin = (world.run(sql, user=user) for user in ("bob", "carol", "alice"))
    assert masked.column("ssn").null_count == masked.num_rows > 0
    def typed(table):
        return [(f.name, f.type) for f in table.schema]

    assert typed(masked) == typed(exempt) == typed(admin)
    assert masked.schema.field("ssn").type == pa.string()
    if engine in ("duck", "files"):  # DuckDB's own client, on the table the parquet files were written from
        import duckdb

        with duckdb.connect(str(world.truth["duck_raw_copy"]), read_only=True) as con:
            own = con.execute("SELECT * FROM staff").to_arrow_table().schema
        assert [f.type for f in masked.schema] == [f.type for f in own]
    grouped = world.run(f"SELECT ssn, count(*) AS n FROM {engine}.{SCHEMA[engine]}.staff GROUP BY ssn")
    assert grouped.schema.field("ssn").type == admin.schema.field("ssn").type


def test_masked_numbers_keep_their_type(world):
    """Masks on an integer and a decimal column (for one user only): the types each engine's table gives them."""
    add_role(world.store, "typed")
    add_user(world.store, "tess", PASSWORD, roles=["typed"], attributes={"region": "EU"})
    others = ("analyst", "hr", "everything")
    for engine in ENGINES:
        add_grant(world.store, "typed", engine, SCHEMA[engine], "staff")
        for column in ("id", "salary"):
            add_policy(world.store, PolicySpec(f"{engine}-typed-{column}", "column_mask",
                                               f"{engine}.{SCHEMA[engine]}.staff", column=column, exempt_roles=others))
    world.security.authenticator.identities.refresh()
    world.tokens["tess"] = sign_in(world.client, "tess", PASSWORD)
    try:
        for engine in ENGINES:
            sql = f"SELECT * FROM {engine}.{SCHEMA[engine]}.staff"
            masked, admin = world.run(sql, user="tess"), world.run(sql, user="alice")
            assert masked.column("id").null_count == masked.column("salary").null_count == masked.num_rows > 0
            assert [(f.name, f.type) for f in masked.schema] == [(f.name, f.type) for f in admin.schema], engine
    finally:
        for engine in ENGINES:
            for column in ("id", "salary"):
                remove_policy(world.store, f"{engine}-typed-{column}")
        remove_user(world.store, "tess")
        remove_role(world.store, "typed")
        world.security.authenticator.identities.refresh()
