"""Builds the gateway from its ``ServerSettings`` and runs it."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import ssl
import threading
from collections.abc import Sequence

import pyarrow as pa

from nexus_flight.backends.duckdb_engine import IdleQueryInstances, configure_spill
from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.sizes import parse_size
from nexus_flight.core.source import QueryLimits, SourceSpec
from nexus_flight.server.app.demo import demo_database
from nexus_flight.server.app.http_endpoints import OperationsServer, ReadinessCheck
from nexus_flight.server.app.logs import log_query
from nexus_flight.server.app.metrics import GatewayMetrics
from nexus_flight.server.app.telemetry import record_metrics
from nexus_flight.server.app.tls_certificate import certificate_expiry
from nexus_flight.server.flight.administration import Administration
from nexus_flight.server.flight.auth import Authenticator, ProxyHeaders
from nexus_flight.server.flight.handles import HandleLimits
from nexus_flight.server.flight.server import FlightSqlServer
from nexus_flight.server.flight.signed_handles import HandleSigner
from nexus_flight.server.flight.status import client_safe_tracebacks
from nexus_flight.server.query.authorization import QueryAccess
from nexus_flight.server.query.directory import SourceDirectory, StaticSourceDirectory
from nexus_flight.server.query.memory_budget import MemoryBudget
from nexus_flight.server.query.principal_limits import PrincipalLimiter
from nexus_flight.server.query.service import QueryObserver, QueryService
from nexus_flight.server.query.session import SessionStore

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
    return SourceSpec(name=DEMO_CATALOG, kind="duckdb", options={"path": str(path)})


def _read(path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc


def _check_key_pair(cert_file, key_file) -> None:
    """Refuse a certificate and key that do not load or do not belong together, naming the files.

    gRPC reports either only as "Server did not start properly"; Python's ssl module says which problem it is.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            problem = f"the TLS key {key_file} is not the private key of the certificate {cert_file}"
        else:
            problem = f"the TLS certificate {cert_file} or key {key_file} is not a valid PEM file ({exc.reason})"
        raise ConfigError(f"{problem}: give the matching pair with --tls-cert and --tls-key") from None


def _tls_options(settings: ServerSettings) -> dict:
    """FlightServerBase arguments for TLS and mTLS (none without TLS)."""
    tls = settings.tls
    if tls is None:
        return {}
    _read(tls.cert_file, "TLS certificate")
    _read(tls.key_file, "TLS key")
    _check_key_pair(tls.cert_file, tls.key_file)
    options: dict = {"tls_certificates": [(_read(tls.cert_file, "TLS certificate"), _read(tls.key_file, "TLS key"))]}
    if tls.client_ca_file is not None:
        options["verify_client"] = True
        options["root_certificates"] = _read(tls.client_ca_file, "client CA")
    return options


def query_limits(settings: ServerSettings) -> QueryLimits:
    """What every query runs under."""
    return QueryLimits(
        timeout_seconds=settings.query_timeout_seconds,
        batch_rows=settings.batch_rows,
        max_message_bytes=settings.max_message_bytes,
        max_result_rows=settings.max_result_rows,
        max_result_bytes=settings.max_result_bytes,
        memory_limit_bytes=parse_size(settings.memory_limit),
    )


def memory_budget_bytes(settings: ServerSettings) -> int | None:
    """The gateway-wide memory budget: ``memory_budget``; ``auto``: 75% of the process ceiling or of the machine."""
    if settings.memory_budget is None:
        return None
    if settings.memory_budget != "auto":
        return parse_size(settings.memory_budget)
    if settings.process_memory_limit is not None:
        return parse_size(settings.process_memory_limit) * 3 // 4
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4


def memory_budget(settings: ServerSettings) -> MemoryBudget:
    """The budget queries are admitted within, counting what idle DuckDB query instances hold."""
    return MemoryBudget(memory_budget_bytes(settings), settings.admission_queue_size,
                        settings.admission_timeout_seconds, idle=IdleQueryInstances())


def limits_of(settings: ServerSettings) -> HandleLimits:
    """The handle stores' limits from the settings."""
    return HandleLimits(
        max_tickets=settings.max_tickets,
        max_tickets_per_client=settings.max_tickets_per_client,
        max_prepared_statements=settings.max_prepared_statements,
        max_prepared_statements_per_client=settings.max_prepared_statements_per_client,
    )


def _bind_error(address: str, port: int) -> ConfigError:
    """What to tell the operator when gRPC could not listen (it says only "Server did not start properly")."""
    if port:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return ConfigError(
                        f"port {port} on {address} is already in use (another gateway or program listens there): "
                        "stop it, or choose another port with --port (0 picks a free one)"
                    )
                return ConfigError(f"cannot listen on {address}:{port}: {exc.strerror}; choose another --host or "
                                   "--port")
    return ConfigError(f"the Flight server could not listen on {address}:{port}; the log above has gRPC's reason")


