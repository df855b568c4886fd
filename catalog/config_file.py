"""The TOML configuration file: server settings and sources, validated in full before the gateway starts.

::

    [server]
    host = "127.0.0.1"
    port = 31337
    data_dir = "/var/lib/nexus-flight"      # the SQLite catalog lives here unless catalog_url is set
    catalog_url = "postgresql+psycopg://gateway@db/catalog"   # a shared catalog for several replicas

    [[sources]]
    name = "sales"
    type = "postgresql"
    options = { host = "10.0.0.5", database = "sales", user = "reader" }
    secrets = { password = "${env:SALES_PASSWORD}" }

Secrets are ``${env:NAME}`` references, never literal values (CV-007). Every setting can be overridden by an
environment variable: ``NEXUS_FLIGHT__SERVER__PORT=4000``,
``NEXUS_FLIGHT__SOURCES__SALES__OPTIONS__HOST=10.0.0.6`` (values are read as TOML values, else as text).
An invalid file fails with the field and the reason.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.validation import SourceConfig, validate_source
from nexus_flight.core.errors import ConfigError, GatewayError

ENV_PREFIX = "NEXUS_FLIGHT__"
_ENV_REF = re.compile(r"^\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthSettings(_Strict):
    """Client authentication of the gateway (the server decides how each mode is enforced)."""

    mode: Literal["none", "basic", "jwt"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    jwt_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(3600, ge=60, le=86_400 * 7)


class TLSSettings(_Strict):
    """Certificate files for TLS and, with ``client_ca_file``, mutual TLS."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class ServerSettings(_Strict):
    """The ``[server]`` table."""

    host: str = "127.0.0.1"
    port: int = Field(31337, ge=0, le=65535)
    data_dir: Path = Path("data")
    catalog_url: str | None = None
    default_source: str | None = None
    query_timeout_seconds: float = Field(300.0, gt=0, le=86_400)
    #: The largest Flight message sent to a client; raise it together with the clients' own limit.
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    #: Most rows and bytes one query result may have (no cap when unset); over a cap the query stops.
    max_result_rows: int | None = Field(None, ge=1)
    max_result_bytes: int | None = Field(None, ge=1)
    memory_limit: str = "2GB"
    #: Memory the whole server process may allocate beyond what it holds at start; "none" for no ceiling.
    process_memory_limit: str = "4GB"
    #: Most tickets and prepared statements open at once, in total and per client.
    max_tickets: int = Field(10_000, ge=1)
    max_tickets_per_client: int = Field(1_000, ge=1)
    max_prepared_statements: int = Field(10_000, ge=1)
    max_prepared_statements_per_client: int = Field(1_000, ge=1)
    history_retention_days: int | None = Field(30, ge=1)
    record_parameters: bool = False
    health_checks: bool = True
    #: How often active sources are probed (error sources follow the 30 s … 600 s backoff).
    health_check_interval_seconds: float = Field(300.0, ge=5)
    #: How long a cached schema answers metadata before the source is asked again.
    schema_cache_ttl_seconds: float = Field(300.0, ge=0)
    #: The read-only validator's limits, for every source (QV-009 length in bytes, QV-008 nesting and joins).
    max_query_length: int = Field(100_000, ge=1)
    max_nesting: int = Field(64, ge=1)
    max_joins: int = Field(64, ge=0)
    auth: AuthSettings = AuthSettings()
    tls: TLSSettings | None = None

    @field_validator("memory_limit", "process_memory_limit")
    @classmethod
    def _memory(cls, value: str, info) -> str:
        if info.field_name == "process_memory_limit" and value.lower() == "none":
            return value
        if not _MEMORY.match(value):
            raise ValueError("must be a size like 512MB or 2GB")
        return value


class _SourceEntry(_Strict):
    name: str
    type: str
    options: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    auth_type: str | None = None
    token_expires_at: datetime | None = None


class _File(_Strict):
    server: ServerSettings = ServerSettings()
    sources: list[_SourceEntry] = []


