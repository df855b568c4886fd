"""The gateway's settings: one model, read from defaults < configuration file < environment < command-line flags.

:class:`ServerSettings` is the ``[server]`` table of the TOML file and everything ``nexus-flight serve`` and an
embedding application can set; it is the only declaration of a server knob. A setting comes, lowest first, from
the field's default, the file, an environment variable ``NEXUS_FLIGHT__SERVER__<NAME>`` (``__`` between nested
names: ``NEXUS_FLIGHT__SERVER__TLS__CERT_FILE``; values are read as TOML values, else as text) and a flag given on
the command line. A flag counts when it is given, even when it repeats the default.

Adding a knob is one field here (its default, bounds and doc comment), plus a flag in ``server/app/cli.py`` whose
``dest`` is the field's name when it deserves one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.source import ValidationLimits

ENV_PREFIX = "NEXUS_FLIGHT__"
DEFAULT_PORT = 31337
_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockoutSettings(_Strict):
    """How repeated sign-in failures are slowed down, then locked out (per user name and per client address)."""

    #: Failures older than this are forgotten.
    window_seconds: float = Field(900.0, gt=0)
    #: After this many failures in the window, each further attempt must wait (1 s, doubling, up to the maximum).
    user_throttle_after: int = Field(5, ge=1)
    user_lockout_after: int = Field(10, ge=1)
    #: Per client address: known only from a trusted proxy's ``client_address_header`` (Arrow does not tell a
    #: sign-in which address it comes from), so without a proxy only the per-user counts apply.
    address_throttle_after: int = Field(20, ge=1)
    address_lockout_after: int = Field(50, ge=1)
    max_delay_seconds: float = Field(30.0, gt=0)
    #: How long a lockout lasts.
    lockout_seconds: float = Field(900.0, gt=0)


_ALGORITHMS = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"]


class OidcIssuerSettings(_Strict):
    """One external identity provider whose bearer JWTs the gateway accepts (``[[server.auth.oidc]]``)."""

    issuer: str
    #: The ``aud`` the tokens must carry (one of them, when a list).
    audience: str | list[str]
    #: Where the provider's keys are: a JWKS URL (fetched, cached, refreshed on an unknown ``kid``) or file.
    jwks_url: str | None = None
    jwks_file: Path | None = None
    #: The claim naming the user, and the one listing its roles (dotted paths reach nested claims).
    user_claim: str = "sub"
    roles_claim: str | None = "roles"
    #: Claims copied into the user's attributes for row filters: ``{ region = "region" }``.
    attribute_claims: dict[str, str] = {}
    #: Asymmetric algorithms only: ``none`` and the HMAC family are never accepted.
    algorithms: list[_ALGORITHMS] = ["RS256", "ES256", "EdDSA"]
    leeway_seconds: float = Field(30.0, ge=0, le=300)
    jwks_cache_seconds: float = Field(300.0, ge=0)

    @model_validator(mode="after")
    def _one_key_source(self) -> OidcIssuerSettings:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError(f"AU-010: issuer {self.issuer!r} needs exactly one of jwks_url and jwks_file")
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError(f"AU-010: jwks_url of {self.issuer!r} must be an http(s) URL")
        return self


class AuthSettings(_Strict):
    """Client authentication (``[server.auth]``): who may connect and how they sign in."""

    #: Require every call to be authenticated. Off, any user name is a label (loopback only, or trusted networks).
    enabled: bool = False
    #: The sign-in methods accepted; gateway-issued bearer tokens are always accepted while authentication is on.
    methods: list[Literal["password", "api_key", "oidc", "mtls"]] = ["password", "api_key"]
    #: Lifetime of the tokens the Handshake issues; clients get a fresh one on any call past half of it.
    token_ttl_seconds: int = Field(3600, ge=60, le=86_400 * 7)
    #: A client that keeps the token it signed in with (the JDBC driver does) stays signed in while it keeps
    #: calling: the sign-in continues past the token's expiry, on the replica that refreshed it, up to this long.
    session_max_seconds: int = Field(43_200, ge=60, le=86_400 * 30)
    #: Longest lifetime ``tokens issue`` may give a service token.
    service_token_max_ttl_seconds: int = Field(86_400 * 90, ge=60)
    #: The ``iss`` and ``aud`` of the gateway's own tokens.
    issuer: str = "nexus-flight"
    audience: str = "nexus-flight"
    #: How soon a change made elsewhere (another replica, the CLI) reaches this gateway: revocations, users, keys.
    refresh_seconds: float = Field(2.0, gt=0, le=300)
    #: Password checks (argon2, ~30 ms of CPU each) running at once, and how many more may wait for one.
    password_checks_at_once: int = Field(1, ge=1)
    password_checks_waiting: int = Field(32, ge=0)
    #: A failed sign-in is answered after this long (a client retrying bad credentials in a loop slows down), while
    #: at most ``failure_delays_at_once`` are held; 0 answers at once.
    failure_delay_seconds: float = Field(0.2, ge=0, le=10)
    failure_delays_at_once: int = Field(64, ge=1)
    #: Failed sign-ins audited one row each per minute; the rest of a minute are audited in one row that counts
    #: them (a flood cannot fill the catalog's disk). Lockouts are always audited one by one.
    audit_failures_per_minute: int = Field(600, ge=1)
    #: A header a trusted proxy sets to the client's address (``x-forwarded-for``); its first entry is used.
    client_address_header: str | None = None
    #: A header a trusted proxy sets to name the client's own connection (deploy/nginx.conf: ``x-client-connection``,
    #: ``$hostname/$pid/$connection``): a client without sign-in, Handshake token or cookie keeps its session on
    #: it, on every replica, instead of on the proxy's connection, which clients share.
    client_connection_header: str | None = None
    lockout: LockoutSettings = LockoutSettings()
    oidc: list[OidcIssuerSettings] = []

    @model_validator(mode="after")
    def _issuers_for_oidc(self) -> AuthSettings:
        if "oidc" in self.methods and not self.oidc:
            raise ValueError("AU-010: method 'oidc' needs at least one [[server.auth.oidc]] issuer")
        if self.oidc and "oidc" not in self.methods:
            raise ValueError("AU-010: [[server.auth.oidc]] issuers are configured but 'oidc' is not in methods")
        if self.issuer in {i.issuer for i in self.oidc}:
            raise ValueError("AU-010: the gateway's own issuer must differ from every OIDC issuer")
        return self


class PrincipalLimitSettings(_Strict):
    """``[server.limits]``: the limits of every user, API key and role that sets none of its own.

    The names and meanings are those of ``catalog/limits.py`` (``users``/``roles``/``keys`` ``--limit``); unset
    means no limit. Reloaded on SIGHUP.
    """

    queries_per_minute: float | None = Field(None, gt=0)
    query_burst: int | None = Field(None, gt=0)
    max_concurrent_queries: int | None = Field(None, gt=0)
    max_concurrent_queries_per_source: int | None = Field(None, gt=0)
    max_rows: int | None = Field(None, gt=0)
    max_bytes: int | None = Field(None, gt=0)
    max_query_seconds: float | None = Field(None, gt=0)
    queue_timeout_seconds: float | None = Field(None, ge=0)

    def as_limits(self) -> dict[str, Any]:
        """The limits that are set, by name."""
        return self.model_dump(exclude_none=True)


class TLSSettings(_Strict):
    """``[server.tls]``: PEM files for TLS and, with ``client_ca_file``, mutual TLS."""

    #: The server's certificate chain and private key.
    cert_file: Path
    key_file: Path
    #: mTLS: the CAs whose client certificates are accepted (clients must then present one).
    client_ca_file: Path | None = None


class ServerSettings(_Strict):
    """Everything the gateway process can be told: the ``[server]`` table, environment overrides and flags."""

    # -- listening
    host: str = "127.0.0.1"
    #: 0 picks a free port.
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    tls: TLSSettings | None = None
    auth: AuthSettings = AuthSettings()
    #: Default limits per user and API key (``[server.limits]``).
    limits: PrincipalLimitSettings = PrincipalLimitSettings()
    #: Serve a non-loopback address without authentication (containers on a trusted network only).
    allow_unauthenticated_remote: bool = False

    # -- state
    #: Where the demo data and the default SQLite catalog live.
    data_dir: Path = Path("data")
    #: SQLAlchemy URL of the catalog (a PostgreSQL one shared by replicas); ``<data_dir>/catalog.db`` when unset.
    catalog_url: str | None = None
    #: Scale factor of the embedded TPC-H demo catalog; ``"none"`` (``--no-demo``) serves no demo.
    demo_scale: float | None = Field(0.01, gt=0)
    #: The source a query without a catalog runs on; the demo, else the first source, when unset.
    default_source: str | None = None

    # -- one query
    #: Server-side limit on one query's run time (planning included).
    query_timeout_seconds: float = Field(300.0, gt=0, le=86_400)
    #: Rows per Arrow batch an engine is asked for; wide batches are then cut by bytes (``max_message_bytes``).
    batch_rows: int = Field(65_536, gt=0)
    #: The largest Flight message sent to a client: 16 MiB, what ADBC and other gRPC clients accept by default;
    #: raise it together with the clients' own limit.
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    #: Most rows and bytes (Arrow buffers) one query's result may have; unset (or ``"none"``): no cap. The batch
    #: that would cross a cap is not sent, and the query stops with an error naming the cap.
    max_result_rows: int | None = Field(None, ge=1)
    max_result_bytes: int | None = Field(None, ge=1)
    #: Memory one query may hold in the gateway: its in-process engine's working memory (DuckDB spills past it,
    #: then fails naming it) plus the Arrow batches buffered for it (an engine batch larger than this fails the
    #: query). A source's ``memory_limit`` option and a user's ``memory_limit_mb`` limit override it.
    memory_limit: str = "512MB"
    #: The gateway-wide budget queries are admitted within: a query starts only when its memory limit fits in
    #: what running queries and idle DuckDB instances leave; ``"auto"`` (the default) is 75% of
    #: ``process_memory_limit`` (else of the machine's memory); ``"none"``: no budget (reservations are still
    #: counted, and published in ``/metrics``).
    memory_budget: str | None = "auto"
    #: Most queries waiting for room in the memory budget, and how long each waits before a retryable
    #: UNAVAILABLE naming the budget.
    admission_queue_size: int = Field(64, ge=0)
    admission_timeout_seconds: float = Field(30.0, ge=0)
    #: Disk each query's DuckDB work may spill to (under ``<data_dir>/spill`` unless a source sets its own
    #: ``temp_directory``); past it the query fails naming the limit.
    max_temp_directory_size: str = "10GB"
    #: DuckDB instances each DuckDB-run source keeps idle per memory limit for its next queries. Opening one per
    #: query halves small-query throughput under concurrency; each idle one keeps the blocks its last query
    #: scanned (up to that query's memory limit), counted in the memory budget and closed when a query needs room.
    idle_query_instances: int = Field(8, ge=0, le=256)
    #: Memory the process may allocate beyond what it holds when ``nexus-flight serve`` starts (``RLIMIT_DATA``);
    #: ``"none"`` for no ceiling. Applied by the ``serve`` command only: an application embedding the gateway
    #: decides its process's limits itself (``server.app.memory_guard.cap_process_memory``).
    process_memory_limit: str | None = "4GB"
    #: Turning the read-only validator off is for tests of the engines' own defence only.
    validate_sql: bool = True
    #: The validator's limits for sources that do not set their own (QV-009 length in bytes, QV-008 nesting and
    #: joins); a source sets its own with options of the same names.
    max_query_length: int = Field(100_000, ge=1)
    max_nesting: int = Field(64, ge=1)
    max_joins: int = Field(64, ge=0)
    #: Most operators nested in one expression (``1 + 1 + … + 1``); engines take seconds to bind long chains.
    max_operator_depth: int = Field(256, ge=1)

    # -- handles
    #: Idle prepared statements and tickets are forgotten after this long.
    handle_ttl_seconds: float = Field(1800.0, gt=0)
    #: Most tickets and prepared statements open at once, in total and per client (session).
    max_tickets: int = Field(10_000, ge=1)
    max_tickets_per_client: int = Field(1_000, ge=1)
    max_prepared_statements: int = Field(10_000, ge=1)
    max_prepared_statements_per_client: int = Field(1_000, ge=1)
    #: Most endpoints a splittable result (a scan of several files, no aggregate, order or limit) is served as,
    #: each a group of the files, so clients fetch them in parallel; 1 serves every result as one endpoint.
    max_endpoints: int = Field(4, ge=1, le=1024)
    #: The URIs clients fetch a split result's endpoints from (the proxy in front of the replicas, e.g.
    #: ``grpc+tls://flight.example.com:443``); none: the connection that asked for it.
    advertised_locations: list[str] = Field(default_factory=list)

    # -- replicas sharing the catalog
    #: Where principals' rate tokens, running queries and queued queries are counted: ``"catalog"`` (the default),
    #: in the catalog, so that replicas sharing it hold each principal to one budget; ``"process"``: in this
    #: process only (a gateway serving alone spares the catalog calls; replicas would each allow the whole budget).
    limit_counts: Literal["catalog", "process"] = "catalog"
    #: How long a running query's slot counts for its principal's concurrency limits without its replica renewing
    #: it (every third of this while the query runs): a killed replica's slots free within this. Read at start.
    slot_lease_seconds: float = Field(30.0, ge=1, le=3600)

    # -- the catalog's housekeeping
    #: Query history older than this is deleted (from start, then hourly, in batches); ``"none"`` keeps it all.
    history_retention_days: int | None = Field(30, ge=1)
    #: Audit events older than this are deleted (likewise); ``"none"`` keeps them all.
    audit_retention_days: int | None = Field(365, ge=1)
    #: Store query parameters in the history as given (by default only their shape).
    record_parameters: bool = False
    #: The most rows of ``system.main.query_history`` or ``audit_events`` one query may read, after what its WHERE
    #: narrows (``catalog/system_pushdown.py``); ``"none"``: no limit.
    system_table_rows: int | None = Field(1_000_000, ge=1)
    health_checks: bool = True
    #: How often active sources are probed (error sources follow the 30 s … 600 s backoff).
    health_check_interval_seconds: float = Field(300.0, ge=5)
    #: How long a cached schema answers metadata before the source is asked again (in the background: the cached
    #: one answers meanwhile; 0: every metadata request asks the source).
    schema_cache_ttl_seconds: float = Field(300.0, ge=0)

    # -- operations
    #: Port of the HTTP endpoints ``/healthz``, ``/readyz`` and ``/metrics``; ``"none"`` (the default) serves none.
    http_port: int | None = Field(None, ge=0, le=65535)
    #: Address of the HTTP endpoints; the Flight ``host`` when unset.
    http_host: str | None = None
    #: On Ctrl-C or SIGTERM, how long running queries may finish (new ones are refused) before they are cancelled.
    drain_seconds: float = Field(30.0, ge=0, le=86_400)
    #: How many signed-in users get series of their own in ``nexus_queries_total``; queries of later ones count as
    #: ``user="other"`` (thousands of SSO users would otherwise grow the scraped series without bound).
    metrics_user_series: int = Field(100, ge=0, le=100_000)
    #: How long the catalog may not answer before ``/readyz`` says so: sources already open serve through a catalog
    #: failover, and one shared by every replica must not take them all out of the load balancer at once.
    catalog_outage_grace_seconds: float = Field(120.0, ge=0, le=86_400)
    #: ``text`` (one readable line per record) or ``json`` (one JSON object per line, for log collectors).
    log_format: Literal["text", "json"] = "text"
    #: Level of every logger without its own entry in ``log_levels``.
    log_level: str = "INFO"
    #: Levels by logger (module) name, e.g. ``{"nexus_flight.query" = "WARNING", "nexus_flight.catalog" = "DEBUG"}``.
    log_levels: dict[str, str] = Field(default_factory=dict)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        return _log_level(value)

    @field_validator("log_levels")
    @classmethod
    def _levels(cls, value: dict[str, str]) -> dict[str, str]:
        return {name: _log_level(level) for name, level in value.items()}

    @field_validator(
        "demo_scale", "process_memory_limit", "history_retention_days", "max_result_rows", "max_result_bytes",
        "http_port", "memory_budget", "system_table_rows", "audit_retention_days", mode="before",
    )
    @classmethod
    def _none_spelled_out(cls, value: Any) -> Any:
        # TOML has no null: "none" in the file or the environment turns an optional setting off.
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    @field_validator("memory_limit", "process_memory_limit", "memory_budget", "max_temp_directory_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and value != "auto" and not _SIZE.match(value.strip()):
            raise ValueError("must be a size like 512MB or 2GB")
        return value

    @field_validator("data_dir")
    @classmethod
    def _home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def validation_limits(self) -> ValidationLimits:
        """The validator's limits for every source that does not set its own."""
        return ValidationLimits(
            max_length=self.max_query_length, max_nesting=self.max_nesting, max_joins=self.max_joins,
            max_operator_depth=self.max_operator_depth,
        )


