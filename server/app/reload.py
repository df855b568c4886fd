"""SIGHUP: read the configuration again and apply what can change while clients stay connected.

Applied at once, for queries that start afterwards: the file's ``[[sources]]`` (added or updated in the catalog;
every gateway sharing the catalog picks them up within its refresh interval), its ``[[roles]]``, ``[[users]]`` and
``[[grants]]`` (added, brought back to the file, or removed when the file no longer declares them: the file owns
them; signed-in identities pick the change up within the identity refresh interval), the query limits (time limit, batch
rows, message size), the validator's limits, the default limits of users and API keys (``[server.limits]``),
the memory settings (``memory_limit`` for queries that start afterwards; ``memory_budget``,
``admission_queue_size`` and ``admission_timeout_seconds`` at once, waiting queries included;
``idle_query_instances``, closing idle instances beyond a lower count; ``max_temp_directory_size`` for DuckDB
instances opened afterwards), ``drain_seconds`` for the next stop, and the log levels and format. Open
connections, sessions, tickets and running streams are untouched (a running query keeps the limits it started
with; only a source whose own configuration changed gets a new connection, as after ``nexus-flight sources
update``). Settings that decide what the process listens on, advertises or where its state lives, and those read
once at start (``RESTART_ONLY``), need a restart: those that changed are named in the log.
A configuration that does not load is refused whole, naming the problem; the running one stays.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import ServerSettings

log = logging.getLogger("nexus_flight.reload")

#: Settings a reload cannot apply: the listening sockets, TLS, the catalog and the data directory, process limits.
RESTART_ONLY = (
    "host", "port", "tls", "auth", "allow_unauthenticated_remote", "data_dir", "catalog_url", "demo_scale",
    "process_memory_limit", "http_port", "http_host", "handle_ttl_seconds", "max_tickets",
    "max_tickets_per_client", "max_prepared_statements", "max_prepared_statements_per_client", "health_checks",
    "health_check_interval_seconds", "history_retention_days", "record_parameters", "schema_cache_ttl_seconds",
    "default_source", "limit_counts", "slot_lease_seconds", "audit_retention_days", "system_table_rows",
    "validate_sql", "max_endpoints", "advertised_locations",
)


def reload_configuration(path: str | Path | None, flags: Mapping[str, Any], gateway, store) -> str:
    """Apply the configuration file again; return a one-line summary of what changed.

    Raises:
        ConfigError: the file does not load or a source in it is invalid (nothing is applied then).

    """
    from nexus_flight.catalog.config_file import apply_declared_security, apply_sources, check_declared, load_config
    from nexus_flight.catalog.policies import sync_policies
    from nexus_flight.server.app.logs import configure_logging

    config = load_config(path, flags=flags)
    check_declared(store, config)
    before: ServerSettings = gateway.settings
    settings = config.server
    needs_restart = [name for name in RESTART_ONLY if getattr(settings, name) != getattr(before, name)]
    kept = settings.model_copy(update={name: getattr(before, name) for name in RESTART_ONLY})
    actions = apply_sources(store, config)
    declared = apply_declared_security(store, config)
    policies = sync_policies(store, config.policies) if config.policies is not None else {}
    gateway.apply_settings(kept)
    configure_logging(kept.log_format, kept.log_level, kept.log_levels)
    changed = sorted(name for name in type(kept).model_fields if getattr(kept, name) != getattr(before, name))
    if needs_restart:
        log.warning("configuration reloaded; these settings apply only after a restart: %s",
                    ", ".join(needs_restart))
    sources = ", ".join(f"{name} {action}" for name, action in sorted(actions.items())) or "none in the file"
    changed_policies = ", ".join(f"{name} {action}" for name, action in sorted(policies.items())
                                 if action != "unchanged") or "none changed"
    return (f"settings changed: {', '.join(changed) or 'none'}; sources: {sources}; "
            f"users, roles and grants: {declared or 'unchanged'}; policies: {changed_policies}")


def reload_or_explain(path, flags, gateway, store, say=print) -> bool:
    """``reload_configuration``, telling the operator what happened; False when the file was refused."""
    try:
        summary = reload_configuration(path, flags, gateway, store)
    except ConfigError as exc:
        say(f"SIGHUP: configuration not reloaded, the running one stays: {exc.client_message()}")
        return False
    say(f"SIGHUP: configuration reloaded ({summary})")
    return True
