"""A scan of several files is served as several endpoints (groups of files), each redeemable on its own.

The rows of all endpoints together are the rows of the query read whole (compared with pyarrow's own reading of
the files); a query whose rows depend on each other (aggregate, ORDER BY, LIMIT, DISTINCT, join) stays whole.
"""

from __future__ import annotations

import decimal
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from nexus_flight.core.source import SourceSpec
from nexus_flight.server.flight import protocol
from tests.support import flightsql_raw as raw
from tests.support.services import wait_until


@pytest.fixture
def files(tmp_path):
    for part in range(5):
        pq.write_table(pa.table({
            "id": pa.array(range(part * 1000, part * 1000 + 1000), pa.int64()),
            "name": pa.array([f"row-{i}" if i % 7 else None for i in range(1000)]),
            "amount": pa.array([decimal.Decimal(f"{i}.{part}5") for i in range(1000)], pa.decimal128(12, 2)),
        }), tmp_path / f"part-{part}.parquet")
    return tmp_path


def _source(path) -> SourceSpec:
    return SourceSpec(name="files", kind="files", options={"tables": [{"name": "t", "location": str(path)}]})


def _sorted(table: pa.Table) -> list:
    return sorted(table.to_pylist(), key=lambda row: row["id"])


def _endpoints(client, sql: str) -> list[flight.FlightEndpoint]:
    return list(client.get_flight_info(raw.descriptor(raw.pb.CommandStatementQuery(query=sql))).endpoints)


def test_a_scan_of_files_is_served_as_groups_of_files_that_add_up_to_the_whole(make_gateway, files):
    gw = make_gateway(sources=(_source(files),), max_endpoints=4)
    whole = pq.read_table(files)
    expected = whole.filter(pc.greater(whole["amount"], pa.scalar(decimal.Decimal("500"), pa.decimal128(12, 2))))
    with flight.connect(gw.location) as client:
        endpoints = _endpoints(client, "SELECT id, name, amount FROM files.main.t WHERE amount > 500")
        assert len(endpoints) == 4 and all(list(e.locations) == [] for e in endpoints)
        parts = [client.do_get(e.ticket).read_all() for e in endpoints]
        assert all(p.schema.equals(expected.schema) for p in parts)
        ids = [set(p["id"].to_pylist()) for p in parts]
        assert all(ids[i].isdisjoint(ids[j]) for i in range(4) for j in range(i + 1, 4))
        assert _sorted(pa.concat_tables(parts)) == _sorted(expected)
    # ADBC fetches every endpoint: the same rows.
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, amount FROM files.main.t WHERE amount > 500")
        assert _sorted(cur.fetch_arrow_table()) == _sorted(expected)


@pytest.mark.parametrize("sql", [
    "SELECT count(*) AS n FROM files.main.t",
    "SELECT id FROM files.main.t ORDER BY id",
    "SELECT id FROM files.main.t LIMIT 10",
    "SELECT DISTINCT name FROM files.main.t",
    "SELECT id, row_number() OVER () AS r FROM files.main.t",
    "SELECT a.id FROM files.main.t a JOIN files.main.t b ON a.id = b.id",
    "SELECT id FROM files.main.t WHERE id IN (SELECT max(id) FROM files.main.t)",
    "SELECT id FROM files.main.t UNION ALL SELECT id FROM files.main.t",
])
def test_queries_whose_rows_depend_on_each_other_stay_whole(make_gateway, files, sql):
    gw = make_gateway(sources=(_source(files),), max_endpoints=4)
    with flight.connect(gw.location) as client:
        assert len(_endpoints(client, sql)) == 1


def test_split_endpoints_name_the_advertised_locations_and_one_endpoint_is_the_default_off(make_gateway, files):
    gw = make_gateway(sources=(_source(files),), max_endpoints=3,
                      advertised_locations=["grpc+tls://flight.example.com:443"])
    with flight.connect(gw.location) as client:
        endpoints = _endpoints(client, "SELECT id FROM files.main.t")
        assert len(endpoints) == 3
        assert [[loc.uri.decode() for loc in e.locations] for e in endpoints] == [
            ["grpc+tls://flight.example.com:443"]] * 3
    single = make_gateway(sources=(_source(files),), max_endpoints=1)
    with flight.connect(single.location) as client:
        assert len(_endpoints(client, "SELECT id FROM files.main.t")) == 1


