"""Versioned schema migrations, applied by the application when it opens the catalog.

The table ``catalog_schema_version`` records each applied migration. Migration 1 creates the tables as they
were
at version 1; each later migration declares the tables and columns it adds, and migration 1 is derived from
the
current models minus everything a later migration adds. Rule for future migrations: add tables, columns or
indexes by declaring them here; a change that is not an addition needs its own ``apply`` step.

On PostgreSQL an advisory lock serializes replicas that start at the same moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.schema import CreateColumn

from nexus_flight.catalog.models import Base, utcnow
from nexus_flight.core.errors import ConfigError

log = logging.getLogger(__name__)

_version_metadata = MetaData()
VERSION_TABLE = Table(
    "catalog_schema_version",
    _version_metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(255), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    #: The oldest gateway (by its ``CURRENT_VERSION``) that may still use a catalog at this version (migration 12 on;
    #: None: none older than the version itself), so that a release can be rolled back after its migration.
    Column("oldest_reader", Integer, nullable=True),
)
_LOCK_ID = 0x4E46_4341  # "NFCA": the advisory lock of catalog migrations


@dataclass(frozen=True)
class Migration:
    """One step of the catalog schema."""

    version: int
    description: str
    add_tables: tuple[str, ...] = ()
    add_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Extra work that is not an addition (data fixes); runs after the additions.
    apply: Callable[[Connection], None] | None = None
    #: The oldest gateway version that may go on using the catalog once this migration is applied: an addition
    #: older code never reads (a table, a nullable column) keeps the previous version's; None: this version only.
    oldest_reader: int | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "data_sources, credential_vault, query_history, data_source_schema and its versions"),
    Migration(
        2,
        "health state on data_sources; lake table version on query_history",
        add_columns={
            "data_sources": ("last_error", "health_failures", "last_checked_at", "next_check_at"),
            "query_history": ("table_version",),
        },
    ),
    Migration(
        3,
        "users, roles, grants, API keys, token signing keys and revocations, policies, audit events; "
        "auth method, client address and policy flag on query_history",
        add_tables=(
            "users",
            "roles",
            "user_roles",
            "grants",
            "api_keys",
            "revoked_tokens",
            "token_signing_keys",
            "policies",
            "audit_events",
        ),
        add_columns={"query_history": ("auth_method", "client_address", "policy_rewritten")},
        apply=lambda conn: _add_admin_role(conn),
    ),
    Migration(
        4,
        "handle signing keys, master key hand-overs and shared client sessions (replicas behind a proxy)",
        add_tables=("handle_signing_keys", "master_key_handovers", "client_sessions"),
    ),
    Migration(5, "cancel requests passed between replicas", add_tables=("cancel_requests",)),
    Migration(6, "sign-ins the gateway issued tokens for (listing a user's live tokens)", add_tables=("sign_ins",)),
    Migration(
        7,
        "security_generation: moved by every change to users, roles, grants, keys, tokens and policies",
        add_tables=("security_generation",),
        apply=lambda conn: _start_security_generation(conn),
    ),
    Migration(
        8,
        "the ticket each query ran from, on query_history (a cancel learns the query already ended)",
        add_columns={"query_history": ("ticket_sha256",)},
        apply=lambda conn: _create_index(conn, "query_history", "ix_query_history_ticket_sha256"),
    ),
    Migration(
        9,
        "rate buckets and running slots shared by replicas (principals' limits across every gateway)",
        add_tables=("rate_buckets", "running_slots"),
    ),
    Migration(
        10,
        "queued queries and spent prepaid credits shared by replicas (a principal's queue and one token per query)",
        add_tables=("queued_queries", "spent_credits"),
    ),
    Migration(
        11,
        "the schema version current before the current one (a source's schema diff by default)",
        add_columns={"data_source_schema": ("previous_version",)},
    ),
    Migration(
        12,
        "the oldest gateway version that may use the catalog, on catalog_schema_version (rolling a release back)",
        apply=lambda conn: _add_oldest_reader(conn),
        oldest_reader=11,
    ),
)
CURRENT_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """Return the schema version of the catalog behind ``conn`` (0 for an empty database)."""
    VERSION_TABLE.create(conn, checkfirst=True)
    found = conn.execute(
        select(VERSION_TABLE.c.version).order_by(VERSION_TABLE.c.version.desc()).limit(1)
    ).first()
    return found[0] if found else 0


def upgrade(engine: Engine, target: int = CURRENT_VERSION) -> int:
    """Apply every migration above the catalog's version up to ``target`` and return the new version.

    Raises:
        ConfigError: the catalog was written by a newer gateway.

    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        version = current_version(conn)
        if version > CURRENT_VERSION:
            _admit_newer(conn, version)
            return version
        for migration in MIGRATIONS:
            if version < migration.version <= target:
                _apply(conn, migration)
                row = {"version": migration.version, "description": migration.description, "applied_at": utcnow()}
                if migration.version >= _OLDEST_READER_SINCE:  # older catalogs have no such column yet
                    row["oldest_reader"] = migration.oldest_reader or migration.version
                conn.execute(VERSION_TABLE.insert().values(**row))
                log.info(
                    "catalog schema upgraded to version %d: %s", migration.version, migration.description
                )
                version = migration.version
    return version


