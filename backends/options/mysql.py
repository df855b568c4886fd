"""Options and secrets of the MySQL family (MySQL, MariaDB, TiDB, Doris, StarRocks, OceanBase, TDSQL, GaussDB)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nexus_flight.backends.options.types import (
    Charset,
    ConnectSeconds,
    Host,
    LocalPath,
    PoolSeconds,
    PoolSize,
    Port,
    StatementSeconds,
)


class MySQLConfig(BaseModel):
    """Options and secrets of a MySQL-family source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Host = "127.0.0.1"
    port: Port = 3306
    #: The one database the source exposes (unqualified names resolve in it).
    database: str
    username: str = "root"
    password: SecretStr | None = None
    ssl_mode: Literal["disabled", "preferred", "required", "verify_ca", "verify_identity"] | None = None
    #: PEM file of the CA that signed the server's certificate.
    ssl_ca: LocalPath | None = None
    connect_timeout_seconds: ConnectSeconds = 10
    statement_timeout_seconds: StatementSeconds = 300.0
    pool_size: PoolSize = 8
    pool_max_lifetime_seconds: PoolSeconds = 3600.0
    pool_idle_timeout_seconds: PoolSeconds = 60.0
    #: Idle connections are pinged before reuse after this long (and after ``pool_idle_timeout_seconds``).
    pool_recycle_seconds: PoolSeconds | None = None
    pool_timeout_seconds: float = Field(30.0, gt=0, le=600)
    #: The server's charset for the source's text. Results are UTF-8 whatever it is: the connection uses
    #: utf8mb4 and the server converts every column to it.
    charset: Charset | None = None
    #: Accept a login holding more than SELECT (FILE, SUPER, PROCESS, writes). Dangerous: the validator is then
    #: the only line between clients and those privileges.
    allow_privileged_login: bool = False
