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
    options = { host = "10.0.0.5", database = "sales", username = "reader" }
    secrets = { password = "${env:SALES_PASSWORD}" }

    [[policies]]
    name = "sales-by-region"
    on = "sales.public.orders"
    row_filter = "region = {user.region}"

    [[policies]]
    name = "hide-email"
    on = "sales.public.customers"
    mask = "email"                          # replaced by NULL, or by `expression`
    exempt_roles = ["support"]

``[server]`` is :class:`~nexus_flight.core.settings.ServerSettings`, the one declaration of the server's settings;
each ``[[sources]]`` entry is validated like a source added with the CLI (the DS and CV rules), each
``[[policies]]`` entry like a policy added with ``nexus-flight policies add`` (AU-007). ``[[roles]]``, ``[[users]]``
and ``[[grants]]`` declare who may read what (``catalog/config_security.py``). The file owns the policies, roles,
users and grants it declares. Secrets are ``${env:NAME}`` references, never literal values (CV-007). Every setting
can be overridden by an environment variable: ``NEXUS_FLIGHT__SERVER__PORT=4000``,
``NEXUS_FLIGHT__SOURCES__SALES__OPTIONS__HOST=10.0.0.6`` (values are read as TOML values, else as text); flags
given to ``serve`` win over both. An invalid file fails with the field and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from nexus_flight.catalog.config_security import DeclaredSecurity, declared_security
from nexus_flight.catalog.policies import PolicySpec, check_policy
from nexus_flight.catalog.validation import SourceConfig, validate_source
from nexus_flight.core.errors import ConfigError, GatewayError
from nexus_flight.core.settings import (
    ServerSettings,
    first_error,
    read_document,
    resolve_reference,
    server_settings,
)


class _SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    options: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    auth_type: str | None = None
    token_expires_at: datetime | None = None


class _PolicyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    on: str
    row_filter: str | None = None
    mask: str | None = None
    expression: str | None = None
    exempt_roles: list[str] = []

    def spec(self) -> PolicySpec:
        if (self.row_filter is None) == (self.mask is None):
            raise ConfigError("a policy has either row_filter or mask")
        if self.row_filter is not None:
            if self.expression is not None:
                raise ConfigError("expression goes with mask; a row filter is its row_filter")
            return PolicySpec(self.name, "row_filter", self.on, expression=self.row_filter,
                              exempt_roles=tuple(self.exempt_roles))
        return PolicySpec(self.name, "column_mask", self.on, column=self.mask, expression=self.expression,
                          exempt_roles=tuple(self.exempt_roles))


class _Document(BaseModel):
    """The file's top level: ``[server]`` (validated by ``ServerSettings``), ``[[sources]]`` and ``[[policies]]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server: dict[str, Any] = {}
    sources: list[_SourceEntry] = []
    policies: list[_PolicyEntry] = []
    #: Checked by ``config_security`` (one function per kind).
    roles: list[Any] = []
    users: list[Any] = []
    grants: list[Any] = []


@dataclass(frozen=True)
class GatewayConfig:
    """A loaded, validated configuration file."""

    server: ServerSettings
    sources: list[SourceConfig] = field(default_factory=list)
    #: The file's row filters and column masks (None without a file: then no file owns any, and a gateway served
    #: without one keeps those an earlier file declared rather than dropping them, filters and all).
    policies: list[PolicySpec] | None = None
    #: The file's roles, users and grants (None without a file: then no file owns any).
    security: DeclaredSecurity | None = None


def load_config(
    path: str | Path | None, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> GatewayConfig:
    """Read, override from the environment and flags, and validate a configuration file (None: no file).

    Args:
        path: The TOML file.
        env: The environment (``os.environ`` by default): ``NEXUS_FLIGHT__…`` overrides and ``${env:NAME}``.
        flags: Server settings given on the command line, by (dotted) name; they win over file and environment.

    Raises:
        ConfigError: naming the field and the reason (rule ids for source problems).

    """
    env = os.environ if env is None else env
    document = read_document(path, env)
    server = server_settings(document.get("server"), flags)
    try:
        parsed = _Document.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(first_error(exc)) from None
    sources = []
    seen: set[str] = set()
    for index, entry in enumerate(parsed.sources):
        where = f"sources[{index}] ({entry.name})"
        if entry.name.lower() in seen:
            raise ConfigError(f"{where}: DS-002: the source name {entry.name!r} appears twice", rule="DS-002")
        seen.add(entry.name.lower())
        try:
            secrets = {k: resolve_reference(f"{where}.secrets.{k}", v, env) for k, v in entry.secrets.items()}
            sources.append(
                validate_source(
                    entry.name, entry.type, entry.options, secrets, entry.auth_type, entry.token_expires_at
                )
            )
        except GatewayError as exc:
            raise ConfigError(f"{where}: {exc.message}", **exc.details) from None
    security = declared_security(document, env) if path is not None else None
    policies = _policies(parsed.policies) if path is not None else None
    return GatewayConfig(server, sources, policies, security)


def _policies(entries: list[_PolicyEntry]) -> list[PolicySpec]:
    specs, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"policies[{index}] ({entry.name})"
        if entry.name.lower() in seen:
            raise ConfigError(f"{where}: AU-002: the policy name {entry.name!r} appears twice", rule="AU-002")
        seen.add(entry.name.lower())
        try:
            spec = entry.spec()
            check_policy(spec)
        except GatewayError as exc:
            raise ConfigError(f"{where}: {exc.message}", **exc.details) from None
        specs.append(spec)
    return specs


def check_declared(store, config: GatewayConfig) -> None:
    """Check the file's users, roles, grants and policies against the catalog before any part of it is applied.

    A file is applied whole or not at all: a declaration the catalog refuses (a name the CLI owns, an unknown
    role) must refuse it before its sources, users or other policies change anything.

    Raises:
        ConfigError: the first declaration the catalog refuses, naming it.

    """
    from nexus_flight.catalog.config_security import check_security
    from nexus_flight.catalog.policies import check_declared_policies
    from nexus_flight.catalog.users import list_roles

    if config.security is not None:
        roles = check_security(store, config.security)
    else:
        roles = {r.name for r in list_roles(store)}
    if config.policies is not None:
        check_declared_policies(store, config.policies, roles)


def apply_declared_security(store, config: GatewayConfig) -> str:
    """Make the catalog hold the file's roles, users and grants; return a summary ("" when nothing changed)."""
    from nexus_flight.catalog.config_security import apply_security

    return apply_security(store, config.security) if config.security is not None else ""


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
