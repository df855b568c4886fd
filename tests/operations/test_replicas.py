"""Three `nexus-flight serve` replicas on one PostgreSQL catalog behind nginx (`grpc_pass`, round robin).

Everything real: the served processes, Debian's nginx with `deploy/nginx.conf`, PostgreSQL as the shared catalog,
ADBC and pyarrow.flight as clients. Calls addressed to given replicas prove the cross-replica paths one by one
(GetFlightInfo on one, DoGet on another; prepare, bind, execute on three; a session option set on one honoured by
another); calls through nginx prove the proxy set-up. Each answer is compared with the engine's own (DuckDB over
the demo database, pyarrow over the parquet files, psycopg over PostgreSQL).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus_flight.catalog.key_handover import HANDLE_KEYS
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.vault import KeyRing, generate_key, parse_key
from nexus_flight.server.flight.protocol import flight as fpb
from nexus_flight.server.flight.protocol import sql as spb
from nexus_flight.server.flight.signed_handles import TICKET, HandleSigner
from tests.clients import toolchain
from tests.clients.jdbc_values import compare_result, from_getters
from tests.operations.serving import LONG_QUERY, serve_many, start_nginx, stop_behind_proxy, wait_for
from tests.support import flightsql_raw as raw
from tests.support.servers import READER_PASSWORD
from tests.support.services import free_port

pytestmark = pytest.mark.timeout(180)

USER, PASSWORD = "alice", "replica-test-password-1"
NATION_BY_REGION = "SELECT n_name FROM nation WHERE n_regionkey = ? ORDER BY n_name"
#: Prepared queries each of three ADBC clients runs through nginx while a replica is killed.
QUERIES_PER_CLIENT = 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, demo_data_dir, postgres_server):
    root = tmp_path_factory.mktemp("replicas")
    data = root / "data"
    data.mkdir()
    for demo in demo_data_dir.glob("tpch_*.duckdb"):
        (data / demo.name).symlink_to(demo)
    files = root / "trips"
    files.mkdir()
    for part in range(4):  # four files: a splittable scan
        pq.write_table(pa.table({"trip": pa.array(range(part * 100, part * 100 + 100), pa.int64()),
                                 "fare": pa.array([f"{i}.25" for i in range(100)]).cast(pa.decimal128(9, 2))}),
                       files / f"part-{part}.parquet")
    schema = f"nf_replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute("CREATE TABLE IF NOT EXISTS replica_colors (id int, name text)")
        conn.execute("TRUNCATE replica_colors")
        conn.execute("INSERT INTO replica_colors VALUES (1, 'red'), (2, 'green'), (3, 'blue')")
        conn.execute(f"GRANT SELECT ON replica_colors TO {postgres_server.reader}")
    url = (f"postgresql+psycopg://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/"
           f"{postgres_server.database}?options=-csearch_path%3D{schema}")
    pg = postgres_server.options()
    port = free_port()  # nginx's: the replicas' upstream Flight SQL source is the cluster itself, through nginx
    config = root / "gateway.toml"
    config.write_text(f"""
[server]
catalog_url = "{url}"
health_checks = false
[server.auth]
enabled = true

[[sources]]
name = "files"
type = "local_files"
options = {{ tables = [ {{ name = "trips", location = "{files}" }} ] }}

[[sources]]
name = "pg"
type = "postgresql"
options = {{ host = "{pg['host']}", port = {pg['port']}, database = "{pg['database']}", username = "{pg['username']}" }}
secrets = {{ password = "${{env:REPLICA_PG_PASSWORD}}" }}