def test_an_upstream_flight_sql_servers_own_endpoints_are_passed_through_as_signed_gateway_tickets(make_gateway,
                                                                                                  files):
    """The upstream is another gateway serving the files as four endpoints: a real Flight SQL server."""
    upstream = make_gateway(sources=(_source(files),), max_endpoints=4, demo_scale=None)
    spec = SourceSpec(name="up", kind="flightsql", options={"uri": upstream.location})
    gw = make_gateway(sources=(spec,), max_endpoints=3)
    events = []
    gw.service.observers.append(events.append)
    sql = "SELECT id, name, amount FROM files.main.t WHERE amount > 500 OR name IS NULL"
    with flightsql.connect(upstream.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        expected = cur.fetch_arrow_table()  # the upstream's own answer
    with flight.connect(upstream.location) as client:
        upstream_tickets = [e.ticket.ticket for e in _endpoints(client, sql)]
    assert len(upstream_tickets) == 4
    gateway_sql = sql.replace("files.main.t", "up.files.main.t")
    with flight.connect(gw.location) as client:
        endpoints = _endpoints(client, gateway_sql)
        assert len(endpoints) == 3 and all(list(e.locations) == [] for e in endpoints)
        for endpoint in endpoints:  # the upstream's tickets travel sealed: clients cannot fetch around the gateway
            assert not any(t[-40:] in endpoint.ticket.ticket for t in upstream_tickets)
        parts = [client.do_get(e.ticket).read_all() for e in endpoints]
        assert [p.num_rows > 0 for p in parts] == [True] * 3
        # Each endpoint ran as one query of the gateway: its checks, limits and history.
        assert wait_until(lambda: len(events) == 3)
        assert [(e.source, e.status, e.rows) for e in events] == [("up", "success", p.num_rows) for p in parts]
        del events[:]
        assert all(p.schema.equals(expected.schema) for p in parts)
        assert _sorted(pa.concat_tables(parts)) == _sorted(expected)
        # An aggregate is the upstream's one endpoint, an ordered result stays whole: each runs when redeemed.
        for query, ordered in (("SELECT count(*) AS n, sum(amount) AS s FROM {}", False),
                               ("SELECT id, amount FROM {} WHERE id % 7 = 1 ORDER BY amount DESC, id", True)):
            [endpoint] = _endpoints(client, query.format("up.files.main.t"))
            with flightsql.connect(upstream.location, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute(query.format("files.main.t"))
                own = cur.fetch_arrow_table()
            got = client.do_get(endpoint.ticket).read_all()
            assert got.schema.equals(own.schema) and got.to_pylist() == own.to_pylist()
            assert own.num_rows > 1 or not ordered
        tampered = bytearray(endpoints[0].ticket.ticket)
        tampered[-40] ^= 1
        with pytest.raises(pa.ArrowInvalid, match="not a valid ticket"):
            client.do_get(flight.Ticket(bytes(tampered))).read_all()
    with flightsql.connect(gw.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(gateway_sql)
        assert _sorted(cur.fetch_arrow_table()) == _sorted(expected)


def _counting_flight_infos(upstream) -> list[str]:
    """Each GetFlightInfo of a query the upstream gateway answers (its own Flight server, counted as it serves).

    ADBC runs a query as a prepared statement (CommandPreparedStatementQuery); GetSqlInfo of a new connection is
    not a query and is not counted.
    """
    asked: list[str] = []
    serve = upstream.server.get_flight_info

    def counted(context, descriptor):
        kind = type(protocol.unpack_any(descriptor.command)).__name__
        if kind in ("CommandStatementQuery", "CommandPreparedStatementQuery"):
            asked.append(kind)
        return serve(context, descriptor)

    upstream.server.get_flight_info = counted
    return asked


@pytest.mark.parametrize("ttl", [None, 1], ids=["redeemed", "refused"])
def test_an_upstream_answering_one_endpoint_is_asked_for_it_once_and_again_only_when_it_refuses_the_ticket(
        make_gateway, files, ttl):
    """An aggregate is one upstream endpoint: its ticket is redeemed at DoGet, not the query asked for again.

    With the upstream's tickets expired by the time the gateway's is redeemed (the upstream refuses it, as ROAPI
    refuses a ticket from another connection), the query is asked for again and the answer is still the upstream's.
    """
    upstream = make_gateway(sources=(_source(files),), max_endpoints=4, demo_scale=None,
                            **({"handle_ttl_seconds": ttl} if ttl else {}))
    upstream.server.signer.leeway_seconds = 0  # no clock skew between one machine's processes
    gw = make_gateway(sources=(SourceSpec(name="up", kind="flightsql", options={"uri": upstream.location}),),
                      max_endpoints=3)
    sql = "SELECT count(*) AS n, sum(amount) AS s, min(name) AS first FROM {}"
    with flightsql.connect(upstream.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql.format("files.main.t"))
        expected = cur.fetch_arrow_table()
    asked = _counting_flight_infos(upstream)
    with flight.connect(gw.location) as client:
        [endpoint] = _endpoints(client, sql.format("up.files.main.t"))
        planned = len(asked)
        if ttl:
            time.sleep(ttl + 0.5)  # the upstream's ticket has expired; the gateway's (its own TTL) has not
        got = client.do_get(endpoint.ticket).read_all()
    assert got.schema.equals(expected.schema) and got.to_pylist() == expected.to_pylist()
    assert planned == 1 and len(asked) == (2 if ttl else 1), asked  # asked again only when the ticket was refused
