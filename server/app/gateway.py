"""Builds the gateway from its ``ServerSettings`` and runs it."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Sequence

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.source import QueryLimits, SourceSpec
from nexus_flight.server.app.demo import demo_database
from nexus_flight.server.app.telemetry import record_metrics
from nexus_flight.server.flight.auth import Authenticator
from nexus_flight.server.flight.handles import HandleLimits
from nexus_flight.server.flight.server import FlightSqlServer
from nexus_flight.server.flight.status import client_safe_tracebacks
from nexus_flight.server.query.authorization import QueryAccess
from nexus_flight.server.query.directory import SourceDirectory, StaticSourceDirectory
from nexus_flight.server.query.service import QueryObserver, QueryService

log = logging.getLogger("nexus_flight")

DEMO_CATALOG = "demo"


def resolve_listen_address(host: str) -> tuple[str, bool]:
    """Resolve the address to listen on; return the one to bind and whether every resolution is loopback.

    The decision is made on the resolved addresses, never on the text (``127.attacker.example`` is a name like
    any other), and the server binds the address that was checked.

    Raises:
        ConfigError: the name does not resolve.

    """
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot resolve the address to listen on ({host!r}): {reason}; give an IP address such as 127.0.0.1"
        ) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise ConfigError(f"the address to listen on ({host!r}) resolves to nothing; give an IP address")
    loopback = all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
    return addresses[0], loopback


def demo_source(settings: ServerSettings) -> SourceSpec:
    """The embedded TPC-H catalog, generated on first start (``demo_scale`` must be set)."""
    assert settings.demo_scale is not None
    path = demo_database(settings.data_dir, settings.demo_scale)
    return SourceSpec(name=DEMO_CATALOG, kind="duckdb",
                      options={"path": str(path), "memory_limit": settings.memory_limit})


def _read(path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc


def _tls_options(settings: ServerSettings) -> dict:
    """FlightServerBase arguments for TLS and mTLS (none without TLS)."""
    tls = settings.tls
    if tls is None:
        return {}
    options: dict = {"tls_certificates": [(_read(tls.cert_file, "TLS certificate"), _read(tls.key_file, "TLS key"))]}
    if tls.client_ca_file is not None:
        options["verify_client"] = True
        options["root_certificates"] = _read(tls.client_ca_file, "client CA")
    return options


class Gateway:
    """A running (or ready to run) Nexus Flight server.

    Args:
        settings: The server's settings (``process_memory_limit`` is the ``serve`` command's to apply, not this
            class's: an embedding application keeps its own process limits).
        sources: A directory of sources, or the sources to serve besides the demo; the demo alone when None.
        observers: Called with every finished query's ``QueryEvent``.
        authenticator: Who may call (``server.security``); None serves without authentication.
        access: What each caller may see and read (``server.security``); None: everything.

    """

    def __init__(self, settings: ServerSettings, sources: SourceDirectory | Sequence[SourceSpec] | None = None,
                 observers: list[QueryObserver] | None = None, authenticator: Authenticator | None = None,
                 access: QueryAccess | None = None) -> None:
        address, loopback = resolve_listen_address(settings.host)
        required = authenticator is not None and authenticator.required
        if not loopback and not required and not settings.allow_unauthenticated_remote:
            # Never expose an unauthenticated gateway beyond loopback.
            shown = settings.host if address == settings.host else f"{settings.host} ({address})"
            raise ConfigError(
                f"refusing to bind {shown}: serving beyond loopback needs authentication, which is not "
                "configured ([server.auth] enabled = true); bind 127.0.0.1, or pass --allow-unauthenticated-remote "
                "on a trusted network only"
            )
        client_ca = settings.tls.client_ca_file if settings.tls else None
        if authenticator is not None and authenticator.certificate_identities and client_ca is None:
            raise ConfigError("AU-010: sign-in by client certificate ('mtls' in [server.auth] methods) needs "
                              "--tls-client-ca (and --tls-cert, --tls-key)", rule="AU-010")
        self._address = f"[{address}]" if ":" in address else address
        self.settings = settings
        if sources is None or isinstance(sources, Sequence):
            specs = list(sources or ())
            if settings.demo_scale is not None:
                specs.insert(0, demo_source(settings))
            sources = StaticSourceDirectory(specs, settings.default_source)
        self.sources: SourceDirectory = sources
        limits = QueryLimits(
            timeout_seconds=settings.query_timeout_seconds,
            batch_rows=settings.batch_rows,
            max_message_bytes=settings.max_message_bytes,
            max_result_rows=settings.max_result_rows,
            max_result_bytes=settings.max_result_bytes,
        )
        observers = [record_metrics, *(observers or [])]
        self.service = QueryService(sources, limits, validate_sql=settings.validate_sql, observers=observers,
                                    validation_limits=settings.validation_limits)
        self.service.access = access
        self.server = FlightSqlServer(
            f"{self.scheme}://{self._address}:{settings.port}",
            self.service,
            handle_ttl_seconds=settings.handle_ttl_seconds,
            statement_timeout_seconds=int(settings.query_timeout_seconds),
            handle_limits=HandleLimits(
                max_tickets=settings.max_tickets,
                max_tickets_per_client=settings.max_tickets_per_client,
                max_prepared_statements=settings.max_prepared_statements,
                max_prepared_statements_per_client=settings.max_prepared_statements_per_client,
            ),
            authenticator=authenticator,
            address_header=settings.auth.client_address_header,
            **_tls_options(settings),
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.server.port

    @property
    def scheme(self) -> str:
        """``grpc+tls`` with TLS configured, else ``grpc``."""
        return "grpc+tls" if self.settings.tls is not None else "grpc"

    @property
    def location(self) -> str:
        """The URI clients connect to."""
        return f"{self.scheme}://{self._address}:{self.port}"

    def serve(self) -> None:
        """Block serving until ``shutdown``; while it serves, status messages carry no Python tracebacks."""
        with client_safe_tracebacks():
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
