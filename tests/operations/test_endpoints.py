"""The HTTP operations endpoints and the logging settings, on a gateway in this process."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import ServerSettings, load_settings
from nexus_flight.server.app.logs import JsonFormatter, configure_logging


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_names_clients_give_themselves_add_no_series(make_gateway):
    # Without sign-in a client's user name is a label it chooses: one series per name would grow for ever.
    import pyarrow.flight as flight

    from tests.support.flightsql_raw import info_and_table, pb

    gateway = make_gateway(http_port=0)
    client = flight.FlightClient(gateway.location)
    for n in range(40):
        options = flight.FlightCallOptions(headers=[client.authenticate_basic_token(f"dashboard-{n}", "")])
        info_and_table(client, pb.CommandStatementQuery(query="SELECT 1 AS x"), options)
    queries = {labels: value for (name, labels), value in
               _samples(_get(f"http://127.0.0.1:{gateway.operations.port}/metrics")[2]).items()
               if name == "nexus_queries_total"}
    assert queries == {(("source", "demo"), ("status", "success"), ("user", "anonymous")): 40}


def test_the_http_endpoints_are_off_by_default(gateway):
    assert gateway.settings.http_port is None
    assert gateway.operations is None


def test_healthz_readyz_and_metrics(make_gateway):
    gateway = make_gateway(http_port=0)
    base = f"http://127.0.0.1:{gateway.operations.port}"
    assert _get(base + "/healthz")[0] == 200
    assert _get(base + "/readyz")[:1] == (200,)
    with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT n_name FROM nation ORDER BY n_nationkey")
        assert len(cur.fetchall()) == 25
        with pytest.raises(Exception, match="QV-002"):
            cur.execute("DELETE FROM nation")
    status, content_type, text = _get(base + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    samples = _samples(text)
    assert samples[("nexus_queries_total", (("source", "demo"), ("status", "success"), ("user", "anonymous")))] == 1
    assert samples[("nexus_queries_total", (("source", ""), ("status", "rejected"), ("user", "anonymous")))] == 1
    assert samples[("nexus_rows_streamed_total", (("source", "demo"),))] == 25
    assert samples[("nexus_query_duration_seconds_count", (("source", "demo"),))] == 1
    assert samples[("nexus_active_queries", ())] == 0
    assert samples[("nexus_draining", ())] == 0
    assert ("nexus_open_tickets", ()) in samples
    assert _get(base + "/nope")[0] == 404

    gateway.server.begin_drain("SIGTERM received")
    status, _, text = _get(base + "/readyz")
    assert status == 503 and "draining (SIGTERM received)" in text
    assert _get(base + "/healthz")[0] == 200
    assert _samples(_get(base + "/metrics")[2])[("nexus_draining", ())] == 1


def test_a_failing_readiness_check_is_named(make_gateway):
    gateway = make_gateway(http_port=0)
    gateway.readiness.append(lambda: "the catalog does not answer (OperationalError)")
    status, _, text = _get(f"http://127.0.0.1:{gateway.operations.port}/readyz")
    assert status == 503 and "the catalog does not answer" in text


def test_an_http_port_in_use_is_named(make_gateway):
    first = make_gateway(http_port=0)
    with pytest.raises(ConfigError, match=rf"{first.operations.port}: it is already in use.*--http-port"):
        make_gateway(http_port=first.operations.port)


def test_log_levels_per_module_come_from_the_settings(tmp_path, monkeypatch):
    config = tmp_path / "gateway.toml"
    config.write_text('[server]\nlog_format = "json"\nlog_level = "warning"\n'
                      '[server.log_levels]\n"nexus_flight.queries" = "info"\n"nexus_flight.catalog" = "DEBUG"\n')
    settings = load_settings(config, env={})
    assert (settings.log_format, settings.log_level) == ("json", "WARNING")
    assert settings.log_levels == {"nexus_flight.queries": "INFO", "nexus_flight.catalog": "DEBUG"}
    with pytest.raises(ConfigError, match="server.log_level"):
        load_settings(None, env={"NEXUS_FLIGHT__SERVER__LOG_LEVEL": "loud"})
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(settings.log_format, settings.log_level, settings.log_levels)
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert not logging.getLogger("nexus_flight.server").isEnabledFor(logging.INFO)
        assert logging.getLogger("nexus_flight.queries").isEnabledFor(logging.INFO)
        assert logging.getLogger("nexus_flight.catalog.health").isEnabledFor(logging.DEBUG)
        record = logging.LogRecord("nexus_flight.queries", logging.INFO, "", 0, "query %s", ("q1",), None)
        record.source = "demo"
        assert json.loads(JsonFormatter().format(record)) | {"ts": None} == {
            "ts": None, "level": "INFO", "logger": "nexus_flight.queries", "message": "query q1", "source": "demo"}
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in settings.log_levels:
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert ServerSettings().drain_seconds == 30


def test_a_query_refused_before_routing_is_logged_without_a_source(caplog):
    from nexus_flight.server.app.logs import log_query
    from nexus_flight.server.query.principal import Principal
    from nexus_flight.server.query.service import QueryEvent

    with caplog.at_level(logging.INFO, logger="nexus_flight.queries"):
        log_query(QueryEvent("q1", None, Principal("carol"), None, "DELETE FROM t", "rejected",
                             timings_ms={"total": 0.5}))
        log_query(QueryEvent("q2", None, Principal("carol"), "demo", "SELECT 1", "success",
                             timings_ms={"total": 1.0}))
    assert [r.getMessage() for r in caplog.records] == [
        "query q1 rejected before reaching a source by carol in 0.5 ms", "query q2 success on demo by carol in 1.0 ms"]
    assert caplog.records[0].source is None  # the JSON record keeps the field, empty


def test_signed_in_users_beyond_the_series_cap_count_as_other(tmp_path, monkeypatch, demo_data_dir):
    # Thousands of SSO users would each be a series for the life of the process: past the cap they share one.
    from nexus_flight.catalog.users import add_user
    from tests.security.conftest import new_store, query_as, set_master_key, sign_in, start_secured, stop_secured

    set_master_key(monkeypatch)
    store = new_store(tmp_path)
    for n in range(4):
        add_user(store, f"viewer{n}", f"viewer-password-{n}", roles=["admin"])
    secured = start_secured(store, demo_data_dir, http_port=0, metrics_user_series=2)
    try:
        client = secured.client()
        for n in range(4):
            for _ in range(n + 1):
                assert query_as(client, sign_in(client, f"viewer{n}", f"viewer-password-{n}"),
                                "SELECT count(*) AS n FROM nation").to_pylist() == [{"n": 25}]
        queries = {dict(labels)["user"]: value for (name, labels), value in
                   _samples(_get(f"http://127.0.0.1:{secured.gateway.operations.port}/metrics")[2]).items()
                   if name == "nexus_queries_total"}
        assert queries == {"viewer0": 1, "viewer1": 2, "other": 3 + 4}
    finally:
        stop_secured(secured)
        store.close()
