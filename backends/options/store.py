"""Object-store settings of the file and lake families: one flat set per source, prefixed by store.

``s3_*`` for S3 and everything that speaks its protocol (AWS, MinIO, Alibaba OSS, Tencent COS, Ozone's S3 gateway,
GCS with HMAC keys), ``azure_*`` for Azure Blob Storage and ``gcs_*`` for Google Cloud Storage
(``backends/object_store.py`` builds the clients from them).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from nexus_flight.backends.options.types import Endpoint, Url


class StoreSettings(BaseModel):
    """Credentials and endpoints for the object stores a source's locations live in.

    Every field is optional: a source on local disk needs none, and a store left without credentials falls
    back to its SDK's default chain (environment, instance role) where the SDK has one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: S3 region, e.g. ``us-east-1`` (OSS/COS/Ozone accept any non-empty region).
    s3_region: str | None = None
    #: ``host:port`` or URL of an S3-compatible endpoint (MinIO, OSS, COS, Ozone); AWS when absent.
    s3_endpoint: Endpoint | None = None
    #: Path-style addressing (``endpoint/bucket/key``), which MinIO and Ozone need.
    s3_path_style: bool = False
    #: TLS to the endpoint; turn off only for a local endpoint.
    s3_use_ssl: bool = True
    #: Secret by the catalog's rules (an access key id identifies the account), so scrubbed from messages too.
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_session_token: SecretStr | None = None
    #: An IAM role to assume with the credentials above (or the default chain).
    s3_role_arn: str | None = None

    azure_account_name: str | None = None
    azure_account_key: SecretStr | None = None
    azure_sas_token: SecretStr | None = None
    #: ``http(s)://host:port`` of the blob endpoint (Azurite, sovereign clouds); the public cloud when absent.
    azure_endpoint: Url("http", "https") | None = None

    #: ``http(s)://host:port`` of the GCS JSON API (emulators); Google when absent.
    gcs_endpoint: Url("http", "https") | None = None
    gcs_anonymous: bool = False
    gcs_project: str | None = None
    #: A service-account key (the JSON document), exchanged for an access token with google-auth.
    gcs_service_account_json: SecretStr | None = None
    #: HMAC keys: GCS is then read through its S3-compatible XML API.
    gcs_hmac_access_id: str | None = None
    gcs_hmac_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _one_azure_credential(self) -> StoreSettings:
        if self.azure_account_key is not None and self.azure_sas_token is not None:
            raise ValueError("give azure_account_key or azure_sas_token, not both")
        if (self.gcs_hmac_access_id is None) != (self.gcs_hmac_secret is None):
            raise ValueError("gcs_hmac_access_id and gcs_hmac_secret go together")
        return self
