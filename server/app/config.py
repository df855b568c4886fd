"""Server settings: one frozen model, validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nexus_flight.core.source import SourceSpec, ValidationLimits

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
    #: Rows per Arrow batch an engine is asked for; wide batches are then cut by bytes (``max_message_bytes``).
    batch_rows: int = Field(65_536, gt=0)
    #: The largest Flight message sent to a client: 16 MiB, what ADBC and other gRPC clients accept by default.
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    #: Most rows and bytes (Arrow buffers) one result may have; None: no cap. A query over a cap stops with an
    #: error naming it.
    max_result_rows: int | None = Field(None, ge=1)
    max_result_bytes: int | None = Field(None, ge=1)
    #: Idle prepared statements and tickets are forgotten after this long.
    handle_ttl_seconds: float = Field(1800.0, gt=0)
    #: Most tickets and prepared statements open at once, in total and per client (session).
    max_tickets: int = Field(10_000, ge=1)
    max_tickets_per_client: int = Field(1_000, ge=1)
    max_prepared_statements: int = Field(10_000, ge=1)
    max_prepared_statements_per_client: int = Field(1_000, ge=1)
    #: Memory the whole process may allocate beyond what it holds at start (``RLIMIT_DATA``), e.g. ``"4GB"``;
    #: None leaves the process unbounded (an application embedding the gateway decides for itself).
    process_memory_limit: str | None = None
    #: Turning the validator off is for tests of the connection-level defence only.
    validate_sql: bool = True
    #: The validator's limits for sources that do not set their own.
    validation_limits: ValidationLimits = ValidationLimits()
    #: Sources besides the demo (normally loaded from the catalog).
    sources: tuple[SourceSpec, ...] = ()
    default_source: str | None = None
    #: TLS: PEM certificate chain and private key of the server; both or neither.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: mTLS: PEM bundle of the CAs whose client certificates are accepted (clients must present one).
    tls_client_ca_file: Path | None = None
    #: Serve a non-loopback address without authentication (containers on a trusted network only).
    allow_unauthenticated_remote: bool = False

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        return self

    @property
    def tls(self) -> bool:
        """True when the server speaks TLS."""
        return self.tls_cert_file is not None
