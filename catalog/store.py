"""The catalog store: one SQLAlchemy database (a SQLite file by default, any URL for shared catalogs).

:class:`CatalogStore` owns the engine, upgrades the schema when it opens, and manages sources and their vault
records. History, the schema cache and health live in their own modules and use the store's sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Connection, Engine, create_engine, event, func, make_url, select
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nexus_flight.backends.profile import backend_options
from nexus_flight.catalog.lifecycle import check_transition
from nexus_flight.catalog.migrations import upgrade
from nexus_flight.catalog.models import CredentialRecord, DataSource, SourceSchema, SourceSchemaVersion, utcnow
from nexus_flight.catalog.redaction import redact_config
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.source_types import SOURCE_TYPES, suggest
from nexus_flight.catalog.storable import storable_text
from nexus_flight.catalog.validation import SourceConfig, validate_source
from nexus_flight.catalog.vault import KeyRing, SealedRecord, Vault
from nexus_flight.core.errors import CatalogUnavailableError, ConfigError, NotFoundError
from nexus_flight.core.source import SourceSpec
from nexus_flight.core.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_UNANSWERED = ThrottledLog(log)
#: Seconds a PostgreSQL catalog connection may take to open, unless its URL says (``?connect_timeout=``).
_CONNECT_TIMEOUT_SECONDS = 5

CATALOG_FILE = "catalog.db"


@dataclass(frozen=True)
class SourceInfo:
    """A source as the catalog reports it: options and secret names, never secret values."""

    id: str
    name: str
    type: str
    status: str
    options: dict[str, Any]
    secret_names: tuple[str, ...]
    auth_type: str
    token_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None
    health_failures: int = 0
    last_checked_at: datetime | None = None
    next_check_at: datetime | None = None
    family: str = field(init=False)
    dialect: str = field(init=False)

    def __post_init__(self) -> None:
        st = SOURCE_TYPES[self.type]
        object.__setattr__(self, "family", st.family)
        object.__setattr__(self, "dialect", st.dialect)

    def redacted(self) -> dict[str, Any]:
        """Return a JSON-ready view for users and scripts, secrets shown as ``***``."""
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "family": self.family,
            "dialect": self.dialect,
            "status": self.status,
            "config": redact_config(self.options, self.secret_names),
            "auth_type": self.auth_type,
            "token_expires_at": _iso(self.token_expires_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "last_error": self.last_error,
            "health_failures": self.health_failures,
            "last_checked_at": _iso(self.last_checked_at),
            "next_check_at": _iso(self.next_check_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def default_url(data_dir: str | Path) -> str:
    """Return the SQLite catalog URL inside a data directory."""
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / CATALOG_FILE}"


class CatalogStore:
    """The catalog database and the operations on sources and their secrets."""

    def __init__(
        self,
        url: str | None = None,
        *,
        data_dir: str | Path | None = None,
        keys: KeyRing | None = None,
        engine: Engine | None = None,
    ) -> None:
        """Open (and create or upgrade) a catalog.

        Args:
            url: A SQLAlchemy URL; default: ``<data_dir>/catalog.db``.
            data_dir: Where the default SQLite file lives (created if missing).
            keys: The vault's key ring; default: from the environment or the OS keyring.
            engine: An engine to use instead of ``url``.

        """
        if engine is None and url is None and data_dir is None:
            raise ValueError("a catalog needs a URL or a data directory")
        try:
            if engine is None:
                if url is None:
                    url = default_url(data_dir)
                if url.startswith("sqlite:///"):  # a SQLite file's folder is made, as a data directory is
                    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                engine = _create_engine(url)
            self.schema_version = upgrade(engine)
        except (OSError, ImportError, ArgumentError, DBAPIError) as exc:
            # What the operator mistyped or what is down, not a traceback: the URL (without its password) and why.
            raise ConfigError(f"cannot open the catalog {_shown(url, data_dir)}: {_why(exc, url)}") from None
        self.engine = engine
        #: The gateway's data directory (None: not given); the journal of rows the catalog cannot take lives there.
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.vault = Vault(keys if keys is not None else KeyRing.from_environment())
        from nexus_flight.catalog.key_handover import CatalogHandovers  # it reads this store's tables

        self.vault.keys.handovers = CatalogHandovers(self)

    def __repr__(self) -> str:
        return f"CatalogStore({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session in one transaction, committed on success.

        Raises:
            CatalogUnavailableError: the catalog's database cannot be reached (or is locked) right now.

        """
        with reachable(self), self._sessions.begin() as session:
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one Core statement (no transaction of the ORM's).

        Raises:
            CatalogUnavailableError: the catalog's database cannot be reached (or is locked) right now.

        """
        with reachable(self), self.engine.connect() as connection:
            yield connection

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # -- sources
    # -----------------------------------------------------------------------------------------------

    def add_source(
        self,
        name: str,
        type: str,
        options: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str | SecretStr] | None = None,
        auth_type: str | None = None,
        token_expires_at: datetime | None = None,
    ) -> SourceInfo:
        """Validate and register a source in ``draft`` status, its secrets sealed in the vault.

        Raises:
            ConfigError: a DS-0xx or CV-0xx rule is broken (DS-002 when the name is taken).

        """
        config = validate_source(name, type, options, secrets, auth_type, token_expires_at)
        with self.session() as session:
            self._check_unique(session, config.name)
            row = DataSource(
                name=config.name, type=config.type, config=_stored_config(config), status="draft"
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise rule_error("DS-002", f"a source named {name!r} already exists", field="name") from None
            self._seal(session, row.id, config)
            log.info("source %s added (type %s, status draft)", row.name, row.type)
            return self._info(session, row)

    def update_source(
        self,
        name: str,
        *,
        options: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str | SecretStr] | None = None,
        auth_type: str | None = None,
        token_expires_at: datetime | None = None,
        new_name: str | None = None,
        replace_options: bool = False,
    ) -> SourceInfo:
        """Change a source's options, secrets or name; the whole result is validated again.

        Given options replace the stored ones key by key (``None`` removes a key), or all of them with
        ``replace_options``; given secrets replace the stored secrets entirely. A source whose configuration
        changed goes back to ``draft`` until it is tested again.

        Raises:
            NotFoundError: no such source.
            ConfigError: a DS-0xx or CV-0xx rule is broken.

        """
        with self.session() as session:
            row = self._row(session, name)
            record = session.get(CredentialRecord, row.id)
            stored = {} if replace_options else row.config.get("options", {})
            merged = {k: v for k, v in {**stored, **(options or {})}.items() if v is not None}
            current_secrets = self._open(row.id, record) if record else {}
            config = validate_source(
                new_name or row.name,
                row.type,
                merged,
                current_secrets if secrets is None else secrets,
                auth_type or (record.auth_type if record else None),
                token_expires_at
                if token_expires_at is not None
                else (record.token_expires_at if record else None),
            )
            if new_name and new_name != row.name:
                self._check_unique(session, new_name, exclude=row.id)
                row.name = new_name
            unchanged = (
                row.config == _stored_config(config)
                and _plain(current_secrets) == _plain(config.secrets)
                and (record.token_expires_at if record else None) == config.token_expires_at
            )
            if unchanged:
                return self._info(session, row)
            row.config = _stored_config(config)
            row.updated_at = utcnow()
            if row.status in ("active", "error"):
                row.status = "draft"
            self._seal(session, row.id, config, record)
            session.flush()
            log.info("source %s updated", row.name)
            return self._info(session, row)

    def remove_source(self, name: str) -> None:
        """Delete a source, its vault record and its cached schemas (history is kept).

        Raises:
            NotFoundError: no such source.

        """
        with self.session() as session:
            row = self._row(session, name)
            for model in (CredentialRecord, SourceSchema, SourceSchemaVersion):
                session.query(model).filter(model.source_id == row.id).delete()
            session.delete(row)
            log.info("source %s removed", name)

    def get_source(self, name: str) -> SourceInfo:
        """One source by name.

        Raises:
            NotFoundError: no such source (with a did-you-mean suggestion).

        """
        with self.session() as session:
            return self._info(session, self._row(session, name))

    def list_sources(self, type: str | None = None, status: str | None = None) -> list[SourceInfo]:
        """Every source, optionally of one type or status, by name."""
        with self.session() as session:
            query = select(DataSource).order_by(DataSource.name)
            if type:
                query = query.where(DataSource.type == type)
            if status:
                query = query.where(DataSource.status == status)
            rows = list(session.scalars(query))
            # One read of every source's credential facts, not one per source (the gateway lists every 2 s).
            credentials = {
                source_id: (auth_type, expires)
                for source_id, auth_type, expires in session.execute(
                    select(CredentialRecord.source_id, CredentialRecord.auth_type, CredentialRecord.token_expires_at)
                )
            }
            return [self._info(session, row, credentials.get(row.id, ())) for row in rows]

    def set_status(self, name: str, status: str, error: str | None = None, **health: Any) -> SourceInfo:
        """Move a source to a new status (DS-011) and log the change.

        Args:
            name: The source.
            status: draft, active, error or inactive.
            error: Why it failed (kept in ``last_error``; cleared on ``active``).
            **health: ``health_failures``, ``last_checked_at``, ``next_check_at`` to store alongside.

        Raises:
            NotFoundError: no such source.
            ConfigError: DS-011 when the transition is not allowed.

        """
        with self.session() as session:
            row = self._row(session, name)
            old = row.status
            check_transition(old, status, name)
            row.status = status
            # An engine's own message: whatever it holds, the catalog stores it (``catalog.storable``).
            row.last_error = None if status == "active" else (storable_text(error) or row.last_error)
            for key, value in health.items():
                setattr(row, key, value)
            if old != status:
                log.info("source %s status %s -> %s%s", name, old, status, f": {error}" if error else "")
            return self._info(session, row)

    def source_spec(self, name: str) -> SourceSpec:
        """Build what the source's backend needs to connect, its secrets decrypted (held only in the spec).

        Raises:
            NotFoundError: no such source.
            ConfigError: CV-003/CV-004 when the vault record cannot be opened; CV-006 when the credential
            expired.

        """
        with self.session() as session:
            row = self._row(session, name)
            record = session.get(CredentialRecord, row.id)
            if (
                record is not None
                and record.token_expires_at is not None
                and record.token_expires_at <= utcnow()
            ):
                raise rule_error(
                    "CV-006",
                    f"the {record.auth_type} credential of source {name!r} expired at "
                    f"{record.token_expires_at.isoformat()}; renew it with `sources update`",
                    source=name,
                )
            secrets = self._open(row.id, record) if record else {}
            options = backend_options(dict(row.config.get("options", {})))
            return SourceSpec(
                name=row.name,
                kind=SOURCE_TYPES[row.type].family,
                options=options,
                secrets={k: v.get_secret_value() for k, v in secrets.items()},
                dialect=SOURCE_TYPES[row.type].dialect,
            )

    def vault_key_ids(self) -> dict[str, int]:
        """How many vault records each key id seals (for watching a rotation)."""
        with self.session() as session:
            rows = session.execute(
                select(CredentialRecord.key_id, func.count()).group_by(CredentialRecord.key_id)
            ).all()
            return {key_id: count for key_id, count in rows}

    def rotate_keys(self) -> int:
        """Re-seal every vault record not under the current key; return how many were re-sealed.

        Each record is rotated in its own short transaction, and readers open records by their key id, so the
        gateway keeps serving during a rotation (old keys must stay configured until it finishes).

        Raises:
            ConfigError: CV-001 no current key; CV-004 a record's key is not configured; CV-003 a record is
            altered.

        """
        current = self.vault.keys.require_current()
        with self.session() as session:
            ids = session.scalars(
                select(CredentialRecord.source_id).where(CredentialRecord.key_id != current.key_id)
            )
            pending = list(ids)
        rotated = 0
        for source_id in pending:
            with self.session() as session:
                record = session.get(CredentialRecord, source_id, with_for_update=True)
                if record is None or record.key_id == current.key_id:
                    continue
                sealed = self.vault.reseal(source_id, _sealed(record))
                record.ciphertext, record.nonce, record.key_id = (
                    sealed.ciphertext,
                    sealed.nonce,
                    sealed.key_id,
                )
                record.last_rotated_at = utcnow()
                rotated += 1
        log.info("vault rotation: %d records re-sealed under key %s", rotated, current.key_id)
        return rotated

    # -- internals
    # ---------------------------------------------------------------------------------------------

    def _row(self, session: Session, name: str) -> DataSource:
        row = session.scalars(select(DataSource).where(DataSource.name == name)).first()
        if row is None:
            names = session.scalars(select(DataSource.name)).all()
            raise NotFoundError(f"no source named {name!r}{suggest(name, names)}", source=name)
        return row

    def _check_unique(self, session: Session, name: str, exclude: str | None = None) -> None:
        query = select(DataSource.id).where(func.lower(DataSource.name) == name.lower())
        if exclude:
            query = query.where(DataSource.id != exclude)
        if session.scalars(query).first() is not None:
            raise rule_error(
                "DS-002", f"a source named {name!r} already exists (names ignore case)", field="name"
            )

    def _seal(self, session: Session, source_id: str, config: SourceConfig, record=None) -> None:
        if record is None:
            record = session.get(CredentialRecord, source_id)
        if not config.secrets:
            if record is not None:
                session.delete(record)
            return
        sealed = self.vault.seal(source_id, config.secrets)
        if record is None:
            record = CredentialRecord(source_id=source_id)
            session.add(record)
        record.ciphertext, record.nonce, record.key_id = sealed.ciphertext, sealed.nonce, sealed.key_id
        record.auth_type = config.auth_type
        record.token_expires_at = config.token_expires_at

    def _open(self, source_id: str, record: CredentialRecord) -> dict[str, SecretStr]:
        return self.vault.open(source_id, _sealed(record))

    def _info(self, session: Session, row: DataSource, credential: tuple | None = None) -> SourceInfo:
        """``credential``: the source's (auth type, token expiry) when already read (``()``: it has none)."""
        if credential is None:
            record = session.get(CredentialRecord, row.id)
            credential = (record.auth_type, record.token_expires_at) if record else ()
        return SourceInfo(
            id=row.id,
            name=row.name,
            type=row.type,
            status=row.status,
            options=dict(row.config.get("options", {})),
            secret_names=tuple(row.config.get("secret_names", ())),
            auth_type=credential[0] if credential else row.config.get("auth_type", "none"),
            token_expires_at=credential[1] if credential else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_error=row.last_error,
            health_failures=row.health_failures or 0,
            last_checked_at=row.last_checked_at,
            next_check_at=row.next_check_at,
        )


def _stored_config(config: SourceConfig) -> dict[str, Any]:
    """Build ``data_sources.config``: options, the secrets' names (never values), the auth type."""
    return {"options": config.options, "secret_names": sorted(config.secrets), "auth_type": config.auth_type}


def _plain(secrets: Mapping[str, SecretStr]) -> dict[str, str]:
    return {k: v.get_secret_value() for k, v in secrets.items()}


def _sealed(record: CredentialRecord) -> SealedRecord:
    return SealedRecord(bytes(record.ciphertext), bytes(record.nonce), record.key_id)


def _shown(url: str | None, data_dir: str | Path | None) -> str:
    """The catalog named for an error: its URL without the password, or the data directory it would live in."""
    if url is None:
        return f"in {data_dir}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "URL (not a SQLAlchemy URL such as postgresql+psycopg://user@host/db)"


def _why(exc: Exception, url: str | None) -> str:
    """One line on why the catalog did not open: the database driver's own words where it spoke."""
    if isinstance(exc, ImportError):
        extra = " (pip install 'nexus-flight[catalog-postgres]')" if url and url.startswith("postgres") else ""
        return f"its database driver is not installed: {exc}{extra}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
    text = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


@contextmanager
def reachable(store: CatalogStore) -> Iterator[None]:
    """Turn the database driver's "cannot reach it" into ``CatalogUnavailableError`` (UNAVAILABLE, retry).

    Its text stays in the server log: it may name the catalog's host. Other errors (a row refused) pass as they are.
    """
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        _UNANSWERED.warning("catalog", "the catalog %s did not answer: %s", _shown(str(store.engine.url), None),
                            _why(exc, None))
        raise CatalogUnavailableError("the gateway's catalog database cannot be reached right now; retry shortly") \
            from exc


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    # A catalog host gone silent (no refusal, no answer) must not hold a call for the driver's default: none.
    connect_args = {} if "connect_timeout" in url else {"connect_timeout": _CONNECT_TIMEOUT_SECONDS}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
