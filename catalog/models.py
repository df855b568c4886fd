"""SQLAlchemy models of the catalog at the current schema version (see ``catalog/migrations.py``).

Times are stored in UTC and come back timezone-aware on every database (SQLite keeps no zone). Ids are UUID
text,
so rows read the same on SQLite and PostgreSQL and export to Arrow as strings. The limit counters
(``rate_buckets``, ``running_slots``) keep seconds since the epoch instead: their statements do arithmetic on them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column


class UTCDateTime(TypeDecorator):
    """A timestamp stored as UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        """Store in UTC; naive values are taken to be UTC already."""
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        """Attach UTC to values the database returns without a zone."""
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """Return a new random UUID as text."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base of the catalog tables."""


class DataSource(Base):
    """One configured data source; its config never holds a secret (those are in ``credential_vault``)."""

    __tablename__ = "data_sources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Schema version 2: health state, shared by every gateway replica.
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    health_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_data_sources_type", "type"),
        Index("ix_data_sources_status", "status"),
        Index("ix_data_sources_type_status", "type", "status"),
        Index("ix_data_sources_created_at", "created_at"),
    )


class CredentialRecord(Base):
    """The encrypted secrets of one source (AES-256-GCM, source id as associated data)."""

    __tablename__ = "credential_vault"

    source_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("data_sources.id", ondelete="CASCADE"), primary_key=True
    )
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    key_id: Mapped[str] = mapped_column(String(64))
    auth_type: Mapped[str] = mapped_column(String(16))
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_credential_vault_key_id", "key_id"),)


class QueryHistory(Base):
    """One finished (or refused) query; kept without a foreign key so history outlives removed sources."""

    __tablename__ = "query_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    sql_text: Mapped[str] = mapped_column(Text)
    sql_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[Any] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    total_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    validate_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    connect_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    execute_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    first_batch_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    stream_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Schema version 2: the lake table's snapshot or version the query read, where known.
    table_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Schema version 3: how the caller signed in, from where, and whether a policy rewrote the query.
    auth_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(128), nullable=True)
    policy_rewritten: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Schema version 7: SHA-256 of the ticket the query ran from (a cancel sent to any replica learns it ended).
    ticket_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_query_history_created_at", "created_at"),
        Index("ix_query_history_source_created", "source_name", "created_at"),
        Index("ix_query_history_user_created", "user_name", "created_at"),
        Index("ix_query_history_status_created", "status", "created_at"),
        Index("ix_query_history_sql_sha256", "sql_sha256"),
        Index("ix_query_history_correlation_id", "correlation_id"),
        Index("ix_query_history_ticket_sha256", "ticket_sha256"),
    )


class SourceSchema(Base):
    """The current cached schema of one source and whether it is stale (the source did not answer)."""

    __tablename__ = "data_source_schema"

    source_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("data_sources.id", ondelete="CASCADE"), primary_key=True
    )
    current_version: Mapped[str] = mapped_column(String(128))
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The version that was current before ``current_version`` (what ``sources diff-schema`` compares by default);
    #: versions are kept by content, so a schema that returns to an earlier state is not the newest row.
    previous_version: Mapped[str | None] = mapped_column(String(128), nullable=True)


