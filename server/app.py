"""Builds the gateway from one ``ServerConfig`` and runs it."""

from __future__ import annotations

import logging
import threading

from backends.base import QueryLimits, SourceSpec
from backends.errors import ConfigError
from server.config import ServerConfig
from server.demo import demo_database
from server.errors import client_safe_tracebacks
from server.flight_sql import FlightSqlServer
from server.query_service import QueryObserver, QueryService
from server.sources import SourceDirectory, StaticSourceDirectory
from server.telemetry import record_metrics

log = logging.getLogger("nexus_flight")

DEMO_CATALOG = "demo"


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def demo_source(config: ServerConfig) -> SourceSpec:
    """The embedded TPC-H catalog, generated on first start."""
    path = demo_database(config.data_dir, config.demo_scale)
    return SourceSpec(name=DEMO_CATALOG, kind="duckdb",
                      options={"path": str(path), "memory_limit": config.memory_limit})


def _read(path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc


def _tls_options(config: ServerConfig) -> dict:
    """FlightServerBase arguments for TLS and mTLS (none without TLS)."""
    if not config.tls:
        return {}
    options: dict = {"tls_certificates": [(_read(config.tls_cert_file, "TLS certificate"),
                                           _read(config.tls_key_file, "TLS key"))]}
    if config.tls_client_ca_file is not None:
        options["verify_client"] = True
        options["root_certificates"] = _read(config.tls_client_ca_file, "client CA")
    return options


class Gateway:
    """A running (or ready to run) Nexus Flight server."""

    def __init__(self, config: ServerConfig, sources: SourceDirectory | None = None,
                 observers: list[QueryObserver] | None = None) -> None:
        if not _is_loopback(config.host) and not config.allow_unauthenticated_remote:
            # Authentication is not configurable yet: never expose an unauthenticated gateway beyond loopback.
            raise ConfigError(
                f"refusing to bind {config.host}: serving beyond loopback needs authentication, which is not "
                "configured; bind 127.0.0.1, or pass --allow-unauthenticated-remote on a trusted network only"
            )
        client_safe_tracebacks()
        self.config = config
        if sources is None:
            specs = list(config.sources)
            if config.demo_scale is not None:
                specs.insert(0, demo_source(config))
            sources = StaticSourceDirectory(specs, config.default_source)
        self.sources = sources
        limits = QueryLimits(
            timeout_seconds=config.query_timeout_seconds,
            batch_rows=config.batch_rows,
            max_message_bytes=config.max_message_bytes,
        )
        observers = [record_metrics, *(observers or [])]
        self.service = QueryService(sources, limits, validate_sql=config.validate_sql, observers=observers,
                                    validation_limits=config.validation_limits)
        self.server = FlightSqlServer(
            f"{self.scheme}://{config.host}:{config.port}",
            self.service,
            handle_ttl_seconds=config.handle_ttl_seconds,
            statement_timeout_seconds=int(config.query_timeout_seconds),
            **_tls_options(config),
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.server.port

    @property
    def scheme(self) -> str:
        """``grpc+tls`` with TLS configured, else ``grpc``."""
        return "grpc+tls" if self.config.tls else "grpc"

    @property
    def location(self) -> str:
        """The URI clients connect to."""
        return f"{self.scheme}://{self.config.host}:{self.port}"

    def serve(self) -> None:
        """Block serving until ``shutdown``."""
        self.server.serve()

    def start(self) -> Gateway:
        """Serve on a background thread; the port is bound and ready when this returns."""
        self._thread = threading.Thread(target=self.serve, name="nexus-flight", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop accepting calls, finish, and close every source."""
        self.server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sources.close()
