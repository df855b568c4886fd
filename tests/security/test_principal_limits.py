"""Each user and API key held to its own limits, through real clients: rate, concurrency (queued or refused, per
source), rows, bytes and time; slots given back by killed clients; limits changed without a restart."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from nexus_flight.catalog.grants import add_grant
from nexus_flight.catalog.users import update_user
from nexus_flight.core.settings import AuthSettings, PrincipalLimitSettings
from nexus_flight.core.source import SourceSpec
from tests.security import test_security_cli
from tests.security.conftest import ALICE_PASSWORD, BOB_PASSWORD, bearer, sign_in

pytestmark = pytest.mark.timeout(120)

#: The fixture running ``nexus-flight`` commands in-process on the test's catalog.
cli = test_security_cli.cli

SMALL = "SELECT n_name FROM nation WHERE n_nationkey = 7"
ENDLESS = "SELECT range AS a, repeat('x', 100) AS c FROM range(100000000)"
SLOW = "SELECT sum(range % 7) AS s FROM range(3000000000)"


def _limit(secured, user: str, **limits) -> None:
    update_user(secured.security.authenticator.identities.store, user, limits=limits)
    secured.security.authenticator.identities.refresh()  # what the background refresh does within refresh_seconds


def _query(client: flight.FlightClient, token: str, sql: str = SMALL):
    info = client.get_flight_info(flight.FlightDescriptor.for_command(_command(sql)), bearer(token))
    return client.do_get(info.endpoints[0].ticket, bearer(token))


def _command(sql: str) -> bytes:
    from flightsql import flightsql_pb2 as pb
    from google.protobuf import any_pb2

    packed = any_pb2.Any()
    packed.Pack(pb.CommandStatementQuery(query=sql))
    return packed.SerializeToString()


def _retry_after(message: str) -> float:
    found = re.search(r"retry after ([0-9.]+) s", message)
    assert found, message
    return float(found.group(1))


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def secured(secure_gateway, store):
    add_grant(store, "analyst", "demo")
    return secure_gateway()


def test_the_query_rate_admits_the_burst_then_one_query_per_interval_and_no_other_user_waits(secured):
    """20/min, burst 3: three at once, then one every 3 s; ADBC gets UNAVAILABLE naming the limit and the wait."""
    _limit(secured, "bob", queries_per_minute=20, query_burst=3)
    alice = secured.client()
    alice_token = sign_in(alice, "alice", ALICE_PASSWORD)
    kwargs = {"username": "bob", "password": BOB_PASSWORD}
    with flightsql.connect(secured.location, db_kwargs=kwargs, autocommit=True) as conn, conn.cursor() as cur:
        for _ in range(3):
            cur.execute(SMALL)
            assert cur.fetchall() == [("GERMANY",)]
        with pytest.raises(flightsql.OperationalError) as refused:
            cur.execute(SMALL)
            cur.fetchall()
        text = str(refused.value)
        assert "Unavailable" in text and "queries_per_minute=20" in text and "query_burst=3" in text, text
        wait = _retry_after(text)
        assert 1.0 <= wait <= 3.1, text  # 3 s a token, less what accrued while the first three ran
        # Alice has her own budget (none): twenty queries while bob waits.
        for _ in range(20):
            assert _query(alice, alice_token).read_all().num_rows == 1
        time.sleep(wait)
        cur.execute(SMALL)
        assert cur.fetchall() == [("GERMANY",)]
        with pytest.raises(flightsql.OperationalError, match="queries_per_minute"):
            cur.execute(SMALL)
            cur.fetchall()
    counts = secured.gateway.service.limiter.counts()
    assert counts.refused == {"queries_per_minute": 2} and counts.admitted == 4


def test_concurrent_queries_are_refused_at_once_or_queued_until_a_slot_frees(secured):
    _limit(secured, "alice", max_concurrent_queries=1)
    client = secured.client()
    token = sign_in(client, "alice", ALICE_PASSWORD)
    held = _query(client, token, ENDLESS)
    held.read_chunk()
    with pytest.raises(flight.FlightUnavailableError, match=r"max_concurrent_queries=1\).*retry after 1 s"):
        _query(client, token).read_all()
    assert secured.gateway.service.limiter.counts().queued == 0  # refused at once: no queue configured
    assert held.read_chunk().data.num_rows > 0  # the running query goes on

    _limit(secured, "alice", max_concurrent_queries=1, queue_timeout_seconds=0.6)
    started = time.monotonic()
    with pytest.raises(flight.FlightUnavailableError, match="queue_timeout_seconds=0.6"):
        _query(client, token).read_all()
    assert 0.55 <= time.monotonic() - started < 10

    _limit(secured, "alice", max_concurrent_queries=1, queue_timeout_seconds=10)
    freed = threading.Timer(0.5, held.cancel)
    freed.start()
    started = time.monotonic()
    assert _query(client, token).read_all().num_rows == 1  # waited for the cancelled stream's slot
    assert 0.4 <= time.monotonic() - started < 10
    freed.join()
    counts = secured.gateway.service.limiter.counts()
    assert counts.queued == 2 and counts.refused == {"max_concurrent_queries": 2} and counts.waiting == 0
    _wait_for(lambda: secured.gateway.service.limiter.running(_principal(secured, "alice")) == 0)


def test_the_concurrency_limit_per_source_leaves_other_sources_free(secure_gateway, store, tmp_path):
    path = tmp_path / "second.duckdb"
    with duckdb.connect(str(path)) as db:
        db.execute("CREATE TABLE t AS SELECT 1 AS x")
    secured = secure_gateway(sources=[SourceSpec("second", "duckdb", {"path": str(path)})])
    _limit(secured, "alice", max_concurrent_queries_per_source=1)
    client = secured.client()
    token = sign_in(client, "alice", ALICE_PASSWORD)
    held = _query(client, token, ENDLESS)
    held.read_chunk()
    assert _query(client, token, "SELECT x FROM second.main.t").read_all().num_rows == 1
    with pytest.raises(flight.FlightUnavailableError,
                       match=r"queries on source 'demo' \(max_concurrent_queries_per_source=1\)"):
        _query(client, token).read_all()
    held.cancel()
    _wait_for(lambda: secured.gateway.service.limiter.running(_principal(secured, "alice")) == 0)
    assert _query(client, token).read_all().num_rows == 1


def test_rows_and_bytes_caps_of_a_user_are_the_lower_of_theirs_and_the_servers(secure_gateway, store):
    add_grant(store, "analyst", "demo")
    secured = secure_gateway(max_result_rows=20)
    client = secured.client()
    bob, alice = sign_in(client, "bob", BOB_PASSWORD), sign_in(client, "alice", ALICE_PASSWORD)
    _limit(secured, "bob", max_rows=10)
    with pytest.raises(pa.ArrowInvalid, match=r"more than 10 rows, the caller's limit \(max_rows=10\)"):
        _query(client, bob, "SELECT n_name FROM nation").read_all()
    # Alice has no cap of her own: the server's applies, named as the server's.
    with pytest.raises(pa.ArrowInvalid, match=r"more than 20 rows, the server's limit \(max_result_rows=20\)"):
        _query(client, alice, "SELECT n_name FROM nation").read_all()
    assert _query(client, alice, "SELECT n_name FROM nation LIMIT 20").read_all().num_rows == 20
    _limit(secured, "bob", max_rows=50)  # higher than the server's: the server's stands
    with pytest.raises(pa.ArrowInvalid, match=r"max_result_rows=20"):
        _query(client, bob, "SELECT n_name FROM nation").read_all()
    _limit(secured, "bob", max_bytes=64)
    with pytest.raises(pa.ArrowInvalid, match=r"the caller's limit \(max_bytes=64\)"):
        _query(client, bob, "SELECT n_name, n_comment FROM nation LIMIT 5").read_all()


def test_a_users_time_limit_shorter_than_the_servers_stops_their_query_and_nobody_elses(secured):
    _limit(secured, "alice", max_query_seconds=0.5)
    client = secured.client()
    token = sign_in(client, "alice", ALICE_PASSWORD)
    started = time.monotonic()
    with pytest.raises(flight.FlightTimedOutError, match=r"caller's time limit \(max_query_seconds=0.5\)"):
        _query(client, token, SLOW).read_all()
    assert time.monotonic() - started < 10
    bob = sign_in(client, "bob", BOB_PASSWORD)
    assert _query(client, bob).read_all().num_rows == 1


READER = r"""
import sys
import adbc_driver_flightsql.dbapi as flightsql
conn = flightsql.connect(sys.argv[1], db_kwargs={"username": "alice", "password": sys.argv[2]}, autocommit=True)
cur = conn.cursor()
cur.execute(sys.argv[3])
rows = 0
for batch in cur.fetch_record_batch():
    rows += batch.num_rows
    if rows >= 100_000:
        print(rows, flush=True)
        sys.stdin.read()
