"""The schema cache: versions by content hash or snapshot id, diffs, and stale answers when a source is
down."""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import pytest

from nexus_flight.backends.base import Backend, TableInfo
from nexus_flight.catalog.schema_cache import (
    cached_schema,
    content_version,
    diff_content,
    diff_versions,
    list_versions,
    refresh_schema,
    save_schema,
)
from nexus_flight.catalog.system_tables import system_table
from nexus_flight.core.errors import BackendUnavailableError, NotFoundError

_TYPES = {"INTEGER": pa.int64(), "TEXT": pa.utf8(), "REAL": pa.float64()}


class SQLiteFileBackend(Backend):
    """A minimal metadata-only adapter over a real SQLite file (the sqlite family's adapter is written on
    another branch); only what the schema cache calls is implemented."""

    kind = "sqlite"
    dialect = "sqlite"
    read_only_guard = "metadata only"

    def _connect(self):
        path = self.spec.options["path"]
        try:
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.OperationalError as exc:
            raise BackendUnavailableError(f"[sqlite] {exc}", source=self.name) from None

    def list_schemas(self):
        self._connect().close()
        return ["main"]

    def list_tables(self, db_schema=None):
        with self._connect() as conn:
            rows = conn.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table','view')").fetchall()
        return [TableInfo("main", n, t.upper()) for n, t in rows]

    def table_schema(self, db_schema, table):
        with self._connect() as conn:
            cols = conn.execute(f"PRAGMA table_info('{table}')").fetchall()
        return pa.schema([pa.field(c[1], _TYPES.get(c[2].upper(), pa.utf8()), nullable=not c[3]) for c in cols])

    def get_schema(self, plan):
        raise NotImplementedError

    def execute(self, plan, parameters, limits):
        raise NotImplementedError


@pytest.fixture
def sqlite_file(tmp_path):
    path = tmp_path / "data.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER NOT NULL, amount REAL, note TEXT)")
        conn.execute("CREATE TABLE customers (id INTEGER NOT NULL, name TEXT)")
    return path


def backend_for(store, name):
    return SQLiteFileBackend(store.source_spec(name))


def test_refresh_versions_and_diff(store, sqlite_file):
    store.add_source("lite", "sqlite", {"path": str(sqlite_file)})
    first = refresh_schema(store, "lite", backend_for(store, "lite"))
    assert first.changed and first.previous_version is None
    again = refresh_schema(store, "lite", backend_for(store, "lite"))
    assert again.version_id == first.version_id and not again.changed
    assert len(list_versions(store, "lite")) == 1

    with sqlite3.connect(sqlite_file) as conn:
        conn.execute("CREATE TABLE returns (id INTEGER)")
        conn.execute("DROP TABLE customers")
        conn.execute("ALTER TABLE orders ADD COLUMN region TEXT")
        conn.execute("ALTER TABLE orders DROP COLUMN note")
    second = refresh_schema(store, "lite", backend_for(store, "lite"))
    assert second.changed and second.previous_version == first.version_id
    assert [v["version_id"] for v in list_versions(store, "lite")] == [first.version_id, second.version_id]

    diff = diff_versions(store, "lite")
    assert (diff.old_version, diff.new_version) == (first.version_id, second.version_id)
    assert diff.added_tables == ["main.returns"]
    assert diff.removed_tables == ["main.customers"]
    (orders,) = diff.changed_tables
    assert (orders.table, orders.added_columns, orders.removed_columns) == (
        "main.orders",
        ["region"],
        ["note"],
    )
    assert diff_versions(store, "lite", second.version_id, second.version_id).empty

    cached = cached_schema(store, "lite")
    assert cached.version_id == second.version_id and not cached.stale
    assert cached.content["schemas"]["main"]["orders"]["columns"][0] == {
        "name": "id",
        "type": "int64",
        "nullable": False,
    }


def test_changed_column_type_and_nullability():
    old = {"schemas": {"s": {"t": {"type": "TABLE", "columns": [{"name": "a", "type": "int32", "nullable": True}]}}}}
    new = {"schemas": {"s": {"t": {"type": "TABLE", "columns": [{"name": "a", "type": "int64", "nullable": False}]}}}}
    (change,) = diff_content(old, new).changed_tables
    assert change.changed_columns == [
        {"name": "a", "old_type": "int32", "new_type": "int64", "old_nullable": True, "new_nullable": False}
    ]
    assert content_version(old) != content_version(new)


def test_snapshot_id_is_the_version_of_lake_tables(sqlite_store):
    sqlite_store.add_source("lake", "iceberg", {"tables": [{"name": "t", "identifier": "db.t"}]})
    content = {"schemas": {"db": {"t": {"type": "TABLE", "columns": []}}}}
    assert save_schema(sqlite_store, "lake", content, snapshot_id="6148113451426390237").version_id == (
        "6148113451426390237"
    )


def test_source_down_keeps_the_cache_marked_stale(store, sqlite_file):
    store.add_source("lite", "sqlite", {"path": str(sqlite_file)})
    version = refresh_schema(store, "lite", backend_for(store, "lite")).version_id
    sqlite_file.rename(sqlite_file.with_suffix(".moved"))
    with pytest.raises(BackendUnavailableError):
        refresh_schema(store, "lite", backend_for(store, "lite"))
    cached = cached_schema(store, "lite")
    assert cached.stale and cached.version_id == version and "unable to open" in cached.last_error
    assert "orders" in cached.content["schemas"]["main"]
    (row,) = system_table(store, "schema_versions").to_pylist()
    assert row["is_current"] and row["stale"] and row["source_name"] == "lite"
    sqlite_file.with_suffix(".moved").rename(sqlite_file)
    assert not refresh_schema(store, "lite", backend_for(store, "lite")).changed
    assert not cached_schema(store, "lite").stale


def test_diff_needs_two_versions(sqlite_store, sqlite_file):
    sqlite_store.add_source("lite", "sqlite", {"path": str(sqlite_file)})
    with pytest.raises(NotFoundError, match="fewer than two"):
        diff_versions(sqlite_store, "lite")
    refresh_schema(sqlite_store, "lite", backend_for(sqlite_store, "lite"))
    with pytest.raises(NotFoundError, match="fewer than two"):
        diff_versions(sqlite_store, "lite")
    with pytest.raises(NotFoundError, match="no schema version 'nope'"):
        diff_versions(sqlite_store, "lite", "nope")


def test_removing_a_source_drops_its_cache(sqlite_store, sqlite_file):
    sqlite_store.add_source("lite", "sqlite", {"path": str(sqlite_file)})
    refresh_schema(sqlite_store, "lite", backend_for(sqlite_store, "lite"))
    sqlite_store.remove_source("lite")
    assert system_table(sqlite_store, "schema_versions").num_rows == 0
