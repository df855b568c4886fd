"""Options and secrets of the ClickHouse family."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nexus_flight.backends.options.types import Host, LocalPath, PoolSeconds, PoolSize, Port, StatementSeconds


class ClickHouseConfig(BaseModel):
    """Options and secrets of a ClickHouse source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Host = "127.0.0.1"
    #: 8123 over http, 8443 over https, when absent.
    port: Port | None = None
    protocol: Literal["http", "https"] = "http"
    database: str = "default"
    username: str = "default"
    password: SecretStr | None = None
    #: 1: the query can change no setting; 2: it can change settings (not ``readonly``), still write nothing.
    readonly: Literal[1, 2] = 1
    #: String and FixedString as Arrow binary instead of utf8 text.
    strings_as_binary: bool = False
    #: Ask ClickHouse to compress responses (lz4); worth it across slow links, a cost on fast ones.
    compress: bool = False
    verify: bool = True
    #: PEM file of the CA that signed the server's certificate (https).
    ca_cert: LocalPath | None = None
    connect_timeout_seconds: float = Field(10.0, gt=0, le=300)
    statement_timeout_seconds: StatementSeconds = 300.0
    #: A per-source cap on ``max_memory_usage``; the query's own memory limit wins when lower.
    max_memory_usage: int | None = Field(None, ge=1)
    pool_size: PoolSize = 8
    pool_timeout_seconds: float = Field(30.0, gt=0, le=600)
    pool_recycle_seconds: float = Field(300.0, ge=0, le=86_400)
    pool_max_lifetime_seconds: PoolSeconds = 3600.0