"""


def test_slots_of_a_client_killed_mid_stream_are_given_back(secured):
    _limit(secured, "alice", max_concurrent_queries=2)
    readers = [subprocess.Popen([sys.executable, "-c", READER, secured.location, ALICE_PASSWORD, ENDLESS],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for reader in readers:
            assert int(reader.stdout.readline()) >= 100_000
        alice = _principal(secured, "alice")
        assert secured.gateway.service.limiter.running(alice) == 2
        client = secured.client()
        token = sign_in(client, "alice", ALICE_PASSWORD)
        with pytest.raises(flight.FlightUnavailableError, match="max_concurrent_queries=2"):
            _query(client, token).read_all()
    finally:
        for reader in readers:
            reader.kill()
            reader.wait()
    _wait_for(lambda: secured.gateway.service.limiter.running(alice) == 0)
    assert _query(client, token).read_all().num_rows == 1
    assert secured.gateway.service.limiter.counts().running == 0


def test_server_default_limits_reload_and_apply_to_everyone_without_their_own(secured):
    client = secured.client()
    token = sign_in(client, "bob", BOB_PASSWORD)
    for _ in range(3):
        _query(client, token).read_all()
    gateway = secured.gateway
    settings = gateway.settings.model_copy(update={"limits": PrincipalLimitSettings(max_rows=3)})
    gateway.apply_settings(settings)  # what SIGHUP does with a changed [server.limits]
    with pytest.raises(pa.ArrowInvalid, match=r"max_rows=3"):
        _query(client, token, "SELECT n_name FROM nation").read_all()
    _limit(secured, "bob", max_rows=100)  # a user's own limit wins over the default
    assert _query(client, token, "SELECT n_name FROM nation").read_all().num_rows == 25


def test_without_authentication_the_server_defaults_hold_each_labelled_caller(make_gateway):
    gateway = make_gateway(limits=PrincipalLimitSettings(queries_per_minute=6, query_burst=1))
    client = flight.FlightClient(gateway.location)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(_command(SMALL)))
    assert client.do_get(info.endpoints[0].ticket).read_all().num_rows == 1
    with pytest.raises(flight.FlightUnavailableError, match=r"queries_per_minute=6.*retry after (9\.[0-9]|10\.0) s"):
        client.get_flight_info(flight.FlightDescriptor.for_command(_command(SMALL)))  # refused where it is planned
    text = gateway.metrics.text().decode()
    assert 'nexus_admission_refused_total{limit="queries_per_minute"} 1.0' in text
    assert "nexus_admission_admitted_total 1.0" in text


def _principal(secured, user: str):
    from nexus_flight.server.query.principal import Principal

    return Principal(name=user, authenticated=True)


def test_sighup_applies_a_changed_server_limits_table_to_open_connections(tmp_path, demo_data_dir):
    from tests.operations.serving import serve, wait_for

    for demo in demo_data_dir.glob("tpch_*.duckdb"):
        (tmp_path / demo.name).symlink_to(demo)
    config = tmp_path / "gateway.toml"
    config.write_text("[server]\n")
    served = serve(tmp_path, "--config", str(config))
    try:
        with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT n_name FROM nation")
            assert len(cur.fetchall()) == 25
            config.write_text("[server.limits]\nmax_rows = 3\nqueries_per_minute = 600\n")
            served.signal(signal.SIGHUP)
            wait_for(lambda: any("configuration reloaded" in line and "limits" in line for line in served.out))
            with pytest.raises(flightsql.ProgrammingError, match=r"max_rows=3"):
                cur.execute("SELECT n_name FROM nation")
                cur.fetchall()
        served.signal(signal.SIGTERM)
        assert served.wait(30) == 0
    finally:
        served.stop()


def test_limits_set_with_the_cli_apply_to_a_running_gateway_within_its_refresh(cli, secure_gateway, store):
    add_grant(store, "analyst", "demo")
    secured = secure_gateway(auth=AuthSettings(enabled=True, refresh_seconds=0.2))
    client = secured.client()
    token = sign_in(client, "bob", BOB_PASSWORD)
    code, shown, _ = cli("users", "limits", "bob", "--limit", "queries_per_minute=6", "--limit", "query_burst=1")
    assert code == 0 and shown["limits"] == {"queries_per_minute": 6.0, "query_burst": 1}

    def refused() -> bool:
        try:
            _query(client, token).read_all()
            return False
        except flight.FlightUnavailableError as exc:
            return "queries_per_minute=6" in str(exc)

    _wait_for(refused, seconds=5)
    _, shown, _ = cli("users", "limits", "bob", "--unset", "queries_per_minute", "--unset", "query_burst")
    assert shown["limits"] == {}
    _wait_for(lambda: not refused(), seconds=5)
    code, _, err = cli("users", "limits", "bob", "--limit", "max_rows=many")
    assert code == 2 and "AU-009" in err and "limits.max_rows: expected a number" in err
    code, _, err = cli("roles", "limits", "analyst", "--limit", "max_rowz=5")
    assert code == 2 and "AU-009" in err and "unknown limit 'max_rowz'" in err
    _, role, _ = cli("roles", "add", "etl", "--limit", "max_concurrent_queries=2")
    assert role["limits"] == {"max_concurrent_queries": 2}
    _, key, _ = cli("keys", "create", "bob", "nightly", "--limit", "max_query_seconds=30.5")
    assert key["limits"] == {"max_query_seconds": 30.5}


def _prepare(client, token: str, sql: str = SMALL) -> bytes:
    from tests.support import flightsql_raw as raw

    return raw.prepare(client, sql, bearer(token)).prepared_statement_handle


def _execute_prepared(client, token: str, handle: bytes) -> pa.Table:
    from flightsql import flightsql_pb2 as pb

    from tests.support import flightsql_raw as raw

    return raw.info_and_table(client, pb.CommandPreparedStatementQuery(prepared_statement_handle=handle),
                              bearer(token))[1]


def _refused_for_rate(call) -> str:
    with pytest.raises(flight.FlightUnavailableError) as refused:
        call()
    assert "queries_per_minute=6" in str(refused.value) and "query_burst=3" in str(refused.value)
    return str(refused.value)


def test_the_rate_is_charged_once_per_query_where_its_planning_starts(secured):
    """6/min, burst 3 (a token every 10 s): planning alone costs a token; plan then DoGet costs one, not two."""
    _limit(secured, "bob", queries_per_minute=6, query_burst=3)
    client = secured.client()
    bob = sign_in(client, "bob", BOB_PASSWORD)
    descriptor = flight.FlightDescriptor.for_command(_command(SMALL))
    for _ in range(3):  # GetFlightInfo, never redeemed: the engine planned it, so it counts
        client.get_flight_info(descriptor, bearer(bob))
    _refused_for_rate(lambda: client.get_flight_info(descriptor, bearer(bob)))
    with pytest.raises(pa.ArrowInvalid, match="queries_per_minute=6"):  # pyarrow's GetSchema sends no UNAVAILABLE
        client.get_schema(descriptor, bearer(bob))
    _refused_for_rate(lambda: _prepare(client, bob))
    limiter = secured.gateway.service.limiter
    assert limiter.counts().refused == {"queries_per_minute": 3} and limiter.counts().admitted == 0

    alice_token = sign_in(client, "alice", ALICE_PASSWORD)
    _limit(secured, "alice", queries_per_minute=6, query_burst=3)
    for _ in range(3):  # plan -> DoGet three times: three tokens, the DoGets spend what planning took
        assert _query(client, alice_token).read_all().to_pylist() == [{"n_name": "GERMANY"}]
    _refused_for_rate(lambda: _query(client, alice_token))
    assert limiter.counts().admitted == 3

    carol = "carol"
    from nexus_flight.catalog.users import add_user

    add_user(secured.security.authenticator.identities.store, carol, "carol-tuna-melody-31", roles=["analyst"],
             limits={"queries_per_minute": 6, "query_burst": 3})
    secured.security.authenticator.identities.refresh()
    carol_token = sign_in(client, carol, "carol-tuna-melody-31")
    handle = _prepare(client, carol_token)  # token 1, spent by the first execution
    for _ in range(3):  # executions 1, 2 (token 2) and 3 (token 3)
        assert _execute_prepared(client, carol_token, handle).num_rows == 1
    _refused_for_rate(lambda: _execute_prepared(client, carol_token, handle))
    assert limiter.counts().admitted == 6


def test_a_ticket_redeemed_twice_pays_for_its_second_run(secured):
    _limit(secured, "bob", queries_per_minute=6, query_burst=2)
    client = secured.client()
    bob = sign_in(client, "bob", BOB_PASSWORD)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(_command(SMALL)), bearer(bob))
    for _ in range(2):  # the first run spends the planning's token, the second takes the last one
        assert client.do_get(info.endpoints[0].ticket, bearer(bob)).read_all().num_rows == 1
    with pytest.raises(flight.FlightUnavailableError, match="queries_per_minute=6"):
        client.do_get(info.endpoints[0].ticket, bearer(bob)).read_all()