[[sources]]
name = "up"
type = "flightsql"
options = {{ uri = "grpc://127.0.0.1:{port}", username = "{USER}" }}
secrets = {{ password = "${{env:REPLICA_UP_PASSWORD}}" }}
""")
    old_key = generate_key()
    saved = {k: os.environ.get(k) for k in ("NEXUS_FLIGHT_MASTER_KEY", "REPLICA_PG_PASSWORD", "REPLICA_UP_PASSWORD")}
    os.environ.update(NEXUS_FLIGHT_MASTER_KEY=old_key, REPLICA_PG_PASSWORD=READER_PASSWORD,
                      REPLICA_UP_PASSWORD=PASSWORD)
    replicas, proxy = [], None
    try:
        subprocess.run(["nexus-flight", "users", "add", USER, "--role", "admin", "--password", "-",
                        "--config", str(config)], input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True, timeout=60)
        replicas.extend(serve_many(3, data, "--config", str(config), "--http-port", "0"))
        proxy = start_nginx([r.location.removeprefix("grpc://") for r in replicas], port, root / "nginx")
        # The engine's own answers come from a copy: this process may hold the demo file open otherwise configured.
        reference = root / "reference.duckdb"
        shutil.copyfile(next(demo_data_dir.glob("tpch_*.duckdb")), reference)
        yield {"replicas": replicas, "proxy": f"grpc://127.0.0.1:{port}", "config": config, "url": url,
               "data": data, "files": files, "old_key": old_key, "demo": reference,
               "pg_dsn": postgres_server.dsn()}
    finally:
        stop_behind_proxy(proxy, replicas)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            conn.execute("DROP TABLE IF EXISTS replica_colors")


def _client(location: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    client = flight.FlightClient(location)
    token = client.authenticate_basic_token(USER, PASSWORD)
    return client, flight.FlightCallOptions(headers=[token])


def _duckdb(cluster, sql: str, *params) -> pa.Table:
    with duckdb.connect(str(cluster["demo"]), read_only=True) as conn:
        return conn.execute(sql, list(params)).to_arrow_table()


def _values(table: pa.Table) -> list:
    return table.to_pylist()


def test_get_flight_info_on_one_replica_and_do_get_on_another(cluster):
    first, second, third = (_client(r.location) for r in cluster["replicas"])
    query = "SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey"
    info = first[0].get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=query)), first[1])
    [endpoint] = info.endpoints
    assert endpoint.expiration_time is not None  # clients may retry DoGet (on any replica)
    expected = _duckdb(cluster, query)
    for client, options in (second, third, first):
        got = client.do_get(endpoint.ticket, options).read_all()
        assert got.column_names == expected.column_names and _values(got) == _values(expected)


def test_prepare_on_one_bind_on_a_second_execute_on_a_third(cluster):
    (a, a_opt), (b, b_opt), (c, c_opt) = (_client(r.location) for r in cluster["replicas"])
    prepared = raw.prepare(a, NATION_BY_REGION, a_opt)
    handle = prepared.prepared_statement_handle
    parameters = raw.read_schema(prepared.parameter_schema)
    writer, results = b.do_put(raw.descriptor(raw.pb.CommandPreparedStatementQuery(prepared_statement_handle=handle)),
                               parameters, b_opt)
    writer.write_batch(pa.record_batch([pa.array([3], parameters.field(0).type)], schema=parameters))
    writer.done_writing()
    bound = spb.DoPutPreparedStatementResult()
    bound.ParseFromString(results.read().to_pybytes())
    writer.close()
    assert bound.prepared_statement_handle != handle  # the spec's stateless prepared statements
    command = raw.pb.CommandPreparedStatementQuery(prepared_statement_handle=bound.prepared_statement_handle)
    info = c.get_flight_info(raw.descriptor(command), c_opt)
    got = a.do_get(info.endpoints[0].ticket, a_opt).read_all()
    assert _values(got) == _values(_duckdb(cluster, NATION_BY_REGION.replace("?", "$1"), 3))


def test_adbc_prepared_statements_through_the_proxy(cluster):
    """Each execution is four or five calls, each balanced on its own: they cross replicas."""
    kwargs = {"username": USER, "password": PASSWORD}
    with flightsql.connect(cluster["proxy"], db_kwargs=kwargs, autocommit=True) as conn, conn.cursor() as cur:
        for region in range(5):
            cur.execute(NATION_BY_REGION, (region,))
            got = cur.fetch_arrow_table()
            assert _values(got) == _values(_duckdb(cluster, NATION_BY_REGION.replace("?", "$1"), region))
        cur.execute("SELECT sum(trip) AS s, count(*) AS n, sum(fare) AS f FROM files.main.trips")
        expected = pq.read_table(cluster["files"])
        assert cur.fetchall() == [(sum(expected["trip"].to_pylist()), 400, sum(expected["fare"].to_pylist()))]
        cur.execute("SELECT id, name FROM pg.public.replica_colors ORDER BY id")
        assert cur.fetchall() == [(1, "red"), (2, "green"), (3, "blue")]


def _queries_per_replica(cluster) -> list[float]:
    counts = []
    for replica in cluster["replicas"]:
        with urllib.request.urlopen(replica.http + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
        counts.append(sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                          if s.name == "nexus_queries_total"))
    return counts


def test_the_jdbc_driver_prepares_and_executes_through_the_proxy(cluster, tmp_path):
    """The Arrow Flight SQL JDBC driver through nginx: its prepare, bind, GetFlightInfo and DoGet calls are
    balanced one by one, so they cross replicas (each replica's query counter moves); answers as the engines'."""
    proxy_port = cluster["proxy"].rsplit(":", 1)[1]
    url = f"jdbc:arrow-flight-sql://127.0.0.1:{proxy_port}/?useEncryption=false"
    pg_query = "SELECT id, name FROM pg.public.replica_colors WHERE id > ? ORDER BY id"
    files_query = "SELECT trip, fare FROM files.main.trips WHERE fare > ?"
    scenarios = [
        ("connect", "connect", url, f"user={USER}", f"password={PASSWORD}"),
        ("nations", "prepared", NATION_BY_REGION, *" | ".join(f"long:{r}" for r in range(5)).split(" ")),
        ("colors", "prepared", pg_query, "int:1", "|", "int:0"),
        ("trips", "prepared", files_query, "decimal:90.00"),
    ]
    path = tmp_path / "scenarios.tsv"
    path.write_text("\n".join("\t".join(s) for s in scenarios) + "\n", encoding="utf-8")
    before = _queries_per_replica(cluster)
    answers = toolchain.run_lines([*toolchain.java_command("JdbcScenarios"), str(path)], timeout=120)
    moved = [after - earlier for after, earlier in zip(_queries_per_replica(cluster), before, strict=True)]
    assert sum(1 for delta in moved if delta > 0) >= 2, moved
    for name in ("connect", "nations", "colors", "trips"):
        assert answers[name]["ok"], answers[name].get("error")
    nations = answers["nations"]["result"]["runs"]
    assert len(nations) == 5
    for region, got in enumerate(nations):
        compare_result(got, _duckdb(cluster, NATION_BY_REGION.replace("?", "$1"), region))
    with psycopg.connect(cluster["pg_dsn"]) as conn:
        for got, bound in zip(answers["colors"]["result"]["runs"], (1, 0), strict=True):
            expected = conn.execute(pg_query.replace("?", "%s").replace("pg.public.", ""), (bound,)).fetchall()
            assert [(row[0]["value"], row[1]["value"]) for row in got["rows"]] == expected
    [trips] = answers["trips"]["result"]["runs"]  # four endpoints (groups of files), fetched by the driver
    whole = pq.read_table(cluster["files"]).to_pylist()
    got = sorted((from_getters(r[0], pa.int64()), from_getters(r[1], pa.decimal128(9, 2))) for r in trips["rows"])
    assert got == sorted((r["trip"], r["fare"]) for r in whole if r["fare"] > 90)


def test_every_replica_counts_the_history_and_audit_rows_it_wrote(cluster):
    """``/metrics`` says what became of each replica's history and audit rows: all written, none dropped."""
    client, options = _client(cluster["replicas"][0].location)
    with pytest.raises(flight.FlightUnauthenticatedError):
        flight.connect(cluster["replicas"][0].location).authenticate_basic_token(USER, "not-the-password")
    info = client.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query="SELECT 1 AS x")), options)
    assert client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist() == [{"x": 1}]
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(cluster["replicas"][0].http + "/metrics", timeout=5) as answer:
            text = answer.read().decode()
        rows = {(s.labels["log"], s.labels["state"]): s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "nexus_catalog_rows_total"}
        queries = sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
                      if s.name == "nexus_queries_total")
        if (rows.get(("history", "written")) == queries and rows.get(("audit", "written"), 0) >= 1) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows[("history", "written")] == queries >= 1
    assert rows[("audit", "written")] >= 1  # the wrong password
    assert rows[("history", "dropped")] == rows[("audit", "dropped")] == 0


