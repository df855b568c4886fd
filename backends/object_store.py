"""The object-store clients of the lake backends, built from a source's store settings (``options/store.py``).

One flat set of settings per source (ROAPI-style), prefixed by store: ``s3_*`` for S3 and everything that
speaks its protocol (AWS, MinIO, Alibaba OSS, Tencent COS, Ozone's S3 gateway, GCS with HMAC keys),
``azure_*`` for Azure Blob Storage and ``gcs_*`` for Google Cloud Storage. Which store a location uses
follows from its URI scheme (``s3://``, ``s3a://``, ``az://``/``abfs://``, ``gs://``/``gcs://``, a path or
``file://`` for local disk).

From the same settings this module builds the three clients the lake backends hand data through: a
``pyarrow.fs`` file system (files, Iceberg and Hudi data files), deltalake ``storage_options`` and pyiceberg
``FileIO`` properties. Secrets are ``SecretStr`` and are revealed only here, when a client is built.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyarrow.fs as pafs
from pydantic import SecretStr

from nexus_flight.backends.options.store import StoreSettings
from nexus_flight.core.errors import ConfigError, NotInstalledError, UnsupportedError

#: URI schemes of each store; anything else is refused.
#: S3 and the stores read through their S3-compatible API with the same bucket/key layout (Alibaba OSS,
#: Tencent COS): give ``s3_endpoint`` of the store's S3 API.
S3_SCHEMES = ("s3", "s3a", "s3n", "oss", "cos", "cosn")
#: Ozone's native schemes put volume and Ozone Manager in the path: read Ozone through its S3 gateway instead.
OZONE_SCHEMES = ("ofs", "o3fs")
AZURE_SCHEMES = ("az", "abfs", "abfss", "azure")
GCS_SCHEMES = ("gs", "gcs")
LOCAL_SCHEMES = ("", "file")
#: Registered so a configuration naming them gets a plain answer instead of "unknown scheme".
HDFS_SCHEMES = ("hdfs", "webhdfs", "viewfs", "swebhdfs")

#: Azurite and the Azure SDKs use this suffix for the public cloud.
_AZURE_BLOB_SUFFIX = "blob.core.windows.net"
_GCS_XML_ENDPOINT = "storage.googleapis.com"


@dataclass(frozen=True)
class Location:
    """A parsed data location: its store, bucket/container (empty for local disk) and path inside it."""

    scheme: str
    bucket: str
    path: str

    @property
    def store(self) -> str:
        """``s3``, ``azure``, ``gcs`` or ``local``."""
        if self.scheme in S3_SCHEMES:
            return "s3"
        if self.scheme in AZURE_SCHEMES:
            return "azure"
        if self.scheme in GCS_SCHEMES:
            return "gcs"
        return "local"

    @property
    def fs_path(self) -> str:
        """The path as a ``pyarrow.fs`` file system of this store expects it (bucket first)."""
        if self.store == "local":
            return self.path
        return f"{self.bucket}/{self.path}".rstrip("/")

    @property
    def uri(self) -> str:
        """The location as a URI deltalake, pyiceberg and hudi understand."""
        if self.store == "local":
            return self.path
        scheme = {"s3": "s3", "azure": "az", "gcs": "gs"}[self.store]
        return f"{scheme}://{self.bucket}/{self.path}".rstrip("/")


def parse_location(location: str) -> Location:
    """Split a location into store, bucket and path.

    Raises:
        UnsupportedError: an HDFS location (no HDFS client is supported yet).
        ConfigError: an unknown scheme or a location without a bucket.

    """
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme in HDFS_SCHEMES:
        raise UnsupportedError(
            f"{scheme}:// locations are not supported yet: no HDFS or WebHDFS client is wired up "
            "(namenode/HA and Kerberos settings are not read); copy the data to an object store or local disk"
        )
    if scheme in OZONE_SCHEMES:
        raise UnsupportedError(
            f"{scheme}:// locations are not supported: read Ozone through its S3 gateway, "
            "with s3://<bucket>/<key> and s3_endpoint set to the gateway"
        )
    if scheme in LOCAL_SCHEMES:
        path = parts.path if scheme == "file" else location
        if not path.startswith("/"):
            raise ConfigError(f"local location {location!r} must be an absolute path")
        return Location("", "", path)
    if scheme not in S3_SCHEMES + AZURE_SCHEMES + GCS_SCHEMES:
        raise ConfigError(
            f"unknown location scheme {scheme!r} in {location!r}; use s3://, az://, gs:// or a path"
        )
    bucket = parts.netloc
    if scheme in ("abfs", "abfss") and "@" in bucket:  # abfs://container@account.dfs.core.windows.net/path
        bucket = bucket.split("@", 1)[0]
    if not bucket:
        raise ConfigError(f"location {location!r} names no bucket or container")
    return Location(scheme, bucket, parts.path.lstrip("/"))


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _host_port(endpoint: str) -> tuple[str, str]:
    """``http://h:p`` or ``h:p`` -> (``h:p``, scheme)."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.netloc, parts.scheme
    return endpoint, ""


