"""Sessions' options shared through the catalog: what one replica's store saves, another's reads on its next call.

Two ``SessionStore``s on one SQLite catalog stand for two replicas. A call that reads only who the session is
(``options=False``: executing a prepared statement, renewing a ticket) skips the catalog read.
"""

from __future__ import annotations

from nexus_flight.catalog.sessions import CatalogSessions
from nexus_flight.server.query.session import SessionStore


class CountingSessions(CatalogSessions):
    """The catalog's sessions, counting reads."""

    loads = 0

    def load(self, key):
        self.loads += 1
        return super().load(key)


def test_an_option_saved_on_one_replica_is_read_by_the_next_call_on_another(sqlite_store):
    first, shared = SessionStore(shared=CatalogSessions(sqlite_store)), CountingSessions(sqlite_store)
    second = SessionStore(shared=shared)
    session = first.get("sid:abc")
    session.options["catalog"] = "sales"
    first.save(session)
    assert second.get("sid:abc").catalog == "sales"
    assert shared.loads == 1


def test_a_call_that_reads_no_options_skips_the_catalog_and_the_next_that_does_reads_it(sqlite_store):
    first, shared = SessionStore(shared=CatalogSessions(sqlite_store)), CountingSessions(sqlite_store)
    second = SessionStore(shared=shared)
    assert second.get("sid:abc").catalog is None
    session = first.get("sid:abc")
    session.options["catalog"] = "sales"
    first.save(session)
    assert second.get("sid:abc", options=False).key == "sid:abc"
    assert shared.loads == 1
    assert second.get("sid:abc").catalog == "sales"
    assert shared.loads == 2


def test_sessions_keyed_by_one_connection_never_read_the_catalog(sqlite_store):
    shared = CountingSessions(sqlite_store)
    store = SessionStore(shared=shared)
    store.get("peer:ipv4:127.0.0.1:5000").options["catalog"] = "sales"
    assert store.get("peer:ipv4:127.0.0.1:5000").catalog == "sales"
    assert shared.loads == 0


def test_an_unchanged_sqlite_catalog_is_not_read_again_and_any_commit_makes_the_next_call_read(sqlite_store):
    """``PRAGMA data_version`` on a connection of its own moves with every commit of another connection."""
    first, shared = SessionStore(shared=CatalogSessions(sqlite_store)), CountingSessions(sqlite_store)
    second = SessionStore(shared=shared)
    for _ in range(5):
        assert second.get("sid:abc").catalog is None
    assert shared.loads == 1
    session = first.get("sid:abc")
    session.options["catalog"] = "sales"
    first.save(session)
    assert [second.get("sid:abc").catalog for _ in range(3)] == ["sales"] * 3
    assert shared.loads == 2
    first.close("sid:abc")
    assert second.get("sid:abc").catalog is None and shared.loads == 3


def test_a_postgresql_catalog_is_read_on_every_call(pg_store):
    """No cheap way to tell a commit there: each call that reads the options reads the catalog."""
    shared = CountingSessions(pg_store)
    store = SessionStore(shared=shared)
    assert shared.version() is None
    for _ in range(3):
        store.get("sid:abc")
    assert shared.loads == 3
