"""``/readyz`` and ``/metrics`` of a served gateway while its PostgreSQL catalog is down, then hangs.

Real parts: ``nexus-flight serve`` as a process of its own on a PostgreSQL catalog of this module's own, which the
test stops (a failover) and freezes with SIGSTOP (a network path that drops packets: connections hang). Sources
already open serve through such an outage, so the replica stays ready for ``catalog_outage_grace_seconds`` and says
why once it is past; neither endpoint ever waits on the catalog nor drops the connection.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from prometheus_client.parser import text_string_to_metric_families

from nexus_flight.catalog.vault import generate_key
from tests.operations.serving import catalog_config, serving, share_demo
from tests.support.servers import PrivatePostgres, private_server

pytestmark = pytest.mark.timeout(180)

GRACE = 5


def _get(url: str) -> tuple[int, str, float]:
    """Status, body and seconds taken of a GET (a dropped connection fails the test)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), time.monotonic() - started


def _metric(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


@contextmanager
def _frozen(server: PrivatePostgres):
    """Every process of the cluster stopped: connections are accepted by the kernel and never answered."""
    leader = (server.root / "data" / "postmaster.pid").read_text().split()[0]
    children = subprocess.run(["pgrep", "-P", leader], capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in (leader, *children)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _until_not_ready(http: str, seconds: float) -> str:
    """The 503 body, once ``/readyz`` says it; every answer on the way is quick."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body, took = _get(http + "/readyz")
        assert took < 1.0, "a probe waited on the catalog"
        if status == 503:
            return body
        assert status == 200
        time.sleep(0.5)
    raise AssertionError("/readyz stayed ready past the grace")


def test_ready_through_a_short_catalog_outage_and_never_waiting_on_it(tmp_path, demo_data_dir):
    with private_server(PrivatePostgres) as catalog:
        config = catalog_config(tmp_path / "gateway.toml", catalog, f"catalog_outage_grace_seconds = {GRACE}")
        data = share_demo(tmp_path / "data", demo_data_dir)
        with serving(data, "--config", str(config), "--http-port", "0",
                     env={"NEXUS_FLIGHT_MASTER_KEY": generate_key()}) as served:
            http = served.http
            assert _get(http + "/readyz")[:2] == (200, "ready\n")
            sources = _metric(_get(http + "/metrics")[1], "nexus_sources")

            catalog.stop()  # a clean stop: this cluster commits asynchronously, a crash would lose the catalog
            down = time.monotonic()
            # Within the grace: ready, and serving; the metrics answer from what the catalog said last.
            with flightsql.connect(served.location, autocommit=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM nation")
                assert cur.fetchall() == [(25,)]
            status, text, _ = _get(http + "/metrics")
            assert status == 200 and _metric(text, "nexus_sources") == sources
            assert _get(http + "/readyz")[0] == 200
            body = _until_not_ready(http, GRACE + 15)
            assert time.monotonic() - down > GRACE - 1
            assert body.startswith("not ready: the catalog has not answered for ") and "CatalogUnavailable" in body
            assert _metric(_get(http + "/metrics")[1], "nexus_catalog_unanswered_seconds")[()] > GRACE

            catalog.start()
            deadline = time.monotonic() + 15
            while _get(http + "/readyz")[0] != 200:
                assert time.monotonic() < deadline, "not ready again after the catalog came back"
                time.sleep(0.5)
            assert _metric(_get(http + "/metrics")[1], "nexus_catalog_unanswered_seconds")[()] == 0

            with _frozen(catalog):
                body = _until_not_ready(http, GRACE + 20)
                assert body.startswith("not ready: the catalog has not answered for ")
                status, text, took = _get(http + "/metrics")
                assert status == 200 and took < 1.0 and _metric(text, "nexus_sources") == sources
        assert not [line for line in served.err if line.startswith("Traceback")]
