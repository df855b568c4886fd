"""Options of the DuckDB family (a database file or an in-memory database; no secrets)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nexus_flight.backends.options.types import LocalPath


class DuckDBConfig(BaseModel):
    """Options of a DuckDB source (there are no secrets: the file is local)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The database file; absent or ``:memory:`` for an in-memory database prepared by ``setup_sql``.
    path: Literal[":memory:"] | LocalPath | None = None
    #: Statements run once, before the configuration is locked (views over the source's own files).
    setup_sql: tuple[str, ...] = ()
    #: Memory each query on this source may use, e.g. ``"512MB"`` (the server's ``memory_limit`` when unset).
    memory_limit: str | None = None
    #: DuckDB worker threads (default: one per core).
    threads: int | None = Field(None, ge=1, le=1024)
    #: Where DuckDB spills when memory runs short.
    temp_directory: LocalPath | None = None
