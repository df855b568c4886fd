"""The catalog store on SQLite and on the real PostgreSQL: sources, status, migrations, shared catalogs."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from nexus_flight.catalog.history import QueryRecord, QueryRecorder, search_history
from nexus_flight.catalog.migrations import CURRENT_VERSION, upgrade
from nexus_flight.catalog.models import Base
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.core.errors import ConfigError, NotFoundError

PG = {"host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres"}


def test_add_list_show_update_remove(store):
    store.add_source("b_src", "postgresql", PG, {"password": "pw-123456"})
    store.add_source("a_src", "duckdb", {"memory_limit": "1GB"})
    assert [s.name for s in store.list_sources()] == ["a_src", "b_src"]
    assert [s.name for s in store.list_sources(type="postgresql")] == ["b_src"]
    shown = store.get_source("b_src").redacted()
    assert shown["config"] == {**PG, "password": "***"}
    assert shown["family"] == "postgres" and shown["dialect"] == "postgres"
    updated = store.update_source("b_src", options={"port": 5433, "username": None}, new_name="c_src")
    assert updated.options == {"host": "127.0.0.1", "port": 5433, "database": "test"}
    assert store.source_spec("c_src").secrets == {"password": "pw-123456"}
    with pytest.raises(ConfigError, match="^DS-006"):
        store.update_source("c_src", options={"port": 0})
    store.remove_source("c_src")
    with pytest.raises(NotFoundError):
        store.get_source("c_src")
    assert [s.name for s in store.list_sources()] == ["a_src"]


def test_status_lifecycle_and_ds011(store, caplog):
    store.add_source("s", "duckdb")
    caplog.set_level("INFO", logger="nexus_flight.catalog.store")
    assert store.set_status("s", "active").status == "active"
    assert "source s status draft -> active" in caplog.text
    assert store.set_status("s", "error", "down").last_error == "down"
    assert store.set_status("s", "inactive").status == "inactive"
    with pytest.raises(ConfigError, match="^DS-011: source 's' cannot go from inactive to active; enable it first"):
        store.set_status("s", "active")
    with pytest.raises(ConfigError, match="^DS-011: unknown status"):
        store.set_status("s", "broken")
    assert store.set_status("s", "draft").status == "draft"
    assert [s.name for s in store.list_sources(status="draft")] == ["s"]


def test_changing_a_source_sends_it_back_to_draft_but_a_no_op_does_not(store):
    store.add_source("s", "postgresql", PG, {"password": "pw-123456"})
    store.set_status("s", "active")
    assert store.update_source("s", options=PG, secrets={"password": "pw-123456"}).status == "active"
    assert store.update_source("s", secrets={"password": "other-pw-1"}).status == "draft"


def test_two_gateways_share_one_postgresql_catalog(pg_url, keys):
    """Two store instances (as two gateway processes would hold) on one PostgreSQL catalog."""
    first, second = CatalogStore(pg_url, keys=keys), CatalogStore(pg_url, keys=keys)
    try:
        first.add_source("shared", "postgresql", PG, {"password": "pw-shared-1"})
        assert second.get_source("shared").options == PG
        assert second.source_spec("shared").secrets == {"password": "pw-shared-1"}
        with pytest.raises(ConfigError, match="^DS-002"):
            second.add_source("SHARED", "duckdb")
        QueryRecorder(first)(QueryRecord("SELECT 1", "success", source="shared", user="alice", rows=1))
        QueryRecorder(second)(QueryRecord("SELECT 2", "error", source="shared", user="bob", error="boom"))
        for store in (first, second):
            rows = search_history(store, source="shared")
            assert {(r["user_name"], r["status"]) for r in rows} == {("alice", "success"), ("bob", "error")}
        second.set_status("shared", "active")
        assert first.get_source("shared").status == "active"
    finally:
        first.close()
        second.close()


def _columns(engine):
    inspector = inspect(engine)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("start", [1, CURRENT_VERSION - 1])
def test_upgrade_from_an_earlier_version(backend, start, tmp_path, keys, request):
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_engine(url)
    assert upgrade(engine, target=start) == start
    with engine.begin() as conn:  # as the gateways before migration 12 made it
        conn.execute(text("ALTER TABLE catalog_schema_version DROP COLUMN oldest_reader"))
    before = _columns(engine)
    assert ("users" in before) == ("auth_method" in before["query_history"]) == (start >= 3)
    assert ("handle_signing_keys" in before) == (start >= 4)
    assert ("health_failures" in before["data_sources"]) == (start >= 2)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO data_sources (id, name, type, config, status, created_at, updated_at) VALUES "
                "('11111111-1111-1111-1111-111111111111', 'legacy', 'duckdb', "
                '\'{"options": {}, "secret_names": [], "auth_type": "none"}\', \'active\', '
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    store = CatalogStore(url, keys=keys)
    try:
        assert store.schema_version == CURRENT_VERSION
        legacy = store.get_source("legacy")
        assert legacy.status == "active" and legacy.health_failures == 0
        store.set_status("legacy", "error", "down", health_failures=3)
        assert store.get_source("legacy").health_failures == 3
        # The upgraded schema is the schema the models describe.
        upgraded = _columns(store.engine)
        for table in Base.metadata.sorted_tables:
            assert upgraded[table.name] == {c.name for c in table.columns}, table.name
    finally:
        store.close()
    assert upgrade(create_engine(url)) == CURRENT_VERSION  # idempotent
    with create_engine(url).begin() as conn:
        readers = dict(conn.execute(text("SELECT version, oldest_reader FROM catalog_schema_version")).all())
    assert readers[12] == 11 and all(readers[v] is None for v in range(start + 1, 12))


def test_fresh_catalog_has_the_seed_indexes(sqlite_store):
    inspector = inspect(sqlite_store.engine)
    indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("data_sources")}
    assert {("type",), ("status",), ("type", "status"), ("created_at",)} <= indexes
    history = {tuple(i["column_names"]) for i in inspector.get_indexes("query_history")}
    assert {
        ("created_at",),
        ("source_name", "created_at"),
        ("user_name", "created_at"),
        ("sql_sha256",),
    } <= history


def test_newer_catalog_is_refused(tmp_path, keys):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    store = CatalogStore(url, keys=keys)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO catalog_schema_version (version, description, applied_at) "
                          "VALUES (99, 'future', '2030-01-01')"))
    store.close()
    with pytest.raises(ConfigError, match="schema version 99, newer than this gateway"):
        CatalogStore(url, keys=keys)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_release_rolled_back_serves_a_catalog_its_successor_migrated_additively(backend, tmp_path, keys, request):
    """The next release's migration, as it will be written: a nullable column, readable by this version. A release
    rolled back after it serves the catalog (reads, writes, history); one that needs its own version is refused."""
    url = f"sqlite:///{tmp_path / 'next.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    store = CatalogStore(url, keys=keys)
    nxt = CURRENT_VERSION + 1
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE data_sources ADD COLUMN owner_team VARCHAR(64)"))
        conn.execute(text("INSERT INTO catalog_schema_version (version, description, applied_at, oldest_reader) "
                          f"VALUES ({nxt}, 'owner team on data_sources', '2030-01-01', {CURRENT_VERSION})"))
    store.close()
    rolled_back = CatalogStore(url, keys=keys)  # (a PostgreSQL catalog is a schema of this test's own)
    try:
        assert rolled_back.schema_version == nxt
        rolled_back.add_source("after_rollback", "duckdb")
        assert rolled_back.get_source("after_rollback").name == "after_rollback"
        QueryRecorder(rolled_back)(QueryRecord("SELECT 1", "success", source="after_rollback"))
        assert [r["sql_text"] for r in search_history(rolled_back, source="after_rollback")] == ["SELECT 1"]
    finally:
        rolled_back.close()
    with create_engine(url).begin() as conn:  # a later migration this version may not read
        conn.execute(text("INSERT INTO catalog_schema_version (version, description, applied_at, oldest_reader) "
                          f"VALUES ({nxt + 1}, 'a change', '2030-01-02', {nxt + 1})"))
    with pytest.raises(ConfigError, match=f"needs a gateway of schema version {nxt + 1} or later"):
        CatalogStore(url, keys=keys)


def test_default_catalog_file_lives_in_the_data_dir(tmp_path, keys):
    store = CatalogStore(data_dir=tmp_path / "d", keys=keys)
    store.close()
    assert (tmp_path / "d" / "catalog.db").exists()


def test_replicas_starting_together_migrate_once(pg_url, keys):
    """Two gateways opening a fresh shared catalog at the same moment: the advisory lock serializes them."""
    import threading

    stores, errors = [], []

    def open_store():
        try:
            stores.append(CatalogStore(pg_url, keys=keys))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(stores) == 3
    with stores[0].engine.connect() as conn:
        versions = [r[0] for r in conn.execute(text("SELECT version FROM catalog_schema_version ORDER BY version"))]
    assert versions == list(range(1, CURRENT_VERSION + 1))
    for store in stores:
        store.close()
