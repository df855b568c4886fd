"""Soak: one served gateway under a long mix of good, bad, cancelled and abandoned work; does anything keep growing?

Usage: python benchmarks/soak_bench.py [--minutes 10] [--clients 4] [--sample-seconds 15] [--warmup-minutes 2]
       [--scale 0.01] [--json samples.json]

``nexus-flight serve`` runs as a process of its own: authentication on (``soak`` granted the demo catalog, with a
rate and a concurrency limit so the catalog's limit rows are used; ``narrow`` granted ``nation`` only; ``hasty``
held to one second a query; ``mallory`` only ever tried with wrong passwords), a SQLite catalog in a temporary data
directory, the demo at ``--scale``, the HTTP endpoints on, and short handle and token lifetimes
(``handle_ttl_seconds`` 60, ``token_ttl_seconds`` 60, ``session_max_seconds`` 120, a failed sign-in remembered
120 s) so that what they bound reaches its steady state within the run. Before the clock starts the clients plan
``--prime`` statements never seen, so that the caches bounded by entries (the validator's, the router's, the
schemas') are full before the first sample rather than filling through the run.

``--clients`` processes then drive, until the time is up, a weighted mix through ADBC (adbc_driver_flightsql) and
raw pyarrow.flight: new and repeated query texts, prepared statements with parameters (ADBC's, closed; raw ones
bound and never closed), failing queries (syntax, a refused write, an ungranted table), queries cancelled
(CancelFlightInfo), timed out (the client's deadline, the user's ``max_query_seconds``) or dropped after one batch,
tickets never fetched, client processes SIGKILLed mid-stream, Handshakes with wrong passwords (from a new
``x-forwarded-for`` address each), sessions opened, given a catalog (SetSessionOptions) and abandoned, new sign-ins
and metadata calls (GetTables, GetCatalogs, GetDbSchemas, GetSqlInfo, ADBC's get_objects).

Every ``--sample-seconds`` the bench samples the server's RSS, open fds (``/proc/PID/fd``) and threads; the row
count of every table of ``catalog.db`` (a read-only SQLite connection), the catalog's and its write-ahead log's
sizes and the spill folder's entries; the gauges of ``/metrics``; and, unless ``--no-introspect``, what the process
holds: the server runs under a wrapper (``--serve-introspected``) whose thread writes, each sample and after a
``gc.collect()``, the length of every container attribute of every ``nexus_flight`` object (summed per class and
attribute), every container at module level, every ``functools`` cache, and the count of live objects of each
``nexus_flight`` class. It prints the samples and a verdict per measure: flat after the warm-up, or growing
(the least-squares slope per hour over the samples after ``--warmup-minutes``). ``query_history`` and
``audit_events`` grow by design (``history_retention_days``) and are marked so.
"""

from __future__ import annotations

import argparse
import base64
import collections
import functools
import gc
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "soak-battery-staple-9"
POINT = "SELECT o_orderkey, o_totalprice FROM orders WHERE o_orderkey = {key}"
SAME = "SELECT * FROM nation WHERE n_nationkey < 5"
PARAMETERIZED = "SELECT n_name FROM nation WHERE n_nationkey = ?"
#: Endless enough to be cancelled, timed out or killed mid-stream; small enough per batch for two cores.
WIDE = "SELECT range AS a, range * 2 AS b FROM range(100000000)"
SLOW = "SELECT sum(range % 7) AS s FROM range(3000000000)"
BY_DESIGN = {"query_history", "audit_events"}

CONFIG = """
[server]
log_level = "WARNING"
http_port = {http_port}
handle_ttl_seconds = 60
memory_limit = "128MB"
limit_counts = "catalog"

[server.auth]
enabled = true
client_address_header = "x-forwarded-for"
token_ttl_seconds = 60
session_max_seconds = 120

[server.auth.lockout]
window_seconds = 120
"""

# -- the server ----------------------------------------------------------------------------------------------------