def test_an_upstream_flight_sql_servers_endpoints_are_fetched_through_any_replica(cluster):
    """The replicas' `up` source is a Flight SQL server answering with four endpoints (the cluster's own `files`
    source, through nginx): each endpoint the replicas advertise is one of their signed tickets wrapping the
    upstream's, redeemed here on every replica in turn."""
    clients = [_client(r.location) for r in cluster["replicas"]]
    query = "SELECT trip, fare FROM {} WHERE trip % 3 = 0 OR fare > 90"
    upstream, options = _client(cluster["proxy"])
    upstream_endpoints = upstream.get_flight_info(
        raw.descriptor(raw.pb.CommandStatementQuery(query=query.format("files.main.trips"))), options).endpoints
    assert len(upstream_endpoints) == 4
    expected = pa.concat_tables([upstream.do_get(e.ticket, options).read_all() for e in upstream_endpoints])
    (a, a_opt) = clients[0]
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=query.format("up.files.main.trips"))),
                             a_opt)
    assert len(info.endpoints) == 4
    parts = []
    for index, endpoint in enumerate(info.endpoints):
        client, client_options = clients[(index + 1) % 3]  # B, C, A, B
        parts.append(client.do_get(endpoint.ticket, client_options).read_all())
    got = pa.concat_tables(parts)
    assert got.schema.equals(expected.schema)
    rows = sorted(got.to_pylist(), key=lambda r: r["trip"])
    assert rows == sorted(expected.to_pylist(), key=lambda r: r["trip"])
    reference = pq.read_table(cluster["files"]).to_pylist()
    assert rows == sorted((r for r in reference if r["trip"] % 3 == 0 or r["fare"] > 90), key=lambda r: r["trip"])


