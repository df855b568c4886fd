"""Fixtures of the catalog tests: a master key, SQLite catalogs and catalogs on this run's own PostgreSQL."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.vault import ENV_KEY, ENV_KEY_ID, ENV_OLD_KEYS, KeyRing, parse_key


def new_key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def master_key(monkeypatch) -> str:
    """A fresh master key in NEXUS_FLIGHT_MASTER_KEY (and no old keys)."""
    text = new_key_text()
    monkeypatch.setenv(ENV_KEY, text)
    monkeypatch.delenv(ENV_KEY_ID, raising=False)
    monkeypatch.delenv(ENV_OLD_KEYS, raising=False)
    return text


@pytest.fixture
def keys(master_key) -> KeyRing:
    return KeyRing(parse_key(master_key))


@pytest.fixture
def sqlite_store(tmp_path, keys):
    store = CatalogStore(data_dir=tmp_path / "data", keys=keys)
    yield store
    store.close()


def _pg_connect(server):
    import psycopg

    return psycopg.connect(server.dsn(), autocommit=True)


@pytest.fixture
def pg_schema(postgres_server):
    """A private schema in the test database, dropped afterwards, so tests never see each other's catalogs."""
    name = f"nf_catalog_{uuid.uuid4().hex[:12]}"
    with _pg_connect(postgres_server) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with _pg_connect(postgres_server) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def pg_url(pg_schema, postgres_server) -> str:
    server = postgres_server
    return (f"postgresql+psycopg://{server.user}@{server.host}:{server.port}/{server.database}"
            f"?options=-csearch_path%3D{pg_schema}")


@pytest.fixture
def pg_store(pg_url, keys):
    store = CatalogStore(pg_url, keys=keys)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, keys):
    """The same behaviour on both catalog databases."""
    if request.param == "sqlite":
        instance = CatalogStore(data_dir=tmp_path / "data", keys=keys)
    else:
        instance = CatalogStore(request.getfixturevalue("pg_url"), keys=keys)
    yield instance
    instance.close()


@pytest.fixture
def pg_dump(postgres_server):
    """Every row of every table of a schema as text, read with SQL (bytea as its hex text)."""

    def dump(schema: str) -> str:
        with _pg_connect(postgres_server) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
                )
            ]
            parts = []
            for table in tables:
                for (row,) in conn.execute(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t'):
                    parts.append(row)
            return "\n".join(parts)

    return dump