def _catalog(data_dir: Path) -> None:
    from nexus_flight.catalog.grants import add_grant
    from nexus_flight.catalog.store import CatalogStore
    from nexus_flight.catalog.users import add_role, add_user

    store = CatalogStore(data_dir=data_dir)
    add_role(store, "analyst")
    add_grant(store, "analyst", "demo")
    add_role(store, "nation_only")
    add_grant(store, "nation_only", "demo", "main", "nation")
    add_user(store, "soak", PASSWORD, roles=["analyst"],
             limits={"queries_per_minute": 100_000, "query_burst": 1_000, "max_concurrent_queries": 64})
    add_user(store, "narrow", PASSWORD, roles=["nation_only"])
    add_user(store, "hasty", PASSWORD, roles=["analyst"], limits={"max_query_seconds": 1})
    add_user(store, "mallory", "mallory-real-password-1", roles=["analyst"])
    store.close()


def _serve(data_dir: Path, demo: Path, scale: float, introspect: Path | None,
           sample_seconds: float) -> tuple[subprocess.Popen, str, str]:
    from tests.support.services import free_port

    (data_dir / demo.name).symlink_to(demo)
    http_port = free_port()
    (data_dir / "gateway.toml").write_text(CONFIG.format(http_port=http_port))
    port = free_port()
    serve = ["serve", "--port", str(port), "--data-dir", str(data_dir), "--demo-scale", f"{scale:g}",
             "--config", str(data_dir / "gateway.toml")]
    if introspect is not None:
        command = [sys.executable, __file__, "--serve-introspected", str(introspect),
                   "--sample-seconds", str(sample_seconds), "--", *serve]
    else:
        command = [sys.executable, "-m", "nexus_flight.server", *serve]
    proc = subprocess.Popen(command, cwd=data_dir, stdout=open(data_dir / "nexus.log", "w"),
                            stderr=subprocess.STDOUT)
    from benchmarks.flight_sql_bench import wait_port

    wait_port(port)
    wait_port(http_port)
    return proc, f"grpc://127.0.0.1:{port}", f"http://127.0.0.1:{http_port}"


def serve_introspected(out: Path, every: float, argv: list[str]) -> int:
    """Run ``nexus-flight`` with ``argv`` in this process, writing what it holds to ``out`` every ``every`` seconds."""
    from nexus_flight.server.app.cli import main as cli

    def write() -> None:
        while True:
            time.sleep(every)
            try:
                line = json.dumps({"t": time.time(), "sizes": held_containers()})
            except Exception as exc:  # noqa: BLE001 - said in the samples, not lost with the thread
                line = json.dumps({"t": time.time(), "sizes": {f"introspection failed: {exc!r}": 1}})
            with open(out, "a") as f:
                f.write(line + "\n")

    threading.Thread(target=write, name="soak-introspection", daemon=True).start()
    return cli(argv)


_CONTAINERS = (dict, list, set, frozenset, collections.deque, tuple)


def held_containers() -> dict[str, int]:
    """Lengths of the containers ``nexus_flight`` objects and modules hold, and live objects per class."""
    sizes: collections.Counter[str] = collections.Counter()
    gc.collect()  # what is held, not cycles the collector has yet to free
    for obj in gc.get_objects():
        cls = type(obj)
        module = cls.__dict__.get("__module__")
        if not isinstance(module, str) or not module.startswith("nexus_flight."):
            continue
        name = f"{cls.__module__.removeprefix('nexus_flight.')}.{cls.__qualname__}"
        sizes[f"live {name}"] += 1
        try:
            attributes = vars(obj)
        except TypeError:
            attributes = {s: getattr(obj, s, None) for s in getattr(cls, "__slots__", ())}
        for attribute, value in attributes.items():
            if isinstance(value, _CONTAINERS) and not isinstance(value, tuple):
                sizes[f"{name}.{attribute}"] += len(value)
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("nexus_flight."):
            continue
        short = module_name.removeprefix("nexus_flight.")
        for attribute, value in list(vars(module).items()):
            if isinstance(value, _CONTAINERS) and not isinstance(value, tuple):
                sizes[f"{short}:{attribute}"] = len(value)
            elif isinstance(value, functools._lru_cache_wrapper):
                sizes[f"{short}:{attribute}()"] = value.cache_info().currsize
            elif hasattr(value, "__dict__") and not isinstance(value, type) and type(value).__module__ == "_thread":
                sizes[f"{short}:{attribute} (thread-local)"] = len(vars(value))
    sizes["gc objects"] = len(gc.get_objects())
    return dict(sizes)