def _cancel(client, options, info: flight.FlightInfo) -> int:
    request = fpb.CancelFlightInfoRequest(info=info.serialize())
    [result] = client.do_action(flight.Action("CancelFlightInfo", request.SerializeToString()), options)
    status = fpb.CancelFlightInfoResult()
    status.ParseFromString(result.body.to_pybytes())
    return status.status


def test_a_cancel_sent_to_one_replica_stops_the_query_another_runs(cluster):
    (a, a_opt), (b, b_opt), (c, c_opt) = (_client(r.location) for r in cluster["replicas"])
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=LONG_QUERY)), a_opt)
    outcome: list[BaseException | pa.Table] = []

    def fetch() -> None:
        try:
            outcome.append(a.do_get(info.endpoints[0].ticket, a_opt).read_all())
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    time.sleep(1.0)  # the query runs on replica A
    assert not outcome
    started = time.monotonic()
    assert _cancel(b, b_opt, info) == 1  # CANCELLED, answered by B for A's query
    worker.join(15)
    assert time.monotonic() - started < 10
    assert len(outcome) == 1 and isinstance(outcome[0], flight.FlightCancelledError), outcome
    # Nothing runs for that ticket any more, anywhere: NOT_CANCELLABLE.
    assert _cancel(c, c_opt, info) == 3
    # A made-up ticket is not written to the catalog for the others to look for.
    made_up = flight.FlightInfo(pa.schema([("s", pa.int64())]), info.descriptor,
                                [flight.FlightEndpoint(_as_ticket(b"NFt" + bytes(60)), [])], -1, -1)
    assert _cancel(b, b_opt, made_up) == 3


def test_a_cancel_of_a_query_that_ended_on_another_replica_is_answered_at_once(cluster):
    (a, a_opt), (b, b_opt), _ = (_client(r.location) for r in cluster["replicas"])
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query="SELECT 42 AS n")), a_opt)
    assert a.do_get(info.endpoints[0].ticket, a_opt).read_all().to_pylist() == [{"n": 42}]
    started = time.monotonic()
    assert _cancel(b, b_opt, info) == 3  # NOT_CANCELLABLE: A ran it to its end, B learns so from the catalog
    assert time.monotonic() - started < 1.0  # not the 2 s B waits for a replica that runs it
    # Nothing was left behind to refuse a second run of the ticket.
    assert b.do_get(info.endpoints[0].ticket, b_opt).read_all().to_pylist() == [{"n": 42}]


