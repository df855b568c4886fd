"""Options and secrets of the BigQuery family."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nexus_flight.backends.options.types import StatementSeconds, Url


class BigQueryConfig(BaseModel):
    """Options and secrets of a BigQuery source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project_id: str
    #: The dataset unqualified table names resolve to.
    dataset: str | None = None
    location: str | None = None
    #: Another API endpoint (an emulator, a private endpoint).
    endpoint: Url("http", "https") | None = None
    statement_timeout_seconds: StatementSeconds = 300.0
    #: The cost guard: BigQuery refuses a query that would bill more bytes than this.
    maximum_bytes_billed: int | None = Field(None, ge=1)
    #: Read results through the Storage Read API (faster for large results); off: REST pages.
    use_storage_api: bool = True
    page_size: int = Field(65_536, ge=1)
    service_account_json: SecretStr | None = None
    token: SecretStr | None = None
    #: OAuth2 refresh token; google-auth renews the access token before it expires.
    refresh_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
