"""Fixtures of the security tests: a catalog with users, and gateways that require authentication."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
from flightsql import flightsql_pb2 as pb

from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import add_role, add_user
from nexus_flight.catalog.vault import ENV_KEY, ENV_KEY_ID, ENV_OLD_KEYS
from nexus_flight.core.settings import AuthSettings, ServerSettings
from nexus_flight.server.app.gateway import Gateway
from nexus_flight.server.app.security import Security, start_security
from tests.support import flightsql_raw as raw

ALICE_PASSWORD = "alice-correct-horse-7"
BOB_PASSWORD = "bob-battery-staple-9"


def set_master_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh master key in the environment, and no key id or old keys."""
    text = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(ENV_KEY, text)
    monkeypatch.delenv(ENV_KEY_ID, raising=False)
    monkeypatch.delenv(ENV_OLD_KEYS, raising=False)
    return text


def new_store(data_dir: Path) -> CatalogStore:
    """A SQLite catalog with alice (admin) and bob (role analyst, nothing granted)."""
    instance = CatalogStore(data_dir=data_dir)
    add_role(instance, "analyst")
    add_user(instance, "alice", ALICE_PASSWORD, roles=["admin"], attributes={"region": "EUROPE"})
    add_user(instance, "bob", BOB_PASSWORD, roles=["analyst"], attributes={"region": "ASIA"})
    return instance


@contextmanager
def module_store(data_dir: Path) -> Iterator[CatalogStore]:
    """``new_store`` under a master key of its own, for a module whose tests only read the catalog."""
    with pytest.MonkeyPatch.context() as env:
        set_master_key(env)
        instance = new_store(data_dir)
        try:
            yield instance
        finally:
            instance.close()


def start_secured(store: CatalogStore, demo_data_dir: Path, auth: AuthSettings | None = None,
                  sources=None, observers=None, **config) -> Secured:
    """A gateway over ``store`` that requires authentication (stop it with ``stop_secured``)."""
    settings = auth or AuthSettings(enabled=True)
    security = start_security(store, settings)
    server = ServerSettings(**{"port": 0, "data_dir": demo_data_dir, "auth": settings, **config})
    gateway = Gateway(server, sources, observers, authenticator=security.authenticator,
                      access=security.access, administration=security.administration).start()
    return Secured(gateway, security)


def stop_secured(secured: Secured) -> None:
    secured.gateway.shutdown()
    secured.security.close()


@contextmanager
def serving_catalog(store: CatalogStore, demo_data_dir: Path, default: str,
                    passwords: dict[str, str]) -> Iterator[tuple[flight.FlightClient, dict[str, str]]]:
    """A gateway serving ``store``'s sources (no demo), and a bearer token for each user of ``passwords``."""
    from nexus_flight.catalog.directory import CatalogSourceDirectory

    secured = start_secured(store, demo_data_dir,
                            sources=CatalogSourceDirectory(store, default=default, refresh_seconds=0),
                            demo_scale=None)
    try:
        client = secured.client()
        try:
            yield client, {user: sign_in(client, user, password) for user, password in passwords.items()}
        finally:
            client.close()
    finally:
        stop_secured(secured)


@contextmanager
def serving_region_filtered(store: CatalogStore, demo_data_dir: Path, source: str,
                            tables: Sequence[str]) -> Iterator[tuple[flight.FlightClient, dict[str, str]]]:
    """``serving_catalog`` of ``source`` granted whole to bob's role, each of ``tables`` (``schema.table``) filtered
    to the caller's region (bob ASIA; alice, an admin, sees every row); bearer tokens for bob and alice."""
    from nexus_flight.catalog.grants import add_grant
    from nexus_flight.catalog.policies import PolicySpec, add_policy

    add_grant(store, "analyst", source)
    for table in tables:
        add_policy(store, PolicySpec(f"asia-only-{table.rpartition('.')[2]}", "row_filter", f"{source}.{table}",
                                     expression="region = {user.region}"))
    with serving_catalog(store, demo_data_dir, source, {"bob": BOB_PASSWORD, "alice": ALICE_PASSWORD}) as served:
        yield served


@pytest.fixture
def master_key(monkeypatch) -> str:
    return set_master_key(monkeypatch)


@pytest.fixture
def store(tmp_path, master_key) -> Iterator[CatalogStore]:
    """A SQLite catalog with alice (admin) and bob (role analyst, nothing granted)."""
    instance = new_store(tmp_path / "data")
    yield instance
    instance.close()


@dataclass
class Secured:
    gateway: Gateway
    security: Security

    @property
    def location(self) -> str:
        return self.gateway.location

    def client(self, **kwargs) -> flight.FlightClient:
        return flight.FlightClient(self.gateway.location, **kwargs)


@pytest.fixture
def secure_gateway(store, demo_data_dir) -> Iterator[Callable[..., Secured]]:
    """Start gateways over ``store`` that require authentication: ``secure_gateway(auth=AuthSettings(...))``."""
    started: list[Secured] = []

    def start(auth: AuthSettings | None = None, catalog: CatalogStore | None = None, sources=None, observers=None,
              **config) -> Secured:
        started.append(start_secured(catalog or store, demo_data_dir, auth, sources, observers, **config))
        return started[-1]

    yield start
    for secured in started:
        stop_secured(secured)


def bearer(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def sign_in(client: flight.FlightClient, user: str, password: str) -> str:
    """Basic in the Handshake; returns the bearer token the gateway answered with."""
    key, value = client.authenticate_basic_token(user, password)
    assert key == b"authorization" and value.startswith(b"Bearer ")
    return value.decode().removeprefix("Bearer ")


def query_as(client: flight.FlightClient, token: str, sql: str) -> pa.Table:
    """The answer to ``sql`` for the holder of ``token`` (CommandStatementQuery: GetFlightInfo, then DoGet)."""
    return raw.info_and_table(client, pb.CommandStatementQuery(query=sql), bearer(token))[1]


def sorted_rows(table: pa.Table) -> list[tuple]:
    """A table's rows as tuples, in an order that does not depend on the engine's."""
    return sorted((tuple(row.values()) for row in table.to_pylist()), key=repr)