def test_a_cancel_sent_before_any_replica_started_the_query_refuses_its_later_start(cluster):
    (a, a_opt), (b, b_opt), (c, c_opt) = (_client(r.location) for r in cluster["replicas"])
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=LONG_QUERY)), a_opt)
    assert _cancel(b, b_opt, info) == 1  # CANCELLED: remembered for the start that has not come yet
    started = time.monotonic()
    with pytest.raises(flight.FlightCancelledError, match="cancelled .CancelFlightInfo. before it started"):
        c.do_get(info.endpoints[0].ticket, c_opt).read_all()
    assert time.monotonic() - started < 5  # refused, not run for the query's minutes
    with pytest.raises(flight.FlightCancelledError):  # on the replica that planned it, too
        a.do_get(info.endpoints[0].ticket, a_opt).read_all()


def _set_catalog(client, options, catalog: str) -> dict:
    request = fpb.SetSessionOptionsRequest()
    request.session_options["catalog"].string_value = catalog
    [result] = client.do_action(flight.Action("SetSessionOptions", request.SerializeToString()), options)
    parsed = fpb.SetSessionOptionsResult()
    parsed.ParseFromString(result.body.to_pybytes())
    return dict(parsed.errors)


def test_a_session_option_set_through_one_replica_is_honoured_by_another(cluster):
    (a, options), (b, _), _ = (_client(r.location) for r in cluster["replicas"])
    assert _set_catalog(a, options, "files") == {}
    # The same sign-in (its bearer token) on another replica: `trips` resolves in the session's catalog.
    _, table = raw.info_and_table(b, raw.pb.CommandStatementQuery(query="SELECT count(*) AS n FROM trips"), options)
    assert table.to_pylist() == [{"n": 400}]
    [result] = b.do_action(flight.Action("GetSessionOptions", b""), options)
    got = fpb.GetSessionOptionsResult()
    got.ParseFromString(result.body.to_pybytes())
    assert got.session_options["catalog"].string_value == "files"
    b.do_action(flight.Action("CloseSession", b""), options)
    # Closed everywhere: back on the default catalog.
    with pytest.raises(pa.ArrowKeyError, match="trips does not exist"):
        a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query="SELECT count(*) FROM trips")),
                          options)


def _ticket_handle(ticket: flight.Ticket) -> bytes:
    return raw.unpack(ticket.ticket, raw.pb.TicketStatementQuery).statement_handle


def _as_ticket(handle: bytes) -> flight.Ticket:
    return flight.Ticket(raw.pack(raw.pb.TicketStatementQuery(statement_handle=handle)))