def arrow_filesystem(settings: StoreSettings, location: Location) -> pafs.FileSystem:
    """Build a ``pyarrow.fs`` file system for ``location``'s store from the source's settings.

    Raises:
        ConfigError: the settings do not allow reaching this store.
        NotInstalledError: a GCS service-account key without google-auth installed.

    """
    store = location.store
    if store == "local":
        return pafs.LocalFileSystem()
    if store == "s3" or (store == "gcs" and settings.gcs_hmac_access_id):
        return pafs.S3FileSystem(**_s3_kwargs(settings, gcs=store == "gcs"))
    if store == "azure":
        return _azure_filesystem(settings)
    return _gcs_filesystem(settings)


def _s3_kwargs(settings: StoreSettings, gcs: bool = False) -> dict:
    if gcs:
        host, scheme = _host_port(settings.gcs_endpoint or _GCS_XML_ENDPOINT)
        return {
            "access_key": settings.gcs_hmac_access_id,
            "secret_key": _secret(settings.gcs_hmac_secret),
            "endpoint_override": host,
            "scheme": scheme or "https",
            "region": "auto",
            "force_virtual_addressing": False,
        }
    kwargs: dict = {"region": settings.s3_region or "us-east-1"}
    if settings.s3_access_key_id is not None:
        kwargs["access_key"] = _secret(settings.s3_access_key_id)
        kwargs["secret_key"] = _secret(settings.s3_secret_access_key)
        if settings.s3_session_token is not None:
            kwargs["session_token"] = _secret(settings.s3_session_token)
    if settings.s3_role_arn:
        kwargs["role_arn"] = settings.s3_role_arn
    if settings.s3_endpoint:
        host, scheme = _host_port(settings.s3_endpoint)
        kwargs["endpoint_override"] = host
        kwargs["scheme"] = scheme or ("https" if settings.s3_use_ssl else "http")
    elif not settings.s3_use_ssl:
        kwargs["scheme"] = "http"
    # Path style keeps the bucket out of the host name (MinIO, Ozone, emulators); OSS/COS need virtual hosts.
    kwargs["force_virtual_addressing"] = not settings.s3_path_style
    return kwargs


def _azure_filesystem(settings: StoreSettings) -> pafs.FileSystem:
    if not settings.azure_account_name:
        raise ConfigError("azure_account_name is required for az:// locations")
    kwargs: dict = {"account_name": settings.azure_account_name}
    if settings.azure_account_key is not None:
        kwargs["account_key"] = _secret(settings.azure_account_key)
    if settings.azure_sas_token is not None:
        kwargs["sas_token"] = _secret(settings.azure_sas_token).lstrip("?")
    if settings.azure_endpoint:
        host, scheme = _host_port(settings.azure_endpoint)
        kwargs.update(
            blob_storage_authority=host,
            blob_storage_scheme=scheme or "https",
            dfs_storage_authority=host,
            dfs_storage_scheme=scheme or "https",
        )
    return pafs.AzureFileSystem(**kwargs)


def _gcs_filesystem(settings: StoreSettings) -> pafs.FileSystem:
    # pyarrow's default retries a failing request for 15 minutes; a query should fail within seconds instead.
    kwargs: dict = {"retry_time_limit": dt.timedelta(seconds=10)}
    if settings.gcs_endpoint:
        host, scheme = _host_port(settings.gcs_endpoint)
        kwargs.update(endpoint_override=host, scheme=scheme or "https")
    if settings.gcs_project:
        kwargs["project_id"] = settings.gcs_project
    if settings.gcs_anonymous:
        kwargs["anonymous"] = True
    elif settings.gcs_service_account_json is not None:
        token, expiry = _gcs_access_token(_secret(settings.gcs_service_account_json))
        kwargs.update(access_token=token, credential_token_expiration=expiry)
    return pafs.GcsFileSystem(**kwargs)


