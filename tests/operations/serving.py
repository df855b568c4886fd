"""``nexus-flight serve`` as an operator runs it: a process of its own, told to stop with signals."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: The deployment files (nginx, compose, Kubernetes).
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

#: About three seconds of DuckDB work on two cores; the long one about twenty.
SHORT_QUERY = "SELECT sum(range % 7) AS s FROM range(300000000)"
LONG_QUERY = "SELECT sum(range % 7) AS s FROM range(3000000000)"


@dataclass
class Served:
    """A running ``nexus-flight serve`` and what it printed."""

    process: subprocess.Popen
    location: str = ""
    http: str = ""
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal to the server."""
        self.process.send_signal(signum)

    def wait(self, seconds: float) -> int:
        """The exit status, waiting at most ``seconds``."""
        return self.process.wait(seconds)

    def stop(self) -> None:
        """Make sure the process is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _pump(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line.rstrip("\n"))


def share_demo(data_dir: Path, demo_data_dir: Path) -> Path:
    """Link the session's demo database into ``data_dir``: a served gateway then skips generating its own."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for demo in demo_data_dir.glob("tpch_*.duckdb"):
        (data_dir / demo.name).symlink_to(demo)
    return data_dir


def catalog_config(path: Path, catalog, settings: str = "", url_query: str = "") -> Path:
    """A configuration file at ``path`` whose catalog is the PostgreSQL ``catalog``, health checks off.

    ``settings``: more ``[server]`` lines; ``url_query``: driver options of the catalog URL (``?connect_timeout=2``).
    """
    url = f"postgresql+psycopg://{catalog.user}@{catalog.host}:{catalog.port}/{catalog.database}{url_query}"
    path.write_text(f'[server]\ncatalog_url = "{url}"\nhealth_checks = false\n{settings}\n')
    return path


def serve(data_dir: Path, *flags: str, seconds: float = 60, env: dict[str, str] | None = None) -> Served:
    """Start ``nexus-flight serve`` on free ports over ``data_dir``; return once it listens.

    ``env``: variables set for the server beside this process's own.
    """
    return _listening(_launch(data_dir, flags, env), flags, seconds)


@contextlib.contextmanager
def serving(data_dir: Path, *flags: str, seconds: float = 60, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``serve`` for the block, then stopped with SIGTERM (killed if it has not exited within 30 s)."""
    served = serve(data_dir, *flags, seconds=seconds, env=env)
    try:
        yield served
    finally:
        served.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            served.wait(30)
        served.stop()


def serve_many(count: int, data_dir: Path, *flags: str, seconds: float = 60) -> list[Served]:
    """Start ``count`` servers over ``data_dir``: the first alone (it makes the catalog's keys), then the rest at once.

    Their start-up is mostly importing, on two cores: started together they listen sooner than one after another.
    """
    first = serve(data_dir, *flags, seconds=seconds)
    started = [first]
    try:
        rest = [_launch(data_dir, flags) for _ in range(count - 1)]
        started += rest
        for served in rest:
            _listening(served, flags, seconds)
    except BaseException:
        for served in started:
            served.stop()
        raise
    return started


def _launch(data_dir: Path, flags: tuple[str, ...], env: dict[str, str] | None = None) -> Served:
    command = ["nexus-flight", "serve", "--data-dir", str(data_dir), "--port", "0", *flags]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    served = Served(process)
    for stream, into in ((process.stdout, served.out), (process.stderr, served.err)):
        threading.Thread(target=_pump, args=(stream, into), daemon=True).start()
    return served


def _listening(served: Served, flags: tuple[str, ...], seconds: float) -> Served:
    """``served`` once it listens (and serves HTTP when asked to), or an AssertionError naming why not."""
    process = served.process
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = "\n".join(served.out)
        listening = re.search(r"listening on (grpc\S+)", text)
        wants_http = "--http-port" in flags
        http = re.search(r"(http://[^/\s]+)/healthz", text)
        if listening and (http or not wants_http):
            served.location = listening.group(1)
            served.http = http.group(1) if http else ""
            return served
        if process.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"the server exited ({process.returncode}): {served.err[-5:]}")
        time.sleep(0.05)
    served.stop()
    raise AssertionError(f"the server did not start: {served.err[-5:]}")


def wait_for(condition, seconds: float = 15.0) -> None:
    """Poll ``condition`` until it holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def nginx_config(upstreams: list[str], port: int, prefix: Path) -> str:
    """``deploy/nginx.conf`` with these upstream servers and port, its files under ``prefix``."""
    text = (DEPLOY / "nginx.conf").read_text()
    servers = "".join(f"        server {u} max_fails=1 fail_timeout=10s;\n" for u in upstreams)
    text, replaced = re.subn(r"(?:        server gateway-\d:31337[^\n]*\n)+", servers, text)
    assert replaced == 1
    text = text.replace("listen 31337 http2;", f"listen 127.0.0.1:{port} http2;")
    local = (f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
             + ("user root;\n" if os.geteuid() == 0 else ""))
    paths = "".join(f"    {name}_temp_path {prefix}/{name};\n" for name in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return local + text.replace("http {\n", f"http {{\n    access_log off;\n{paths}", 1)


def start_nginx(upstreams: list[str], port: int, prefix: Path) -> subprocess.Popen:
    """Debian's nginx with ``deploy/nginx.conf`` on ``port`` in front of ``upstreams``, once it listens.

    Its files live under ``prefix``; the caller terminates the process.
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: tests/install-servers.sh installs Debian's nginx-light"
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "nginx.conf").write_text(nginx_config(upstreams, port, prefix))
    check = subprocess.run([nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proxy = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: _accepts(port))
    return proxy


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def stop_behind_proxy(proxy: subprocess.Popen | None, replicas: list[Served]) -> None:
    """Stop the proxy (if it started), then the replicas behind it."""
    if proxy is not None:
        proxy.terminate()
        proxy.wait(10)
    for replica in replicas:
        replica.stop()