class SourceSchemaVersion(Base):
    """One distinct schema of a source (schemas, tables, columns as JSON), kept after newer ones arrive."""

    __tablename__ = "data_source_schema_versions"

    source_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("data_sources.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    table_count: Mapped[int] = mapped_column(Integer)
    column_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_schema_versions_source_created", "source_id", "created_at"),)


# -- schema version 3: who may connect, what each may see and use ----------------------------------------------


class User(Base):
    """A person or service that signs in to the gateway; the password is an argon2 hash, never the password."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: argon2id hash (``$argon2id$v=19$…``); None for users who sign in only by certificate or SSO.
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Values row filters may use as ``{user.<name>}`` (a region, a tenant id).
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Limits of this user (rate, concurrency, rows, bytes, time); see ``catalog/security_rules.py``.
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``cli`` or ``config`` (declared in the TOML file, which then owns it).
    origin: Mapped[str] = mapped_column(String(16), default="cli")
    #: Tokens issued before this moment are refused ("revoke all of a user's tokens").
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Role(Base):
    """A named set of grants; users and API keys hold roles. ``admin`` is built in and may do everything."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    origin: Mapped[str] = mapped_column(String(16), default="cli")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserRole(Base):
    """A user's membership of a role."""

    __tablename__ = "user_roles"

    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_name: Mapped[str] = mapped_column(String(64), ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True)


class GrantRecord(Base):
    """One privilege of a role on a source, a schema, a table or named columns of a table.

    ``select`` lets the role read the object; ``unmask`` lets it see masked columns in clear. A missing
    ``db_schema``/``table_name`` means "every schema"/"every table" below the named level.
    """

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    role_name: Mapped[str] = mapped_column(String(64), ForeignKey("roles.name", ondelete="CASCADE"))
    privilege: Mapped[str] = mapped_column(String(16))
    catalog: Mapped[str] = mapped_column(String(255))
    db_schema: Mapped[str | None] = mapped_column(String(255), nullable=True)
    table_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: Named columns only (None: every column).
    columns: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default="cli")
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_grants_role", "role_name"),)


class ApiKeyRecord(Base):
    """A long random secret for a service; only its SHA-256 is kept (the secret is shown once, at creation)."""

    __tablename__ = "api_keys"

    #: The public part of the key (``nfk_<id>_<secret>``), safe to show and log.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    owner_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    #: The roles the key acts with (a subset of its owner's); empty: the owner's roles.
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_api_keys_owner", "owner_id"),)


class RevokedToken(Base):
    """A gateway token refused before its expiry; the row can go once the token would have expired anyway."""

    __tablename__ = "revoked_tokens"

    #: The sign-in (session) id every token of one sign-in shares; refreshed tokens keep it.
    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SecurityGeneration(Base):
    """One row counting the changes to users, roles, grants, keys, tokens and policies.

    Every such change moves it in its own transaction, so a replica sees at once whether its identity snapshot is
    behind: on SQLite by reading it only when ``PRAGMA data_version`` says another connection committed.
    """

    __tablename__ = "security_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class LiveSignIn(Base):
    """A sign-in the gateway issued tokens for (Handshake or service token): what listing live tokens shows.

    Never the token itself: its sign-in id (every token refreshing it shares it), owner, how it was made, and until
    when its latest token is valid. Rows go once that time has passed.
    """

    __tablename__ = "sign_ins"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(32))
    #: The API key a sign-in was made with, if any.
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_sign_ins_user", "user_name"),)


class _SealedKeyColumns:
    """A 256-bit secret sealed in the vault, with its id and when it stopped signing."""

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    #: The master key that seals it (re-sealed by ``vault rotate``).
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TokenSigningKey(_SealedKeyColumns, Base):
    """A key the gateway signs its tokens with, sealed in the vault like a source's secrets.

    The newest key that is not retired signs; a retired key still verifies until every token it signed expired.
    """

    __tablename__ = "token_signing_keys"


class HandleSigningKey(_SealedKeyColumns, Base):
    """A key result tickets and prepared-statement handles are signed with (HMAC-SHA256), so any replica redeems them.

    ``vault rotate`` retires it and makes a new one; a retired key verifies until the handles it signed expired.
    """

    __tablename__ = "handle_signing_keys"


class MasterKeyHandover(Base):
    """A new master key sealed under an older one by ``vault rotate``.

    Gateways still running on the older key open what the new one seals (and switch to it) without a restart;
    ``vault finish-rotation`` deletes it.
    """

    __tablename__ = "master_key_handovers"

    #: The id of the new master key.
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The id of the older master key it is sealed under.
    sealed_under: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SharedSession(Base):
    """A client session's options (catalog, schema, dialect), so every replica sharing the catalog serves it."""

    __tablename__ = "client_sessions"

    #: SHA-256 of the session's key (a sign-in id, a cookie): the key itself never is stored.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_client_sessions_updated_at", "updated_at"),)


