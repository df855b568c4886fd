"""Options and secrets of the Snowflake family."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from nexus_flight.backends.options.types import Host, PoolSeconds, PoolSize, Port


class SnowflakeConfig(BaseModel):
    """Options and secrets of a Snowflake source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    username: str
    #: One of password, private_key (key-pair authentication, PKCS#8 PEM) or token (OAuth).
    password: SecretStr | None = None
    private_key: SecretStr | None = None
    private_key_password: SecretStr | None = None
    token: SecretStr | None = None
    warehouse: str | None = None
    role: str | None = None
    database: str | None = None
    db_schema: str | None = Field(None, alias="schema")
    #: Another endpoint than the account's (a private link, an emulator).
    host: Host | None = None
    port: Port | None = None
    protocol: Literal["https", "http"] = "https"
    login_timeout_seconds: float = Field(30.0, gt=0, le=600)
    pool_size: PoolSize = 4
    pool_recycle_seconds: float = Field(300.0, ge=0, le=86_400)
    pool_max_lifetime_seconds: PoolSeconds = 3600.0

    @model_validator(mode="after")
    def _one_credential(self) -> SnowflakeConfig:
        given = [x for x in (self.password, self.private_key, self.token) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of password, private_key or token")
        return self
