"""SQLite connections that can be stopped: each one lives in a worker process the gateway can kill.

The ADBC SQLite driver cannot interrupt a running statement (``adbc_cancel`` is not implemented) and offers no
progress handler, so a query such as a recursive CTE without end would run until the server stopped. Here the
driver's connection runs in a child process (forked from a forkserver that has the driver loaded, so a new
worker costs milliseconds), and results come back as Arrow IPC over a pipe, batch by batch. Cancelling,
and the server's deadline, kill the worker: the statement stops at once, the pool opens a fresh worker for the
next borrower, and a runaway allocation stays in the worker's own memory (which inherits the server's
memory ceiling).

``WorkerConnection`` offers what ``AdbcBackend`` uses of a DB-API connection: ``cursor()`` with ``execute``,
``fetchall``, ``fetch_record_batch``, ``adbc_statement.set_options``, ``adbc_cancel`` and ``close``. Driver
errors keep their class (``adbc_driver_manager.ProgrammingError`` ...) and text.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import adbc_driver_manager
import pyarrow as pa

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["nexus_flight.backends.sqlite_worker", "adbc_driver_sqlite.dbapi", "pyarrow"])


class WorkerStopped(OSError):
    """The worker process was stopped (cancel, deadline) or died while a statement ran."""


_watchers = threading.local()


@contextlib.contextmanager
def watching(callback) -> Iterator[None]:
    """Call ``callback(connection)`` with each worker this thread sends a statement to, inside the block.

    An execution that starts on first read learns this way which worker to kill when it is cancelled before
    its first batch arrives.
    """
    previous = getattr(_watchers, "callback", None)
    _watchers.callback = callback
    try:
        yield
    finally:
        _watchers.callback = previous


def _serve(pipe, uri: str, busy_timeout_ms: int) -> None:
    """The worker: one ADBC SQLite connection, statements from the pipe, results back as Arrow IPC."""
    import adbc_driver_sqlite.dbapi as sqlite_dbapi

    connection = sqlite_dbapi.connect(uri, autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.fetchall()
    while True:
        try:
            _, sql, parameters, options = pipe.recv()
        except EOFError:
            return
        try:
            with connection.cursor() as cursor:
                if options:
                    cursor.adbc_statement.set_options(**options)
                cursor.execute(sql, parameters)
                reader = cursor.fetch_record_batch()
                pipe.send(("schema", reader.schema.serialize().to_pybytes()))
                for batch in reader:
                    pipe.send_bytes(batch.serialize().to_pybytes())
            pipe.send(("end",))
        except Exception as exc:  # noqa: BLE001 - every driver error goes back to the gateway, which maps it
            code = getattr(exc, "status_code", None)
            pipe.send(("error", type(exc).__name__, str(exc), int(code) if code is not None else None))


class WorkerConnection:
    """A SQLite connection in a worker process; ``close`` (or a cancel) kills the worker."""

    def __init__(self, uri: str, busy_timeout_ms: int) -> None:
        self._uri = uri
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._pipe, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(
            target=_serve, args=(child, uri, busy_timeout_ms), name="nexus-sqlite-worker", daemon=True
        )
        self._process.start()
        child.close()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The worker's process id (tests look for it)."""
        return self._process.pid

    def cursor(self) -> WorkerCursor:
        """A cursor for one statement at a time."""
        return WorkerCursor(self)

    def kill(self) -> None:
        """Stop the worker at once, whatever it is doing (a reader of its pipe then sees the end of it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self._process.kill()
        self._process.join(5)

    def close(self) -> None:
        """Stop the worker and release the pipe."""
        self.kill()
        with contextlib.suppress(Exception):
            self._pipe.close()

    def _send(self, request: tuple) -> None:
        if self._closed:
            raise WorkerStopped("the SQLite worker was stopped")
        try:
            self._pipe.send(request)
        except (OSError, ValueError) as exc:
            raise WorkerStopped("the SQLite worker was stopped") from exc

    def _receive(self, raw: bool = False) -> Any:
        try:
            return self._pipe.recv_bytes() if raw else self._pipe.recv()
        except (EOFError, OSError, ValueError, TypeError) as exc:  # TypeError: the pipe was closed meanwhile
            self.close()
            raise WorkerStopped("the SQLite worker was stopped while the statement ran") from exc


class _StatementOptions:
    def __init__(self) -> None:
        self.options: dict[str, str] = {}

    def set_options(self, **options: str) -> None:
        self.options.update(options)


class WorkerCursor:
    """One statement at a time on a ``WorkerConnection``, its result streamed back lazily."""

    def __init__(self, connection: WorkerConnection) -> None:
        self._connection = connection
        self.adbc_statement = _StatementOptions()
        self._schema: pa.Schema | None = None
        self._streaming = False

    def __enter__(self) -> WorkerCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> None:
        """Send the statement; wait for its schema (or its error).

        A previous statement's result not read to its end is read and dropped first, as DB-API cursors do.
        """
        for _ in self._batches() if self._streaming else ():
            pass
        callback = getattr(_watchers, "callback", None)
        if callback is not None:
            callback(self._connection)
        self._connection._send(("execute", sql, tuple(parameters) if parameters else None,
                                dict(self.adbc_statement.options)))
        reply = self._connection._receive()
        if reply[0] == "error":
            raise _driver_error(*reply[1:])
        self._schema = pa.ipc.read_schema(pa.py_buffer(reply[1]))
        self._streaming = True

    def fetch_record_batch(self) -> pa.RecordBatchReader:
        """The result stream; batches cross the pipe as they are read."""
        if self._schema is None:
            raise adbc_driver_manager.ProgrammingError("no statement was executed")
        return pa.RecordBatchReader.from_batches(self._schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        schema, connection = self._schema, self._connection
        while self._streaming:
            message = connection._receive(raw=True)
            if message[:1] == b"\x80":  # a pickled control message: end or error
                import pickle

                reply = pickle.loads(message)  # noqa: S301 - our own worker's message
                self._streaming = False
                if reply[0] == "error":
                    raise _driver_error(*reply[1:])
                return
            yield pa.ipc.read_record_batch(pa.py_buffer(message), schema)

    def fetchall(self) -> list[tuple]:
        """Every row, as tuples."""
        table = self.fetch_record_batch().read_all()
        return [tuple(row.values()) for row in table.to_pylist()]

    def adbc_cancel(self) -> None:
        """Stop the running statement: the worker is killed (the pool replaces the connection)."""
        self._connection.kill()

    def close(self) -> None:
        """Finish the cursor; a stream left half-read leaves the worker busy, so it is stopped."""
        if self._streaming:
            self._streaming = False
            self._connection.kill()


def _driver_error(name: str, message: str, code: int | None) -> Exception:
    """The driver's exception class again, with its text, so the backend maps it as it maps the driver's."""
    cls = getattr(adbc_driver_manager, name, None)
    if not (isinstance(cls, type) and issubclass(cls, adbc_driver_manager.Error)):
        cls = adbc_driver_manager.OperationalError
    codes = adbc_driver_manager.AdbcStatusCode
    return cls(message, status_code=codes(code) if code is not None else codes.UNKNOWN)