# -- the clients ---------------------------------------------------------------------------------------------------

#: Killed mid-stream: opens a stream of WIDE, reads a few batches, says so, then waits to be SIGKILLed.
KILLED_READER = r"""
import sys, time
import adbc_driver_flightsql.dbapi as flightsql
uri, user, password, sql = sys.argv[1:5]
cur = flightsql.connect(uri, db_kwargs={"username": user, "password": password}, autocommit=True).cursor()
cur.execute(sql)
reader = cur.fetch_record_batch()
for _ in range(3):
    reader.read_next_batch()
print("reading", flush=True)
time.sleep(600)
"""


class Client:
    """One client process's connections and the mix it draws from."""

    def __init__(self, uri: str, seed: int) -> None:
        import pyarrow.flight as flight

        self.flight = flight
        self.uri = uri
        self.rng = random.Random(seed)
        self.counts: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.conn = self._adbc("soak")
        self.narrow = self._adbc("narrow")
        self.hasty = self._adbc("hasty")
        self.raw = flight.FlightClient(uri)
        self.signed_at = 0.0
        self.last_kill = 0.0

    def _adbc(self, user: str):
        import adbc_driver_flightsql.dbapi as flightsql

        return flightsql.connect(self.uri, db_kwargs={"username": user, "password": PASSWORD}, autocommit=True)

    @property
    def header(self) -> tuple[bytes, bytes]:
        """The raw client's bearer header, signed in again every 20 s (tokens live 60 s here)."""
        if time.monotonic() - self.signed_at > 20:
            self._header = self.raw.authenticate_basic_token("soak", PASSWORD)
            self.signed_at = time.monotonic()
        return self._header

    @property
    def options(self):
        return self.flight.FlightCallOptions(headers=[self.header])

    def _signed_in(self, client, user: str):
        return self.flight.FlightCallOptions(headers=[client.authenticate_basic_token(user, PASSWORD)])

    def prime(self, count: int) -> None:
        """Plan ``count`` statements never seen (a tenth refused), fetching none: what the server keeps per distinct
        statement (its validator, router and schema caches, bounded by entries) reaches its bound before the clock
        starts, instead of filling during the run and reading as growth."""
        import pyarrow as pa

        from tests.support.flightsql_raw import descriptor, pb

        for n in range(count):
            sql = POINT.format(key=10**7 + self.rng.randrange(10**9)) if n % 10 else f"SELEC {n} FROM nation"
            try:
                self.raw.get_flight_info(descriptor(pb.CommandStatementQuery(query=sql)), self.options)
            except pa.ArrowException:  # the refused tenth (INVALID_ARGUMENT arrives as ArrowInvalid)
                pass

    # Each action is one kind of work; its name is what the summary counts.

    def new_text(self) -> None:
        self._query(self.conn, POINT.format(key=1 + self.rng.randrange(60_000)))

    def same_text(self) -> None:
        self._query(self.conn, SAME)

    def prepared(self) -> None:
        with self.conn.cursor() as cur:
            cur.execute(PARAMETERIZED, (self.rng.randrange(25),))
            cur.fetch_arrow_table()

    def prepared_unclosed(self) -> None:
        """Prepare, bind and execute through raw Flight SQL, and never close the statement."""
        import pyarrow as pa

        from nexus_flight.server.flight import protocol
        from tests.support.flightsql_raw import descriptor, pb, prepare

        result = prepare(self.raw, PARAMETERIZED, self.options)
        command = pb.CommandPreparedStatementQuery(prepared_statement_handle=result.prepared_statement_handle)
        table = pa.table({"p": pa.array([self.rng.randrange(25)], pa.int64())})
        writer, reader = self.raw.do_put(descriptor(command), table.schema, self.options)
        writer.write_table(table)
        writer.done_writing()
        answer = reader.read()  # the bound statement's handle (the spec's stateless form)
        writer.close()
        bound = protocol.sql.DoPutPreparedStatementResult()
        bound.ParseFromString(answer.to_pybytes())
        command = pb.CommandPreparedStatementQuery(prepared_statement_handle=bound.prepared_statement_handle)
        info = self.raw.get_flight_info(descriptor(command), self.options)
        self.raw.do_get(info.endpoints[0].ticket, self.options).read_all()

    def syntax_error(self) -> None:
        self._failing(self.conn, f"SELEC {self.rng.randrange(10**6)} FROM nation")

    def write_refused(self) -> None:
        self._failing(self.conn, f"INSERT INTO nation VALUES ({self.rng.randrange(10**6)}, 'x', 0, 'y')")

    def ungranted(self) -> None:
        self._failing(self.narrow, POINT.format(key=1 + self.rng.randrange(60_000)))

    def cancelled(self) -> None:
        """Start a slow query, cancel it with CancelFlightInfo while its stream runs."""
        from nexus_flight.server.flight import protocol
        from tests.support.flightsql_raw import descriptor, pb

        info = self.raw.get_flight_info(descriptor(pb.CommandStatementQuery(query=SLOW)), self.options)
        failed: list[BaseException] = []

        def read() -> None:
            try:
                self.raw.do_get(info.endpoints[0].ticket, self.options).read_all()
            except self.flight.FlightError as exc:
                failed.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(0.3)
        request = protocol.flight.CancelFlightInfoRequest(info=info.serialize())
        list(self.raw.do_action(self.flight.Action("CancelFlightInfo", request.SerializeToString()), self.options))
        reader.join(60)

    def client_timeout(self) -> None:
        """A slow query's stream ended by the client's own deadline."""
        from tests.support.flightsql_raw import descriptor, pb

        info = self.raw.get_flight_info(descriptor(pb.CommandStatementQuery(query=SLOW)), self.options)
        deadline = self.flight.FlightCallOptions(headers=[self.header], timeout=0.5)
        try:
            self.raw.do_get(info.endpoints[0].ticket, deadline).read_all()
        except self.flight.FlightError:
            return
        raise AssertionError("a slow query ended within its client's deadline")

    def server_timeout(self) -> None:
        self._failing(self.hasty, SLOW)

    def dropped_stream(self) -> None:
        """Read one batch of an endless result and close the cursor."""
        with self.conn.cursor() as cur:
            cur.execute(WIDE)
            cur.fetch_record_batch().read_next_batch()

    def ticket_abandoned(self) -> None:
        from tests.support.flightsql_raw import descriptor, pb

        self.raw.get_flight_info(descriptor(pb.CommandStatementQuery(query=POINT.format(key=self.rng.randrange(9)))),
                                 self.options)

    def wrong_password(self) -> None:
        rng = self.rng
        address = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        user = "mallory" if rng.random() < 0.5 else f"nobody{rng.randrange(10**6)}"
        options = self.flight.FlightCallOptions(headers=[(b"x-forwarded-for", address.encode())])
        try:
            self.raw.authenticate_basic_token(user, "wrong-password", options)
        except self.flight.FlightError:
            return
        raise AssertionError("a wrong password signed in")

    def session_abandoned(self) -> None:
        """A new client signs in, sets its session's catalog, queries once and goes away without closing."""
        from nexus_flight.server.flight import protocol
        from tests.support.flightsql_raw import info_and_table, pb

        client = self.flight.FlightClient(self.uri)
        try:
            options = self._signed_in(client, "soak")
            request = protocol.flight.SetSessionOptionsRequest()
            request.session_options["catalog"].string_value = "demo"
            list(client.do_action(self.flight.Action("SetSessionOptions", request.SerializeToString()), options))
            info_and_table(client, pb.CommandStatementQuery(query=SAME), options)
        finally:
            client.close()

    def new_sign_in(self) -> None:
        """Drop the ADBC connection and sign in again (a new Handshake, a new bearer token)."""
        self.conn.close()
        self.conn = self._adbc("soak")

    def metadata(self) -> None:
        from tests.support.flightsql_raw import info_and_table, pb

        kind = self.rng.randrange(5)
        if kind == 0:
            self.conn.adbc_get_objects(depth="tables").read_all()
        elif kind == 1:
            info_and_table(self.raw, pb.CommandGetTables(include_schema=True), self.options)
        elif kind == 2:
            info_and_table(self.raw, pb.CommandGetCatalogs(), self.options)
        elif kind == 3:
            info_and_table(self.raw, pb.CommandGetDbSchemas(), self.options)
        else:
            info_and_table(self.raw, pb.CommandGetSqlInfo(), self.options)

    def killed_client(self) -> None:
        """A client process SIGKILLed while its stream runs (at most once every 20 s per client: each costs a
        Python start-up)."""
        if time.monotonic() - self.last_kill < 20:
            self.counts["killed_client (skipped)"] += 1
            return
        self.last_kill = time.monotonic()
        reader = subprocess.Popen([sys.executable, "-c", KILLED_READER, self.uri, "soak", PASSWORD, WIDE],
                                  stdout=subprocess.PIPE, text=True)
        try:
            reader.stdout.readline()
        finally:
            reader.send_signal(signal.SIGKILL)
            reader.wait()

    @staticmethod
    def _query(conn, sql: str) -> None:
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetch_arrow_table()

    def _failing(self, conn, sql: str) -> None:
        try:
            self._query(conn, sql)
        except Exception:  # noqa: BLE001 - the refusal is the point; its kind is not checked here
            return
        raise AssertionError(f"expected a refusal: {sql}")


