"""Options and secrets of an upstream Flight SQL server (Dremio, InfluxDB 3, ROAPI, Sail, another gateway)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from nexus_flight.backends.options.types import PoolSeconds, PoolSize, Url


class FlightSQLConfig(BaseModel):
    """Options and secrets of an upstream Flight SQL source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: Url("grpc", "grpc+tcp", "grpc+tls")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    #: PEM text of the CAs that sign the upstream's certificate.
    tls_root_certs: str | None = None
    tls_skip_verify: bool = False
    tls_override_hostname: str | None = None
    #: PEM text of the client certificate chain for mTLS (its key is the ``mtls_private_key`` secret).
    mtls_cert_chain: str | None = None
    mtls_private_key: SecretStr | None = None
    #: The upstream catalog queries run in (unqualified names resolve in it).
    catalog: str | None = None
    #: The largest message accepted from the upstream: one row (a wide value) must fit in a message.
    max_message_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024, lt=2**31)
    query_timeout_seconds: float = Field(300.0, gt=0, le=86_400)
    pool_size: PoolSize = 4
    pool_recycle_seconds: float = Field(300.0, ge=0, le=86_400)
    pool_max_lifetime_seconds: PoolSeconds = 3600.0

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> FlightSQLConfig:
        if self.token is not None and self.username is not None:
            raise ValueError("give either token or username/password, not both")
        return self
