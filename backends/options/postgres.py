"""Options and secrets of the PostgreSQL family (PostgreSQL, Redshift, KingbaseES, openGauss, GaussDB)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nexus_flight.backends.options.types import (
    ConnectSeconds,
    Host,
    LocalPath,
    PoolSeconds,
    PoolSize,
    Port,
    StatementSeconds,
)


class PostgresConfig(BaseModel):
    """Options and secrets of a PostgreSQL-family source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: Host = "127.0.0.1"
    port: Port = 5432
    database: str
    username: str = "postgres"
    password: SecretStr | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    #: PEM file of the CA that signed the server's certificate (``sslmode = "verify-ca"`` or ``"verify-full"``).
    sslrootcert: LocalPath | None = None
    application_name: str = "nexus-flight"
    connect_timeout_seconds: ConnectSeconds = 10
    statement_timeout_seconds: StatementSeconds = 300.0
    pool_size: PoolSize = 8
    pool_pre_ping: bool = True
    #: Pooled connections idle longer than this are checked before reuse; 0 checks every time.
    pool_recycle_seconds: float = Field(300.0, ge=0, le=86_400)
    pool_max_lifetime_seconds: PoolSeconds = 3600.0
    pool_timeout_seconds: float = Field(30.0, gt=0, le=600)
    #: Connect even as a superuser or a member of a role that reaches the server's files (dangerous).
    allow_privileged_login: bool = False
    #: The one schema unqualified names resolve in: every connection's ``search_path`` is set to it (PostgreSQL's
    #: own default, ``"$user", public``, could resolve a name in a schema the grants did not look at).
    search_path: str = Field("public", pattern=r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