#: (action, weight): most work succeeds; every kind of failure and abandonment recurs.
MIX = (
    ("new_text", 20), ("same_text", 20), ("prepared", 10), ("prepared_unclosed", 6), ("syntax_error", 5),
    ("write_refused", 4), ("ungranted", 4), ("cancelled", 2), ("client_timeout", 2), ("server_timeout", 2),
    ("dropped_stream", 3), ("ticket_abandoned", 4), ("wrong_password", 5), ("session_abandoned", 5),
    ("new_sign_in", 2), ("metadata", 10), ("killed_client", 1),
)


def run_client(uri: str, seed: int, prime: int) -> None:
    """Plan ``prime`` new statements, say so, then draw from the mix until the time read from stdin (epoch
    seconds); print what was done, as JSON."""
    client = Client(uri, seed)
    client.prime(prime)
    print("primed", flush=True)
    until = float(sys.stdin.readline())
    names, weights = zip(*MIX, strict=True)
    while time.time() < until:
        action = client.rng.choices(names, weights)[0]
        try:
            getattr(client, action)()
            client.counts[action] += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported: the soak goes on
            client.errors[f"{action}: {type(exc).__name__}: {str(exc)[:120]}"] += 1
    print(json.dumps({"counts": client.counts, "errors": client.errors}), flush=True)