def test_tampered_expired_and_foreign_tickets_are_refused_on_every_replica(cluster):
    (a, a_opt), (b, b_opt), _ = (_client(r.location) for r in cluster["replicas"])
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query="SELECT 42 AS n")), a_opt)
    handle = _ticket_handle(info.endpoints[0].ticket)
    tampered = bytearray(handle)
    tampered[len(handle) // 2] ^= 1
    for client, options in ((a, a_opt), (b, b_opt)):
        with pytest.raises(pa.ArrowInvalid, match="not a valid ticket: its signature does not match"):
            client.do_get(_as_ticket(bytes(tampered)), options).read_all()
    # Signed with this catalog's key, but past its expiry.
    store = CatalogStore(cluster["url"], keys=KeyRing(parse_key(cluster["old_key"])))
    try:
        signer = HandleSigner(lambda: HANDLE_KEYS.keys(store))
        expired = signer.sign(TICKET, {"sql": "SELECT 1", "user": USER, "exp": time.time() - 60,
                                       "schema": base64.b64encode(pa.schema([("n", pa.int32())]).serialize()
                                                                  .to_pybytes()).decode()})
    finally:
        store.close()
    with pytest.raises(pa.ArrowInvalid, match="the ticket has expired"):
        b.do_get(_as_ticket(expired), b_opt).read_all()
    foreign = HandleSigner().sign(TICKET, {"sql": "SELECT 1", "user": USER, "exp": time.time() + 60})
    with pytest.raises(pa.ArrowInvalid, match="signed by a key this gateway does not know"):
        a.do_get(_as_ticket(foreign), a_opt).read_all()


def test_a_replica_killed_mid_run_leaves_the_others_serving(cluster):
    """Clients go through nginx; one replica is SIGKILLed while they run. No wrong answer; every query answered
    (a call that was on the killed replica fails and the client retries, as it would with any server)."""
    expected = {r: _values(_duckdb(cluster, NATION_BY_REGION.replace("?", "$1"), r)) for r in range(5)}
    wrong, failures, answered = [], [], []

    def client_loop() -> None:
        kwargs = {"username": USER, "password": PASSWORD}
        conn = None
        try:
            for i in range(QUERIES_PER_CLIENT):
                region = i % 5
                for _attempt in range(3):
                    try:
                        if conn is None:  # a loaded machine may start a client late: its sign-in, too, may
                            # reach the replica being killed
                            conn = flightsql.connect(cluster["proxy"], db_kwargs=kwargs, autocommit=True)
                        with conn.cursor() as cur:
                            cur.execute(NATION_BY_REGION, (region,))
                            got = _values(cur.fetch_arrow_table())
                    except Exception as exc:  # retried on a new connection
                        failures.append(str(exc)[:200])
                        # After a failed call ADBC's connection miscounts its statements ("Underflow in
                        # closing this AdbcStatement" on every later cursor): a client reconnects.
                        if conn is not None:
                            with contextlib.suppress(Exception):
                                conn.close()
                        conn = None
                        continue
                    (answered if got == expected[region] else wrong).append(region)
                    break
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(answered) >= 6, seconds=90)  # killed mid-run: the clients are under way
    victim = cluster["replicas"][2]
    victim.process.kill()
    victim.process.wait(10)
    for thread in threads:
        thread.join(120)
    assert not wrong
    assert len(answered) == 3 * QUERIES_PER_CLIENT, sorted(set(failures))
    # The survivors go on serving GetFlightInfo on one and DoGet on the other.
    (a, a_opt), (b, b_opt) = (_client(r.location) for r in cluster["replicas"][:2])
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query="SELECT 7 AS n")), a_opt)
    assert b.do_get(info.endpoints[0].ticket, b_opt).read_all().to_pylist() == [{"n": 7}]


def test_vault_rotate_while_the_replicas_run(cluster):
    """The new master key reaches running replicas through the catalog: no restart, nothing fails."""
    new_key = generate_key()
    env = {**os.environ, "NEXUS_FLIGHT_MASTER_KEY": new_key, "NEXUS_FLIGHT_OLD_MASTER_KEYS": cluster["old_key"]}
    rotated = subprocess.run(["nexus-flight", "vault", "rotate", "--config", str(cluster["config"]), "--json"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    (a, a_opt), (b, b_opt) = (_client(r.location) for r in cluster["replicas"][:2])
    # A ticket signed with the handle key the rotation made (sealed under the new master key only).
    store = CatalogStore(cluster["url"], keys=KeyRing(parse_key(new_key)))
    try:
        fresh = HandleSigner(lambda: HANDLE_KEYS.keys(store)).sign(TICKET, {
            "sql": "SELECT 5 AS n", "user": USER, "exp": time.time() + 60,
            "schema": base64.b64encode(pa.schema([("n", pa.int32())]).serialize().to_pybytes()).decode()})
    finally:
        store.close()
    assert b.do_get(_as_ticket(fresh), b_opt).read_all().column(0).to_pylist() == [5]
    # Credentials re-sealed under the new key open on a replica started with the old one.
    with flightsql.connect(cluster["replicas"][1].location, db_kwargs={"username": USER, "password": PASSWORD},
                           autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg.public.replica_colors WHERE id > 1")
        assert cur.fetchall() == [(2,)]
    info = a.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query="SELECT 6 AS n")), a_opt)
    assert b.do_get(info.endpoints[0].ticket, b_opt).read_all().column(0).to_pylist() == [6]
    finished = subprocess.run(["nexus-flight", "vault", "finish-rotation", "--config", str(cluster["config"])],
                              env={**os.environ, "NEXUS_FLIGHT_MASTER_KEY": new_key}, capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0, finished.stderr
