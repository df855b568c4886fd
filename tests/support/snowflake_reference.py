"""fakesnow (the Snowflake emulator) and the Snowflake connector's own answers, from fakesnow's virtual environment.

fakesnow pins its own duckdb and snowflake-connector-python<5, so both live in a virtual environment of their own
(``tests/install-emulators.sh`` makes it). The tests reach fakesnow as Snowflake's users do: the gateway through
adbc-driver-snowflake, and the engine's own answer through the Snowflake connector (``fetch_arrow_all``, its
``pandas`` extra) running in that environment. :class:`SnowflakeConnector` keeps one connector process alive and
speaks to it over its stdin/stdout: each request is a pickled ``(operation, sql, parameters)``, each answer a status
byte and a length-prefixed payload — Arrow IPC for a query, the error's text for a failure.

This file is also the worker: run by the environment's Python, it serves requests until stdin closes. Its
module-level imports are the standard library's only, so that it runs there.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nexus-flight" / "fakesnow-venv"
_OK, _FAILED = b"+", b"-"
_LENGTH = struct.Struct(">Q")


def fakesnow_binary() -> Path:
    """The emulator ``tests/install-emulators.sh`` installs (``make install-test`` runs it); skip or fail without."""
    from tests.support.services import missing

    binary = VENV / "bin" / "fakesnow"
    if not binary.exists():
        missing(f"fakesnow in {VENV} (run tests/install-emulators.sh)")
    return binary


@contextlib.contextmanager
def running_fakesnow() -> Iterator[int]:
    """A fakesnow server on a free 127.0.0.1 port (its databases in memory, shared by all sessions)."""
    from tests.support.services import free_port, running_server

    binary = fakesnow_binary()
    port = free_port()
    with running_server([str(binary), "-s", "--host", "127.0.0.1", "-p", str(port)], port, "fakesnow", timeout=60):
        yield port


class SnowflakeQueryError(Exception):
    """The engine refused a statement sent through its own connector (the message is the connector's)."""


class SnowflakeConnector:
    """The Snowflake connector in a process of fakesnow's environment; it imports while the server starts."""

    def __init__(self) -> None:
        self._errors = tempfile.TemporaryFile()
        argv = [str(VENV / "bin" / "python"), __file__]
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors)

    def connect(self, port: int) -> None:
        """Log in to fakesnow at ``port``; skip (fail under CI) when the environment lacks the connector."""
        try:
            self._ask("connect", str(port), None)
        except SnowflakeQueryError as error:
            if "ModuleNotFoundError" in str(error):
                from tests.support.services import missing

                missing(f"snowflake-connector-python[pandas] in {VENV} (run tests/install-emulators.sh)")
            raise

    def _ask(self, operation: str, sql: str, parameters: Sequence[Any] | None) -> bytes:
        request = pickle.dumps((operation, sql, tuple(parameters) if parameters is not None else None))
        try:
            self._process.stdin.write(_LENGTH.pack(len(request)) + request)
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is gone: its stderr says why, below
        status = self._process.stdout.read(1)
        if not status:
            self._errors.seek(0)
            raise SnowflakeQueryError(f"the connector's process exited: {self._errors.read().decode()[-2000:]}")
        (length,) = _LENGTH.unpack(self._process.stdout.read(_LENGTH.size))
        payload = self._process.stdout.read(length)
        if status == _FAILED:
            raise SnowflakeQueryError(payload.decode())
        return payload

    def arrow(self, sql: str, parameters: Sequence[Any] | None = None):
        """The connector's ``fetch_arrow_all`` of ``sql`` (``?`` parameters bound by the server) as a pyarrow.Table."""
        import pyarrow as pa

        return pa.ipc.open_stream(self._ask("arrow", sql, parameters)).read_all()

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> list[tuple]:
        """Run a statement (DDL, PUT, COPY INTO …) and return its rows as the connector fetches them."""
        return pickle.loads(self._ask("execute", sql, parameters))

    def close(self) -> None:
        """End the connector's process."""
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._errors.close()


def _run(connection, operation: str, sql: str, parameters: tuple | None) -> bytes:
    import pyarrow as pa

    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        if operation == "execute":
            return pickle.dumps(cursor.fetchall())
        table = cursor.fetch_arrow_all(force_return_table=True)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _serve() -> None:
    import snowflake.connector

    snowflake.connector.paramstyle = "qmark"  # ``?`` bound by the server, as adbc-driver-snowflake binds them
    connection = None
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while header := requests.read(_LENGTH.size):
        operation, sql, parameters = pickle.loads(requests.read(_LENGTH.unpack(header)[0]))
        try:
            if operation == "connect":
                connection = snowflake.connector.connect(
                    user="fake",
                    password="fake",
                    account="nexus",
                    host="127.0.0.1",
                    port=int(sql),
                    protocol="http",
                    # An emulator error is an HTTP 500, which the connector retries: give up instead of hanging.
                    network_timeout=60,
                )
                payload, status = b"", _OK
            else:
                payload, status = _run(connection, operation, sql, parameters), _OK
        except Exception as error:  # noqa: BLE001 - every failure goes back to the caller as its text
            payload, status = f"{type(error).__name__}: {error}".encode(), _FAILED
        answers.write(status + _LENGTH.pack(len(payload)) + payload)
        answers.flush()


if __name__ == "__main__":
    _serve()
