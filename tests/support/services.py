"""Finding the real servers tests talk to: skip on a developer machine without them, fail under CI."""

from __future__ import annotations

import os
import shutil
import socket

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


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