class Gateway:
    """A running (or ready to run) Nexus Flight server.

    Args:
        settings: The server's settings (``process_memory_limit`` is the ``serve`` command's to apply, not this
            class's: an embedding application keeps its own process limits).
        sources: A directory of sources, or the sources to serve besides the demo; the demo alone when None.
        observers: Called with every finished query's ``QueryEvent``.
        authenticator: Who may call (``server.security``); None serves without authentication.
        access: What each caller may see and read (``server.security``); None: everything.
        administration: The ``nexus.*`` administration actions (``server.security``); None refuses them all.
        signer: Signs tickets and prepared-statement handles (the catalog's keys, so that every replica redeems
            them); None: a key of this process.
        sessions: Where sessions live (the catalog's, shared by replicas); None: in this process.

    """

    def __init__(self, settings: ServerSettings, sources: SourceDirectory | Sequence[SourceSpec] | None = None,
                 observers: list[QueryObserver] | None = None, authenticator: Authenticator | None = None,
                 access: QueryAccess | None = None, administration: Administration | None = None,
                 signer: HandleSigner | None = None, sessions: SessionStore | None = None) -> None:
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
        limits = query_limits(settings)
        self.metrics = GatewayMetrics()
        observers = [record_metrics, self.metrics.observe, log_query, *(observers or [])]
        configure_spill(settings.data_dir / "spill", settings.max_temp_directory_size, settings.idle_query_instances)
        self.service = QueryService(sources, limits, validate_sql=settings.validate_sql, observers=observers,
                                    validation_limits=settings.validation_limits,
                                    limiter=PrincipalLimiter(settings.limits.as_limits()),
                                    memory_budget=memory_budget(settings))
        self.service.access = access
        tls_options = _tls_options(settings)
        #: When the served TLS certificate expires (None without TLS).
        self.certificate_expires = certificate_expiry(settings.tls.cert_file) if settings.tls else None
        try:
            self.server = self._bind(settings, limits_of(settings), tls_options, authenticator,
                                     administration=administration, signer=signer, sessions=sessions)
        except pa.ArrowException:
            raise _bind_error(address, settings.port) from None
        self._thread: threading.Thread | None = None
        self.metrics.bind(self)
        #: What ``/readyz`` asks; an embedding application or the ``serve`` command adds its own (the catalog).
        self.readiness: list[ReadinessCheck] = [self._not_draining]
        self.operations: OperationsServer | None = None
        if settings.http_port is not None:
            self.operations = self._operations_server(settings, address)

    def _operations_server(self, settings: ServerSettings, flight_address: str) -> OperationsServer:
        host = settings.http_host or flight_address
        try:
            return OperationsServer(host, settings.http_port, self.metrics.text, self.readiness).start()
        except OSError as exc:
            self.server.shutdown()
            reason = "it is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ConfigError(
                f"cannot serve the HTTP endpoints on {host}:{settings.http_port}: {reason}; choose another port "
                "with --http-port (0 picks a free one)"
            ) from None

    def apply_settings(self, settings: ServerSettings) -> None:
        """Use new query, validator and default principal limits for queries that start from now on (a reload)."""
        self.settings = settings
        self.service.limits = query_limits(settings)
        self.service.limiter.defaults = settings.limits.as_limits()
        if hasattr(self.server.authenticator, "default_limits"):  # signed-in principals resolve theirs with these
            self.server.authenticator.default_limits = settings.limits.as_limits()
        self.service.validation_limits = settings.validation_limits
        self.server.statement_timeout = int(settings.query_timeout_seconds)
        # Memory: new per-query limits above (running queries keep theirs), the budget and its queue at once,
        # fewer idle instances closed at once, a new spill cap for instances opened from now on.
        configure_spill(settings.data_dir / "spill", settings.max_temp_directory_size, settings.idle_query_instances)
        self.service.memory_budget.resize(memory_budget_bytes(settings), settings.admission_queue_size,
                                          settings.admission_timeout_seconds)

    def _not_draining(self) -> str | None:
        if self.server.draining:
            return f"draining ({self.server.draining})"
        return None

    def _bind(self, settings: ServerSettings, handle_limits: HandleLimits, tls_options: dict,
              authenticator: Authenticator | None, **shared) -> FlightSqlServer:
        return FlightSqlServer(
            f"{self.scheme}://{self._address}:{settings.port}",
            self.service,
            handle_ttl_seconds=settings.handle_ttl_seconds,
            statement_timeout_seconds=int(settings.query_timeout_seconds),
            handle_limits=handle_limits,
            authenticator=authenticator,
            proxy_headers=ProxyHeaders(settings.auth.client_address_header, settings.auth.client_connection_header),
            max_endpoints=settings.max_endpoints,
            advertised_locations=settings.advertised_locations,
            **shared,
            **tls_options,
        )

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

    def shutdown(self, wait_seconds: float | None = None) -> bool:
        """Stop accepting calls, finish, and close every source.

        Args:
            wait_seconds: How long to wait for calls still open (a client that stopped reading holds its stream
                open); None waits for them all.

        Returns:
            False when calls were still open after ``wait_seconds`` (sources are then left open).

        """
        if self.operations is not None:
            self.operations.close()
        if not self.server.draining:
            # gRPC's shutdown waits for every call: a query waiting for memory would hold it up to its timeout.
            self.server.begin_drain("the gateway is stopping")
        stopper = threading.Thread(target=self.server.shutdown, name="nexus-flight-shutdown", daemon=True)
        stopper.start()
        stopper.join(wait_seconds)
        if stopper.is_alive():
            return False
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sources.close()
        return True