_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def _log_level(value: str) -> str:
    level = str(value).strip().upper()
    if level not in _LEVELS:
        raise ValueError(f"must be one of {', '.join(_LEVELS)}")
    return level


_PREFIX = "v = "
_TOML_AT = re.compile(r"^(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$", re.S)


def parse_value(text: str, where: str = "the value") -> Any:
    """Read a command-line or environment value as TOML (``5432``, ``true``, ``["a"]``), else as text.

    A value opening an array or a table (``[``, ``{``) is meant as TOML, so it must be TOML: read as text, it would
    only be refused later as the wrong type, without saying where the TOML broke.

    Raises:
        ConfigError: ``where`` opens an array or a table that is not valid TOML (the parser's line and column).

    """
    try:
        return tomllib.loads(_PREFIX + text)["v"]
    except tomllib.TOMLDecodeError as exc:
        if text.lstrip()[:1] not in ("[", "{"):
            return text
        raise ConfigError(f"{where} is not valid TOML: {_toml_problem(str(exc))}", field=where) from None


def _toml_problem(message: str) -> str:
    """The parser's message with its line and column in the value itself (the parser saw it after ``v = ``)."""
    found = _TOML_AT.match(message)
    if found is None:
        return message
    line, column = int(found["line"]), int(found["column"])
    if line == 1:
        column -= len(_PREFIX)
    return f"{found['what']} (line {line}, column {column})"