class CancelRequest(Base):
    """A cancel a replica received for a query it does not run: the replica that runs it stops it and answers."""

    __tablename__ = "cancel_requests"

    #: SHA-256 of the query's ticket (the ticket itself is never stored).
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When a replica running the query stopped it (None: none has, yet).
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_cancel_requests_requested_at", "requested_at"),)


class PolicyRecord(Base):
    """A row filter or a column mask on one table, applied by rewriting every query that reads the table."""

    __tablename__ = "policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    #: ``row_filter`` or ``column_mask``.
    kind: Mapped[str] = mapped_column(String(16))
    catalog: Mapped[str] = mapped_column(String(255))
    db_schema: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    #: The masked column (column masks only).
    column_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: A row filter's predicate (``region = {user.region}``) or a mask's replacement (``NULL`` by default).
    expression: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Roles the policy does not apply to (admins are always exempt).
    exempt_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    origin: Mapped[str] = mapped_column(String(16), default="cli")
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_policies_table", "catalog", "db_schema", "table_name"),)


class AuditEvent(Base):
    """A security-relevant event: a failed sign-in, a lockout, a grant or key change (no secret ever)."""

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: What happened: ``auth_failure``, ``lockout``, ``user_added``, ``grant_added``, ``key_created`` …
    kind: Mapped[str] = mapped_column(String(32))
    #: Who did it (the principal, or the name a failed sign-in gave).
    actor: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: What it was done to (a user, role, grant, key id, token id).
    subject: Mapped[str | None] = mapped_column(String(512), nullable=True)
    auth_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_audit_events_created_at", "created_at"),
        Index("ix_audit_events_kind_created", "kind", "created_at"),
    )


class RateBucket(Base):
    """A principal's query-rate tokens, which every replica sharing the catalog takes from.

    Times here are seconds since the epoch (the replicas' clocks), not timestamps: the refill is computed in the
    one statement that takes a token (``catalog/limit_rows.py``).
    """

    __tablename__ = "rate_buckets"

    #: ``Principal.accounting_key`` (``user:…``, ``key:…``); a longer one than 200 characters as its SHA-256.
    accounting_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: Tokens left when last counted (the burst at most).
    tokens: Mapped[float] = mapped_column(Float)
    counted_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_rate_buckets_counted_at", "counted_at"),)


class _Leased:
    """A row one replica holds while its lease lasts.

    The replica renews ``expires_at`` while it holds the row and deletes it when it lets go, so a killed replica's
    rows stop counting once their lease expires. Times are seconds since the epoch.
    """

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    accounting_key: Mapped[str] = mapped_column(String(255))
    #: The replica that holds it (host, process id and a random part).
    replica: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index, ...]:  # noqa: N805 - SQLAlchemy passes the mapped class
        """A principal's live rows are counted by key and expiry; expired rows are swept by expiry."""
        table = cls.__tablename__
        return (Index(f"ix_{table}_key", "accounting_key", "expires_at"), Index(f"ix_{table}_expires_at", "expires_at"))


class RunningSlot(_Leased, Base):
    """A query running under its principal's concurrency limits, on some replica, while its lease lasts."""

    __tablename__ = "running_slots"

    source: Mapped[str] = mapped_column(String(255))


class QueuedQuery(_Leased, Base):
    """A query waiting for a running slot of its principal, on some replica, while its lease lasts.

    At most as many as the limit reached may wait per principal, counted over every replica; the replica where it
    waits deletes the row when the wait ends (a slot, a refusal, a cancel).
    """

    __tablename__ = "queued_queries"


class SpentCredit(Base):
    """A prepaid rate credit (a planned query's token) whose run has been spent, on whichever replica ran it.

    The credit travels in the query's signed ticket or prepared-statement handle; this row makes it pay for one run
    only, wherever the handle is redeemed. Kept until the credit expires (``expires_at``, seconds since the epoch).
    """

    __tablename__ = "spent_credits"

    #: ``random.until.tag``, with ``/part`` for one endpoint of a split result.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_spent_credits_expires_at", "expires_at"),)
