"""Starting the catalog alongside the gateway: one call that ``nexus-flight serve`` makes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from nexus_flight.catalog.config_file import GatewayConfig, apply_declared_security, apply_sources, check_declared
from nexus_flight.catalog.directory import CatalogSourceDirectory, HistoryObserver, history_observer
from nexus_flight.catalog.health import HealthChecker
from nexus_flight.catalog.policies import sync_policies
from nexus_flight.catalog.reachability import CatalogWatch
from nexus_flight.catalog.redaction import install_log_scrubber
from nexus_flight.catalog.retention import RetentionKeeper
from nexus_flight.catalog.store import CatalogStore

log = logging.getLogger(__name__)


@dataclass
class CatalogRuntime:
    """The catalog pieces a running gateway uses."""

    config: GatewayConfig
    store: CatalogStore
    directory: CatalogSourceDirectory
    #: What the query service calls when a query ends: the history writer.
    history: HistoryObserver
    checker: HealthChecker
    #: Deletes history and audit rows past their retention, beside serving.
    retention: RetentionKeeper
    #: Whether the catalog answers, for readiness and ``/metrics``.
    watch: CatalogWatch

    @property
    def observers(self) -> list[HistoryObserver]:
        """The query observers the gateway is given."""
        return [self.history]

    def close(self) -> None:
        """Stop health checks and retention, write pending history, release the catalog (not the backends)."""
        self.watch.stop()
        self.retention.stop()
        self.checker.stop()
        self.history.close()
        self.store.close()


def start_catalog(config: GatewayConfig, *, fallback=None,
                  admit: Callable[[CatalogStore], None] | None = None) -> CatalogRuntime:
    """Open the catalog of a loaded configuration, sync the file's sources and start health checks.

    Args:
        config: The configuration (``load_config``: file, environment and flags already applied).
        fallback: A source directory served alongside the catalog's sources (the demo).
        admit: Run on the opened catalog before the file changes anything in it (a start it refuses leaves the
            catalog as it was: the master keys' check).

    Raises:
        ConfigError: the catalog cannot be opened, or the file or ``admit`` refuses it (nothing applied).

    """
    install_log_scrubber()
    server = config.server
    store = CatalogStore(server.catalog_url, data_dir=server.data_dir)
    try:
        if admit is not None:
            admit(store)
        check_declared(store, config)  # the file is applied whole or not at all
    except BaseException:
        store.close()
        raise
    actions = apply_sources(store, config)
    if actions:
        log.info("configuration sources: %s", ", ".join(f"{k} {v}" for k, v in sorted(actions.items())))
    declared = apply_declared_security(store, config)
    if declared:
        log.info("configuration users, roles and grants: %s", declared)
    policies = sync_policies(store, config.policies) if config.policies is not None else {}
    if policies:
        log.info("configuration policies: %s", ", ".join(f"{k} {v}" for k, v in sorted(policies.items())))
    history = history_observer(store, record_parameters=server.record_parameters)
    directory = CatalogSourceDirectory(
        store,
        fallback=fallback,
        default=server.default_source,
        history=history,
        schema_ttl_seconds=server.schema_cache_ttl_seconds,
        memory_limit=server.memory_limit,
        system_table_rows=server.system_table_rows,
    )
    directory.names()  # listed once now: a catalog outage before the first query finds the sources to go on with
    retention = RetentionKeeper(
        store, history_days=server.history_retention_days, audit_days=server.audit_retention_days
    ).start()
    checker = HealthChecker(store, active_interval=server.health_check_interval_seconds)
    if server.health_checks:
        checker.start()
    return CatalogRuntime(config, store, directory, history, checker, retention, CatalogWatch(store).start())
