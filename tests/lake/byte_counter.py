"""A TCP relay in front of an emulator that counts what a client really fetched: bytes and HTTP requests."""

from __future__ import annotations

import socket
import threading

_VERBS = (b"GET /", b"HEAD /", b"PUT /", b"POST /", b"DELETE /")


class CountingRelay:
    """Listens on 127.0.0.1:<port>, forwards to ``target_port``, counts bytes back and requests sent."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._received = 0
        self._requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def received(self) -> int:
        """Bytes sent back to clients since the last ``reset``."""
        with self._lock:
            return self._received

    @property
    def requests(self) -> int:
        """HTTP requests (GET/HEAD/PUT/POST/DELETE lines) clients sent since the last ``reset``."""
        with self._lock:
            return self._requests

    def reset(self) -> None:
        with self._lock:
            self._received = 0
            self._requests = 0

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                with self._lock:
                    if count:
                        self._received += len(data)
                    else:
                        self._requests += sum(data.count(verb) for verb in _VERBS)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
