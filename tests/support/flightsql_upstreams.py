"""Upstream Flight SQL servers the tests start: ROAPI (DataFusion) serving parquet files, and Sail (Spark SQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.services import free_port, require_command, running_server


@contextlib.contextmanager
def running_roapi(tables: Mapping[str, Path]) -> Iterator[str]:
    """ROAPI serving each file as the named table; yields its Flight SQL URI.

    All three of its addresses are given (127.0.0.1, free ports): without them ROAPI binds its defaults on 0.0.0.0.
    """
    tool = require_command("roapi")
    flight, http, postgres = free_port(), free_port(), free_port()
    argv = [tool, "--addr-flight-sql", f"127.0.0.1:{flight}", "--addr-http", f"127.0.0.1:{http}"]
    argv += ["--addr-postgres", f"127.0.0.1:{postgres}"]
    for name, path in tables.items():
        argv += ["-t", f"{name}={path}"]
    with running_server(argv, flight, "ROAPI"):
        yield f"grpc://127.0.0.1:{flight}"


@contextlib.contextmanager
def running_sail() -> Iterator[str]:
    """Sail's Flight SQL server (pip ``pysail``) on a free 127.0.0.1 port; yields its URI. Tables are created by SQL."""
    tool = require_command("sail")
    port = free_port()
    with running_server([tool, "flight", "server", "--ip", "127.0.0.1", "--port", str(port)], port, "Sail"):
        yield f"grpc://127.0.0.1:{port}"