#: The migration that added ``catalog_schema_version.oldest_reader``.
_OLDEST_READER_SINCE = 12


def _admit_newer(conn: Connection, version: int) -> None:
    """Serve a catalog a newer gateway migrated when every migration past this gateway's keeps it readable.

    Raises:
        ConfigError: one of them does not (or the catalog does not say): upgrade the gateway.

    """
    oldest = None
    if "oldest_reader" in _version_columns(conn):
        rows = conn.execute(select(VERSION_TABLE.c.version, VERSION_TABLE.c.oldest_reader)
                            .where(VERSION_TABLE.c.version > CURRENT_VERSION)).all()
        oldest = max((reader if reader is not None else newer) for newer, reader in rows)
    if oldest is None or oldest > CURRENT_VERSION:
        raise ConfigError(
            f"the catalog is at schema version {version}, newer than this gateway's {CURRENT_VERSION}, and needs a "
            f"gateway of schema version {oldest or version} or later; upgrade the gateway"
        )
    log.warning("the catalog is at schema version %d, newer than this gateway's %d: its later migrations keep it "
                "readable by this version, which serves it as it is (a rolled-back release)", version, CURRENT_VERSION)


def _version_columns(conn: Connection) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(VERSION_TABLE.name)}


def _add_oldest_reader(conn: Connection) -> None:
    """Add the column to a version table made before it (a new catalog's is made with it)."""
    if "oldest_reader" not in _version_columns(conn):
        ddl = CreateColumn(VERSION_TABLE.c.oldest_reader).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {VERSION_TABLE.name} ADD COLUMN {ddl}"))


def _later_additions(after: int) -> tuple[set[str], dict[str, set[str]]]:
    tables: set[str] = set()
    columns: dict[str, set[str]] = {}
    for migration in MIGRATIONS:
        if migration.version > after:
            tables.update(migration.add_tables)
            for table, names in migration.add_columns.items():
                columns.setdefault(table, set()).update(names)
    return tables, columns


def _apply(conn: Connection, migration: Migration) -> None:
    if migration.version == 1:
        _create_initial(conn)
    for name in migration.add_tables:
        Base.metadata.tables[name].create(conn)
    for table_name, names in migration.add_columns.items():
        table = Base.metadata.tables[table_name]
        for name in names:
            ddl = CreateColumn(table.c[name]).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table_name} ADD COLUMN {ddl}"))
    if migration.apply is not None:
        migration.apply(conn)


def _create_index(conn: Connection, table_name: str, index_name: str) -> None:
    """Create one index the models declare on a column a migration added."""
    [index] = [i for i in Base.metadata.tables[table_name].indexes if i.name == index_name]
    index.create(conn)


def _add_admin_role(conn: Connection) -> None:
    """The built-in role that may read and manage everything."""
    roles = Base.metadata.tables["roles"]
    conn.execute(roles.insert().values(name="admin", description="reads and manages everything (built in)",
                                       limits={}, origin="builtin", created_at=utcnow()))


def _start_security_generation(conn: Connection) -> None:
    """The counter's one row."""
    conn.execute(Base.metadata.tables["security_generation"].insert().values(id=1, generation=0))


def _create_initial(conn: Connection) -> None:
    """Create the version-1 tables: today's models without what later migrations add."""
    later_tables, later_columns = _later_additions(1)
    initial = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name in later_tables:
            continue
        skip = later_columns.get(table.name, set())
        copy = Table(table.name, initial, *[c._copy() for c in table.columns if c.name not in skip])
        for index in table.indexes:
            if not {c.name for c in index.columns} & skip:
                Index(index.name, *[copy.c[c.name] for c in index.columns], unique=index.unique)
    initial.create_all(conn)