def read_document(path: str | Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    """Read the TOML file (None: an empty one) and apply the ``NEXUS_FLIGHT__…`` environment overrides to it.

    ``NEXUS_FLIGHT__A__B=value`` sets ``a.b``; ``NEXUS_FLIGHT__SOURCES__<NAME>__…`` addresses a ``[[sources]]``
    entry by its name.

    Raises:
        ConfigError: the file cannot be read or is not TOML, or an override names no source of the file.

    """
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the configuration file is not valid TOML: {exc}") from None
    for key in sorted(env):
        if not key.startswith(ENV_PREFIX):
            continue
        names = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not names:
            continue
        value = parse_value(env[key], key)
        if names[0] == "sources" and len(names) >= 3:
            entry = next((s for s in document.get("sources", []) if str(s.get("name", "")).lower() == names[1]), None)
            if entry is None:
                raise ConfigError(f"{key}: no source named {names[1]!r} in the configuration file")
            _set(entry, names[2:], value)
        else:
            _set(document, names, value)
    return document


def _set(target: dict[str, Any], names: list[str], value: Any) -> None:
    for part in names[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"environment override: {'.'.join(names)} is not a table")
    target[names[-1]] = value


def flags_table(flags: Mapping[str, Any]) -> dict[str, Any]:
    """Nest flags given by dotted setting name (``{"tls.cert_file": p}`` -> ``{"tls": {"cert_file": p}}``)."""
    table: dict[str, Any] = {}
    for name, value in flags.items():
        _set(table, name.split("."), value)
    return table


def _merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``, table by table."""
    merged = dict(low)
    for key, value in high.items():
        below = merged.get(key)
        merged[key] = _merge(below, value) if isinstance(below, Mapping) and isinstance(value, Mapping) else value
    return merged


def server_settings(table: Mapping[str, Any] | None, flags: Mapping[str, Any] | None = None) -> ServerSettings:
    """Validate the ``[server]`` table (file and environment already applied) with the given flags on top.

    Args:
        table: The document's ``server`` table.
        flags: Settings given on the command line, by (dotted) field name; only those given.

    Raises:
        ConfigError: naming the setting (``server.port``) and the reason.

    """
    data = _merge(table or {}, flags_table(flags or {}))
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(first_error(exc, "server")) from None


def load_settings(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> ServerSettings:
    """The server settings from a TOML file (or none), the environment and flags, in that order of precedence.

    Raises:
        ConfigError: naming the setting and the reason.

    """
    env = os.environ if env is None else env
    document = read_document(path, env)
    return server_settings(document.get("server"), flags)


def resolve_reference(where: str, value: str, env: Mapping[str, str]) -> str:
    """``${env:NAME}`` -> the variable's value; anything else is a plaintext secret and refused (CV-007).

    Raises:
        ConfigError: CV-007 for a literal secret, or the variable is not set.

    """
    match = _ENV_REF.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        message = f"CV-007: {where} must be a reference like ${{env:NAME}}, not a literal secret"
        raise ConfigError(message, rule="CV-007")
    name = match.group(1)
    if not env.get(name):
        raise ConfigError(f"{where}: the environment variable {name} is not set")
    return env[name]


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """``where: reason`` of a validation error's first problem, never echoing the value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "") or "configuration"
    reason = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{where}: {reason}"