# -- sampling and verdicts -----------------------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(rest.split()[0])
    return {"rss_mb": round(values["VmRSS"] / 1024, 1), "threads": values["Threads"],
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _disk(data_dir: Path) -> dict[str, float]:
    """What the gateway keeps on disk: the catalog and its write-ahead log, and the queries' spill folders."""
    def size(path: Path) -> float:
        return round(path.stat().st_size / 2**20, 2) if path.exists() else 0.0

    spill = data_dir / "spill"
    return {"disk catalog.db MB": size(data_dir / "catalog.db"), "disk catalog.db-wal MB": size(
        data_dir / "catalog.db-wal"), "disk spill entries": sum(1 for _ in spill.rglob("*")) if spill.exists() else 0}


def _table_rows(catalog: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=10)
    try:
        names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {f"table {name}": connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                for name in sorted(names)}
    finally:
        connection.close()


_GAUGE = re.compile(r"^(nexus_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$")


def _metrics(http: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{http}/metrics", timeout=10).read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _GAUGE.match(line)
        if match and not match.group(1).endswith(("_bucket", "_created", "_sum", "_count")):
            name = match.group(1) + (match.group(2) or "")
            if match.group(1).endswith("_total"):
                continue  # counters of work done, not of what is held
            values[f"metric {name}"] = float(match.group(3))
    return values


def _introspected(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    return {f"held {k}": v for k, v in json.loads(lines[-1])["sizes"].items()} if lines else {}


def sample(pid: int, catalog: Path, http: str, introspect: Path | None) -> dict[str, float]:
    """One sample of everything measured."""
    values: dict[str, float] = {"t": time.time(), **_proc_status(pid), **_table_rows(catalog), **_metrics(http),
                                **_disk(catalog.parent)}
    if introspect is not None:
        values.update(_introspected(introspect))
    return values


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def _tolerance(measure: str, level: float) -> float:
    """Growth over the measured span below which a measure counts as flat (noise, batches in flight)."""
    if measure == "rss_mb":
        return max(8.0, 0.05 * level)
    if measure in ("fds", "threads"):
        return 3.0
    if measure.startswith("metric "):
        return 3.0
    if measure.startswith("disk ") and measure.endswith(" MB"):
        return max(1.0, 0.05 * level)
    return max(5.0, 0.05 * level)


def verdict(measure: str, samples: list[dict], warmup_end: float) -> tuple[str, float, float, float]:
    """(verdict, value after warm-up, last value, slope per hour) of one measure."""
    after = [(s["t"], s[measure]) for s in samples if s["t"] >= warmup_end and measure in s]
    if len(after) < 3:
        return "too few samples", float("nan"), float("nan"), 0.0
    slope = slope_per_hour(after)
    span_hours = (after[-1][0] - after[0][0]) / 3600
    first, last = after[0][1], after[-1][1]
    # Growing: the fit rises by more than the tolerance over the span, and the last third lies wholly above the
    # first (a store swept every few minutes saws up and down: its fit may rise, its lows do not).
    third = max(1, len(after) // 3)
    grows = (slope * span_hours > _tolerance(measure, max(first, 1.0))
             and min(v for _, v in after[-third:]) > max(v for _, v in after[:third]))
    name = measure.removeprefix("table ")
    if grows and measure.startswith("table ") and name in BY_DESIGN:
        return "grows by design (retention)", first, last, slope
    return ("GROWING" if grows else "flat"), first, last, slope


def report(samples: list[dict], warmup_end: float, show_all: bool) -> list[tuple[str, str, float, float, float]]:
    """Print the samples of the main measures and a verdict per measure; return the verdicts."""
    start = samples[0]["t"]
    main = ["rss_mb", "fds", "threads"]
    tables = sorted(k for k in samples[-1] if k.startswith("table "))
    print(f"\n{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'threads':>7}  " + " ".join(
        f"{t.removeprefix('table ')[:14]:>14}" for t in tables if any(s.get(t) for s in samples)))
    for s in samples:
        print(f"{s['t'] - start:7.0f} {s['rss_mb']:8.1f} {s['fds']:5d} {s['threads']:7d}  " + " ".join(
            f"{s.get(t, 0):14d}" for t in tables if any(x.get(t) for x in samples)))
    measures = main + sorted(k for k in samples[-1] if k not in main and k != "t")
    verdicts = []
    for measure in measures:
        values = [s.get(measure) for s in samples if measure in s]
        if not show_all and measure not in main and len(set(values)) == 1:
            continue  # never moved: no line
        v, first, last, slope = verdict(measure, samples, warmup_end)
        verdicts.append((measure, v, first, last, slope))
    print(f"\n{'measure':<72} {'after warm-up':>13} {'last':>10} {'slope/h':>10}  verdict")
    for measure, v, first, last, slope in verdicts:
        if show_all or v != "flat" or measure in main or measure.startswith(("table ", "metric ", "disk ")):
            print(f"{measure[:72]:<72} {first:13.1f} {last:10.1f} {slope:10.1f}  {v}")
    quiet = sum(1 for _, v, *_ in verdicts if v == "flat")
    print(f"({quiet} measures that moved were flat after the warm-up; --all lists every one)")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=None, help="default: a fifth of the run")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--no-introspect", action="store_true")
    parser.add_argument("--all", action="store_true", help="list every measure that moved, flat ones too")
    parser.add_argument("--json", type=Path, help="write the samples here")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prime", type=int, default=5000,
                        help="distinct statements planned before the clock starts (fills per-statement caches)")
    parser.add_argument("--serve-introspected", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.serve_introspected:
        sys.exit(serve_introspected(args.serve_introspected, args.sample_seconds, rest[1:] if rest[:1] == ["--"]
                                    else rest))
    if args.client:
        run_client(args.client, args.seed, args.prime)
        return

    from nexus_flight.catalog.vault import ENV_KEY
    from nexus_flight.server.app.demo import demo_database

    os.environ.setdefault(ENV_KEY, base64.b64encode(os.urandom(32)).decode())
    demo = demo_database(ROOT / "benchmarks" / ".data", args.scale)
    warmup = args.warmup_minutes if args.warmup_minutes is not None else args.minutes / 5
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "gateway"
        data_dir.mkdir()
        _catalog(data_dir)
        introspect = None if args.no_introspect else Path(tmp) / "held.jsonl"
        server, uri, http = _serve(data_dir, demo, args.scale, introspect, args.sample_seconds)
        clients: list[subprocess.Popen] = []
        samples: list[dict] = []
        try:
            clients = [subprocess.Popen([sys.executable, __file__, "--client", uri, "--seed", str(i),
                                         "--prime", str(args.prime // args.clients)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                       for i in range(args.clients)]
            primed = time.time()
            for c in clients:
                assert c.stdout.readline().strip() == "primed", "a client failed to start"
            print(f"{args.prime} statements planned in {time.time() - primed:.0f} s", flush=True)
            started = time.time()
            until = started + args.minutes * 60
            for c in clients:
                c.stdin.write(f"{until}\n")
                c.stdin.flush()
            while time.time() < until:
                time.sleep(min(args.sample_seconds, max(0.0, until - time.time())))
                samples.append(sample(server.pid, data_dir / "catalog.db", http, introspect))
                s = samples[-1]
                print(f"{s['t'] - started:6.0f}s  RSS {s['rss_mb']:.1f} MB  fds {s['fds']}  threads {s['threads']}",
                      flush=True)
            done = [json.loads(c.communicate(timeout=120)[0].strip().splitlines()[-1] or "{}") for c in clients]
            time.sleep(args.sample_seconds)  # after the load: what stays
            samples.append(sample(server.pid, data_dir / "catalog.db", http, introspect))
        finally:
            for c in clients:
                if c.poll() is None:
                    c.kill()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
        counts: collections.Counter[str] = collections.Counter()
        errors: collections.Counter[str] = collections.Counter()
        for d in done:
            counts.update(d.get("counts", {}))
            errors.update(d.get("errors", {}))
        print(f"\nwork done in {args.minutes:g} min by {args.clients} client processes: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if errors:
            print("unexpected errors:")
            for text, count in errors.most_common(20):
                print(f"  {count:5d}  {text}")
        report(samples, started + warmup * 60, args.all)
        if args.json:
            args.json.write_text(json.dumps(samples, indent=1))


if __name__ == "__main__":
    main()
