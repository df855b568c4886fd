"""Finding the real servers tests talk to: skip on a developer machine without them, fail under CI."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """A server or tool a test needs is not there: fail under CI (CI=true), skip elsewhere."""
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: tests that need it must run)", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_port(name: str, host: str, port: int) -> None:
    """Require a server listening at host:port."""
    if not port_open(host, port):
        missing(f"{name} at {host}:{port}")


def require_command(name: str) -> str:
    """Require an executable on PATH and return its path."""
    path = shutil.which(name)
    if path is None:
        missing(f"the command {name!r}")
    return path


def wait_until(predicate, seconds: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true (True) or ``seconds`` pass (False); tests wait on states, not sleeps."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(argv: list[str], port: int, what: str, timeout: float = 30.0) -> Iterator[subprocess.Popen]:
    """Start a server, poll until it listens on 127.0.0.1:``port``, and stop it when the block ends.

    A server that exits, or does not listen within ``timeout`` seconds, fails the test.
    """
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not start")
        time.sleep(0.05)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(10)
