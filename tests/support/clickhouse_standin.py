"""A STAND-IN for clickhouse-server's HTTP interface: ClickHouse's own engine (chDB) behind a small HTTP front.

Why this exists: no ClickHouse server that clickhouse-connect can talk to installs on this machine. Debian's
``clickhouse-server`` is 18.16 (2018): clickhouse-connect fails while connecting (``Unknown identifier: readonly``
reading ``system.settings``), and the server has no Arrow formats, no ``{name:Type}`` parameters, no Date32 and no
Map. PyPI, npm, crates.io, Maven Central and the Go proxy ship clients only (``clickhousectl`` downloads the server
at run time, which fails here). chDB (pip ``chdb-core``) is ClickHouse 26.9 built as a library: its connections
share one embedded engine, it runs queries concurrently, lists them in ``system.processes`` and kills them with
``KILL QUERY``; its clickhouse-local can even host the real TCP/HTTP listeners, but chDB does not wire them up
(``SYSTEM START LISTEN HTTP`` answers "start_servers_callback is not set").

So what the tests talk to is, honestly:

- real ClickHouse: parsing, types, every value, the ArrowStream/Native bytes, ``{name:Type}`` parameter binding,
  ``readonly``, ``max_execution_time``, ``max_memory_usage``, ``system.*`` tables, error codes and texts;
- this module, not ClickHouse: the HTTP framing (status codes, ``X-ClickHouse-*`` headers, chunked bodies, an
  exception written into the body mid-stream, queries and parameters sent as a multipart form), the default
  format from the ``X-ClickHouse-Format`` request header or the ``default_format`` parameter (the statement's own
  FORMAT clause winning, found with sqlglot's tokenizer), ``INTO OUTFILE`` refused as the server's HTTP handler
  refuses it (clickhouse-local, which chDB is, would write the file), URL settings applied per request,
  ArrowStream re-framed (chDB emits one complete IPC stream per block; the batches are re-written into one stream
  unchanged), a client disconnect cancelling the query, and ``KILL QUERY WHERE query_id = {p:String}`` — chDB
  ignores client query ids, so this front keeps the map from the client's query id to the running stream and
  cancels that stream in the engine.

Run: ``python -m tests.support.clickhouse_standin --port N --path DIR``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import sqlglot
from chdb import _chdb

#: Request parameters the HTTP interface consumes itself (not settings).
_TRANSPORT = {
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check", "user",
    "password", "compress", "decompress", "buffer_size", "wait_end_of_query", "quota_key", "role",
    "client_protocol_version", "stacktrace", "close_session",
}
_KILL = re.compile(r"^\s*KILL\s+QUERY\s+WHERE\s+query_id\s*=\s*\{(\w+):String\}(\s+(SYNC|ASYNC))?\s*;?\s*$", re.I)
_CODE = re.compile(r"Code: (\d+)\.")
#: ClickHouse's HTTP status per exception code (the handler's own table, abridged to what tests meet).
_STATUS = {62: 400, 27: 400, 43: 400, 53: 400, 36: 400, 47: 404, 60: 404, 81: 404, 46: 404, 164: 403, 497: 403,
           516: 401, 159: 500, 241: 500, 394: 500, 358: 400}
_INTO_OUTFILE = "Code: 358. DB::Exception: INTO OUTFILE is not allowed. (INTO_OUTFILE_NOT_ALLOWED)"


def _output_clauses(sql: str) -> tuple[str | None, bool]:
    """The statement's own FORMAT (outside strings, comments and parentheses), and whether it has INTO OUTFILE."""
    try:
        tokens = sqlglot.tokenize(sql, read="clickhouse")
    except sqlglot.errors.SqlglotError:
        return None, False
    fmt, outfile, depth = None, False, 0
    for i, token in enumerate(tokens):
        kind = token.token_type.name
        depth += kind == "L_PAREN"
        depth -= kind == "R_PAREN"
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == "INTO" and nxt is not None and nxt.text.upper() == "OUTFILE":
            outfile = True
        if (depth == 0 and token.text.upper() == "FORMAT" and nxt is not None and nxt.token_type.name != "L_PAREN"
                and (i == 0 or tokens[i - 1].token_type.name != "ALIAS")):
            fmt = nxt.text
    return fmt, outfile


