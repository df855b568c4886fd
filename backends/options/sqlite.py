"""Options of the SQLite family (a local file; no secrets)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nexus_flight.backends.options.types import LocalPath, PoolSize


class SQLiteConfig(BaseModel):
    """Options of a SQLite source (it has no secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: LocalPath
    pool_size: PoolSize = 4
    busy_timeout_seconds: float = Field(5.0, ge=0, le=600)