@dataclass(frozen=True)
class GatewayConfig:
    """A loaded, validated configuration file."""

    server: ServerSettings
    sources: list[SourceConfig] = field(default_factory=list)


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, override from the environment, and validate a configuration file (None: defaults plus env).

    Raises:
        ConfigError: naming the field and the reason (rule ids for source problems).

    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"the configuration file is not valid TOML: {exc}") from None
    _apply_env_overrides(data, env)
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    sources = []
    seen: set[str] = set()
    for index, entry in enumerate(parsed.sources):
        where = f"sources[{index}] ({entry.name})"
        if entry.name.lower() in seen:
            raise ConfigError(f"{where}: DS-002: the source name {entry.name!r} appears twice", rule="DS-002")
        seen.add(entry.name.lower())
        try:
            secrets = {k: _resolve_secret(f"{where}.secrets.{k}", v, env) for k, v in entry.secrets.items()}
            sources.append(
                validate_source(
                    entry.name, entry.type, entry.options, secrets, entry.auth_type, entry.token_expires_at
                )
            )
        except GatewayError as exc:
            raise ConfigError(f"{where}: {exc.message}", **exc.details) from None
    server = parsed.server
    if server.auth.password is not None or server.auth.jwt_secret is not None:
        server = server.model_copy(
            update={
                "auth": server.auth.model_copy(
                    update={
                        k: SecretStr(
                            _resolve_secret(
                                f"server.auth.{k}", getattr(server.auth, k).get_secret_value(), env
                            )
                        )
                        for k in ("password", "jwt_secret")
                        if getattr(server.auth, k) is not None
                    }
                )
            }
        )
    return GatewayConfig(server, sources)


def _resolve_secret(where: str, value: str, env: Mapping[str, str]) -> str:
    """``${env:NAME}`` -> the variable's value; anything else is a plaintext secret and refused."""
    match = _ENV_REF.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise rule_error("CV-007", f"{where} must be a reference like ${{env:NAME}}, not a literal secret")
    name = match.group(1)
    if not env.get(name):
        raise ConfigError(f"{where}: the environment variable {name} is not set")
    return env[name]


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Apply ``NEXUS_FLIGHT__A__B=value`` to ``data["a"]["b"]``; sources are addressed by name."""
    for key in sorted(env):
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        value = parse_value(env[key])
        if path[0] == "sources" and len(path) >= 3:
            entry = next(
                (s for s in data.get("sources", []) if str(s.get("name", "")).lower() == path[1]), None
            )
            if entry is None:
                raise ConfigError(f"{key}: no source named {path[1]!r} in the configuration file")
            _set(entry, path[2:], value)
        else:
            _set(data, path, value)


def _set(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"environment override: {'.'.join(path)} is not a table")
    target[path[-1]] = value


def parse_value(text: str) -> Any:
    """Read a command-line or environment value as TOML (``5432``, ``true``, ``["a"]``), else as text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "configuration"
    reason = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
    return f"{where}: {reason}"


def apply_sources(store, config: GatewayConfig) -> dict[str, str]:
    """Make the catalog hold the file's sources: add new ones, update existing ones; return name -> action.

    Sources only in the catalog (added with the CLI) are left alone.
    """
    from nexus_flight.core.errors import NotFoundError

    actions = {}
    for source in config.sources:
        try:
            store.get_source(source.name)
        except NotFoundError:
            store.add_source(
                source.name,
                source.type,
                source.options,
                source.secrets,
                source.auth_type,
                source.token_expires_at,
            )
            actions[source.name] = "added"
            continue
        before = store.get_source(source.name).updated_at
        store.update_source(
            source.name,
            options=source.options,
            secrets=source.secrets,
            auth_type=source.auth_type,
            token_expires_at=source.token_expires_at,
            replace_options=True,
        )
        after = store.get_source(source.name).updated_at
        actions[source.name] = "unchanged" if after == before else "updated"
    return actions
