"""Server settings: one frozen model, validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from backends.base import SourceSpec

DEFAULT_PORT = 31337


class ServerConfig(BaseModel):
    """Everything the Flight SQL endpoint needs to start."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    data_dir: Path = Path("data")
    #: Scale factor of the embedded TPC-H demo; None serves no demo catalog.
    demo_scale: float | None = 0.01
    #: Server-side limit on one query's run time.
    query_timeout_seconds: float = Field(300.0, gt=0)
    #: Memory an engine may use for one source's queries.
    memory_limit: str = "2GB"
    #: Rows per Arrow batch: keeps every IPC message far below clients' 16 MiB default.
    batch_rows: int = Field(65_536, gt=0)
    #: Idle prepared statements and tickets are forgotten after this long.
    handle_ttl_seconds: float = Field(1800.0, gt=0)
    #: Turning the validator off is for tests of the connection-level defence only.
    validate_sql: bool = True
    #: Sources besides the demo (normally loaded from the catalog).
    sources: tuple[SourceSpec, ...] = ()
    default_source: str | None = None
    #: Serve a non-loopback address without authentication (containers on a trusted network only).
    allow_unauthenticated_remote: bool = False
