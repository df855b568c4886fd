"""SQLAlchemy models of the catalog at the current schema version (see ``catalog/migrations.py``).

Times are stored in UTC and come back timezone-aware on every database (SQLite keeps no zone). Ids are UUID
text,
so rows read the same on SQLite and PostgreSQL and export to Arrow as strings.
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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

    __table_args__ = (
        Index("ix_query_history_created_at", "created_at"),
        Index("ix_query_history_source_created", "source_name", "created_at"),
        Index("ix_query_history_user_created", "user_name", "created_at"),
        Index("ix_query_history_status_created", "status", "created_at"),
        Index("ix_query_history_sql_sha256", "sql_sha256"),
        Index("ix_query_history_correlation_id", "correlation_id"),
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