def _gcs_access_token(key_json: str) -> tuple[str, dt.datetime]:
    """Exchange a service-account key for an access token (pyarrow takes tokens, not key files)."""
    try:
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account
    except ImportError as exc:
        raise NotInstalledError(
            "gcs_service_account_json needs google-auth: pip install 'nexus-flight[gcs]'"
        ) from exc
    try:
        info = json.loads(key_json)
    except ValueError as exc:
        raise ConfigError("gcs_service_account_json is not a JSON document") from exc
    credentials = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/devstorage.read_only"]
    )
    credentials.refresh(Request())
    return credentials.token, credentials.expiry.replace(tzinfo=dt.UTC)


def delta_storage_options(settings: StoreSettings, location: Location) -> dict[str, str]:
    """Deltalake (object_store crate) options for ``location``'s store."""
    store = location.store
    options: dict[str, str] = {}
    if store == "s3":
        options["AWS_REGION"] = settings.s3_region or "us-east-1"
        if settings.s3_access_key_id is not None:
            options["AWS_ACCESS_KEY_ID"] = _secret(settings.s3_access_key_id)
            options["AWS_SECRET_ACCESS_KEY"] = _secret(settings.s3_secret_access_key) or ""
        if settings.s3_session_token is not None:
            options["AWS_SESSION_TOKEN"] = _secret(settings.s3_session_token)
        if settings.s3_endpoint:
            host, scheme = _host_port(settings.s3_endpoint)
            scheme = scheme or ("https" if settings.s3_use_ssl else "http")
            options["AWS_ENDPOINT_URL"] = f"{scheme}://{host}"
            options["AWS_ALLOW_HTTP"] = "true" if scheme == "http" else "false"
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if settings.s3_path_style else "true"
    elif store == "azure":
        if settings.azure_account_name:
            options["AZURE_STORAGE_ACCOUNT_NAME"] = settings.azure_account_name
        if settings.azure_account_key is not None:
            options["AZURE_STORAGE_ACCOUNT_KEY"] = _secret(settings.azure_account_key)
        if settings.azure_sas_token is not None:
            options["AZURE_STORAGE_SAS_TOKEN"] = _secret(settings.azure_sas_token).lstrip("?")
        if settings.azure_endpoint:
            endpoint = settings.azure_endpoint.rstrip("/")
            host = urlsplit(endpoint).hostname or ""
            account = settings.azure_account_name
            if account and not host.startswith(f"{account}."):
                # Not <account>.host: a path-style endpoint (Azurite, IP address) has the account in its path.
                endpoint = f"{endpoint}/{account}"
            options["AZURE_STORAGE_ENDPOINT"] = endpoint
            options["AZURE_ALLOW_HTTP"] = "true" if endpoint.startswith("http:") else "false"
    elif store == "gcs":
        if settings.gcs_service_account_json is not None:
            options["GOOGLE_SERVICE_ACCOUNT_KEY"] = _secret(settings.gcs_service_account_json)
        if settings.gcs_anonymous:
            options["GOOGLE_SKIP_SIGNATURE"] = "true"
    return options


def pyiceberg_properties(settings: StoreSettings) -> dict[str, str]:
    """Pyiceberg FileIO properties for every store the settings describe."""
    props: dict[str, str] = {}
    if settings.s3_endpoint:
        host, scheme = _host_port(settings.s3_endpoint)
        props["s3.endpoint"] = f"{scheme or ('https' if settings.s3_use_ssl else 'http')}://{host}"
    if settings.s3_region:
        props["s3.region"] = settings.s3_region
    if settings.s3_access_key_id is not None:
        props["s3.access-key-id"] = _secret(settings.s3_access_key_id)
        props["s3.secret-access-key"] = _secret(settings.s3_secret_access_key) or ""
    if settings.s3_session_token is not None:
        props["s3.session-token"] = _secret(settings.s3_session_token)
    if settings.s3_role_arn:
        props["s3.role-arn"] = settings.s3_role_arn
    if settings.s3_path_style:
        props["s3.force-virtual-addressing"] = "false"
    if settings.azure_account_name:
        props["adls.account-name"] = settings.azure_account_name
    if settings.azure_account_key is not None:
        props["adls.account-key"] = _secret(settings.azure_account_key)
    if settings.azure_sas_token is not None:
        props["adls.sas-token"] = _secret(settings.azure_sas_token)
    if settings.gcs_endpoint:
        props["gcs.endpoint"] = settings.gcs_endpoint
    if settings.gcs_project:
        props["gcs.project-id"] = settings.gcs_project
    return props


def secrets_of(settings: StoreSettings) -> list[str]:
    """Every secret value, so error messages can be scrubbed of them."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    return values