class _Running:
    def __init__(self, conn, stream) -> None:
        self.conn, self.stream = conn, stream
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            try:
                self.conn.streaming_cancel_query(self.stream)
            except Exception:  # noqa: BLE001 - already finished
                pass


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, path: str) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.path = path
        self.base = _chdb.connect(f"file:{path}")
        rows = self.base.query("SELECT name FROM system.settings", "TabSeparated").bytes().decode()
        self.settings = set(rows.split())
        self.timezone = self.base.query("SELECT timezone()", "TabSeparated").bytes().decode().strip()
        self.running: dict[str, _Running] = {}
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandIn

    def log_message(self, *args) -> None:  # quiet
        return

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/ping"):
            self._plain(200, b"Ok.\n")
        else:
            self._query(b"")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            # Clients send long parameters as an HTML form: the query and each param_* are its fields.
            self._query(b"", _form_fields(content_type, body))
        else:
            self._query(body)

    def _plain(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, text: str, query_id: str) -> None:
        match = _CODE.search(text)
        code = int(match.group(1)) if match else 1001
        self._plain(_STATUS.get(code, 500), (text.strip() + "\n").encode(),
                    {"X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Query-Id": query_id})

    def _query(self, body: bytes, form: dict[str, str] | None = None) -> None:
        url = urllib.parse.urlsplit(self.path)
        args = {**dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)), **(form or {})}
        sql = args.get("query", "") + ("\n" if args.get("query") and body else "") + body.decode()
        query_id = args.get("query_id") or str(uuid.uuid4())
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        kill = _KILL.match(sql)
        if kill:
            with self.server.lock:
                target = self.server.running.get(params.get(kill.group(1), ""))
            if target is not None:
                target.cancel()
            self._plain(200, b"", {"X-ClickHouse-Query-Id": query_id})
            return
        settings = {k: v for k, v in args.items() if k in self.server.settings and k not in _TRANSPORT}
        # readonly last: the engine checks every later setting against it, as the server checks the profile's.
        ordered = sorted(settings.items(), key=lambda kv: kv[0] == "readonly")
        dsn = f"file:{self.server.path}" + ("?" + urllib.parse.urlencode(ordered) if ordered else "")
        # The query's own FORMAT clause wins over the header, the header over default_format, as in the server.
        named, outfile = _output_clauses(sql)
        if outfile:
            self._error(_INTO_OUTFILE, query_id)
            return
        fmt = named or self.headers.get("X-ClickHouse-Format") or args.get("default_format") or "TabSeparated"
        try:
            conn = _chdb.connect(dsn)
        except Exception as exc:  # noqa: BLE001 - the engine's refusal of a setting
            self._error(str(exc), query_id)
            return
        try:
            if args.get("database"):
                conn.query(f"USE `{args['database'].replace('`', '``')}`")
            try:
                stream = conn.send_query(sql, fmt, params=params)
            except Exception as exc:  # noqa: BLE001
                if "Streaming query is not supported" not in str(exc):
                    raise
                # chDB streams only queries; other statements (writes, KILL, SYSTEM) run whole, as the server runs them.
                body = conn.query(sql, fmt, params=params).bytes()
                conn.close()
                self._plain(200, body, {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Format": fmt})
                return
        except Exception as exc:  # noqa: BLE001 - the engine's error, sent as the server sends it
            conn.close()
            self._error(str(exc), query_id)
            return
        running = _Running(conn, stream)
        with self.server.lock:
            self.server.running[query_id] = running
        try:
            self._stream(conn, running, fmt, query_id)
        finally:
            with self.server.lock:
                self.server.running.pop(query_id, None)
            running.cancel()
            conn.close()

    def _stream(self, conn, running: _Running, fmt: str, query_id: str) -> None:
        try:
            first = conn.streaming_fetch_result(running.stream).bytes()
        except Exception as exc:  # noqa: BLE001
            self._error(str(exc), query_id)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("X-ClickHouse-Format", fmt)
        self.send_header("X-ClickHouse-Timezone", self.server.timezone)
        self.send_header("X-ClickHouse-Query-Id", query_id)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        writer = None
        chunk = first
        try:
            while chunk:
                if fmt == "ArrowStream":
                    # One fetch may hold several complete IPC streams, one per block.
                    source = pa.BufferReader(chunk)
                    while source.tell() < len(chunk):
                        reader = pa.ipc.open_stream(source)
                        if writer is None:
                            writer = pa.ipc.new_stream(_ChunkedSink(self.wfile), reader.schema)
                        for batch in reader:
                            writer.write_batch(batch)
                elif fmt == "Arrow":
                    reader = pa.ipc.open_file(chunk)
                    if writer is None:
                        writer = pa.ipc.new_file(_ChunkedSink(self.wfile), reader.schema)
                    for i in range(reader.num_record_batches):
                        writer.write_batch(reader.get_batch(i))
                else:
                    _write_chunk(self.wfile, chunk)
                if running.cancelled:
                    raise RuntimeError("Code: 394. DB::Exception: Query was cancelled. (QUERY_WAS_CANCELLED)")
                chunk = conn.streaming_fetch_result(running.stream).bytes()
            if writer is not None:
                writer.close()
        except (BrokenPipeError, ConnectionResetError):
            running.cancel()  # the client went away: the server cancels the query
            return
        except Exception as exc:  # noqa: BLE001 - mid-stream: the server writes the exception into the body
            try:
                _write_chunk(self.wfile, ("\n" + str(exc).strip() + "\n").encode())
            except OSError:
                return
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
        for part in message.iter_parts()
    }


class _ChunkedSink:
    """A file-like object pyarrow writes the IPC stream to, one HTTP chunk per write."""

    def __init__(self, wfile) -> None:
        self.wfile = wfile
        self.closed = False

    def write(self, data) -> int:
        _write_chunk(self.wfile, bytes(data))
        return len(data)

    def flush(self) -> None:
        self.wfile.flush()

    def close(self) -> None:
        self.closed = True


def _write_chunk(wfile, data: bytes) -> None:
    if data:
        wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    options = parser.parse_args()
    StandIn(options.port, options.path).serve_forever()


if __name__ == "__main__":
    main()
