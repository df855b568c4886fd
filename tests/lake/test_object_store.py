"""Object-store settings and locations: parsing and the client options built from them (no network)."""

from __future__ import annotations

import pytest

from nexus_flight.backends.files import FilesConfig
from nexus_flight.backends.object_store import (
    StoreSettings,
    arrow_filesystem,
    delta_storage_options,
    parse_location,
    pyiceberg_properties,
)
from nexus_flight.core.errors import BackendUnavailableError, ConfigError, UnsupportedError
from nexus_flight.core.source import SourceSpec
from tests.support.services import free_port


@pytest.mark.parametrize(
    ("location", "store", "bucket", "fs_path", "uri"),
    [
        ("s3://b/sales/2026/", "s3", "b", "b/sales/2026", "s3://b/sales/2026"),
        ("s3a://b/x.parquet", "s3", "b", "b/x.parquet", "s3://b/x.parquet"),
        ("oss://b/x.parquet", "s3", "b", "b/x.parquet", "s3://b/x.parquet"),
        ("cosn://b-1250000000/x", "s3", "b-1250000000", "b-1250000000/x", "s3://b-1250000000/x"),
        ("az://container/p", "azure", "container", "container/p", "az://container/p"),
        (
            "abfss://container@acct.dfs.core.windows.net/p",
            "azure",
            "container",
            "container/p",
            "az://container/p",
        ),
        ("gs://bucket/logs/*.csv", "gcs", "bucket", "bucket/logs/*.csv", "gs://bucket/logs/*.csv"),
        ("/data/sales", "local", "", "/data/sales", "/data/sales"),
        ("file:///data/sales", "local", "", "/data/sales", "/data/sales"),
    ],
)
def test_locations(location, store, bucket, fs_path, uri):
    parsed = parse_location(location)
    assert (parsed.store, parsed.bucket, parsed.fs_path, parsed.uri) == (store, bucket, fs_path, uri)


@pytest.mark.parametrize("location", ["hdfs://nn:8020/x", "webhdfs://nn/x", "viewfs://cluster/x"])
def test_hdfs_is_registered_and_refused_plainly(location):
    with pytest.raises(UnsupportedError, match="not supported yet"):
        parse_location(location)


def test_ozone_native_schemes_point_to_the_s3_gateway():
    with pytest.raises(UnsupportedError, match="S3 gateway"):
        parse_location("ofs://om/vol/bucket/key")


@pytest.mark.parametrize("location", ["ftp://h/x", "relative/path", "s3:///nobucket"])
def test_bad_locations(location):
    with pytest.raises(ConfigError):
        parse_location(location)


def test_secrets_are_secret_and_reach_each_client():
    settings = StoreSettings(
        s3_endpoint="http://127.0.0.1:9000",
        s3_path_style=True,
        s3_access_key_id="AKID",
        s3_secret_access_key="s3cr3t",
        s3_session_token="tok",
        azure_account_name="acct",
        azure_sas_token="?sv=1&sig=abc",
    )
    assert "s3cr3t" not in repr(settings) and "sig=abc" not in repr(settings) and "AKID" not in repr(settings)
    delta = delta_storage_options(settings, parse_location("s3://b/t"))
    assert delta["AWS_SECRET_ACCESS_KEY"] == "s3cr3t" and delta["AWS_SESSION_TOKEN"] == "tok"
    assert delta["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" and delta["AWS_ALLOW_HTTP"] == "true"
    assert delta["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false"
    azure = delta_storage_options(settings, parse_location("az://c/t"))
    assert azure["AZURE_STORAGE_SAS_TOKEN"] == "sv=1&sig=abc"
    props = pyiceberg_properties(settings)
    assert props["s3.endpoint"] == "http://127.0.0.1:9000" and props["s3.secret-access-key"] == "s3cr3t"
    assert props["adls.sas-token"] == "?sv=1&sig=abc"
    s3 = arrow_filesystem(settings, parse_location("s3://b/t"))
    assert type(s3).__name__ == "S3FileSystem" and s3.region == "us-east-1"


def test_store_settings_are_validated():
    with pytest.raises(ValueError, match="not both"):
        StoreSettings(azure_account_key="k", azure_sas_token="s")
    with pytest.raises(ValueError, match="go together"):
        StoreSettings(gcs_hmac_access_id="id")
    with pytest.raises(ValueError, match="extra"):
        FilesConfig(tables=[{"name": "t", "location": "/x"}], s3_unknown=1)
    with pytest.raises(ValueError, match="unknown column type"):
        FilesConfig(tables=[{"name": "t", "location": "/x", "format": "csv", "columns": {"a": "uuid4"}}])


def test_gcs_hmac_goes_through_the_s3_api():
    settings = StoreSettings(
        gcs_hmac_access_id="GOOG1", gcs_hmac_secret="hmac", gcs_endpoint="http://127.0.0.1:1"
    )
    assert type(arrow_filesystem(settings, parse_location("gs://b/x"))).__name__ == "S3FileSystem"


def test_rest_catalog_config_is_passed_through_and_fails_plainly_without_a_server():
    """No Iceberg REST server runs here: the config is accepted, and an unreachable one names the source."""
    from nexus_flight.backends.iceberg import IcebergBackend

    spec = SourceSpec(
        "rest_src",
        "iceberg",
        {
            "catalog": {"type": "rest", "properties": {"uri": f"http://127.0.0.1:{free_port()}"}},
            "tables": [{"name": "t", "identifier": "ns.t"}],
        },
        {"catalog.token": "secret-token"},
    )
    with pytest.raises(BackendUnavailableError) as info:
        IcebergBackend(spec)
    assert info.value.details["source"] == "rest_src"
    assert "secret-token" not in info.value.message


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:10000", "http://127.0.0.1:10000/acct"),
        ("https://acct.blob.core.chinacloudapi.cn/", "https://acct.blob.core.chinacloudapi.cn"),
    ],
)
def test_azure_endpoint_for_delta_and_hudi(endpoint, expected):
    settings = StoreSettings(azure_account_name="acct", azure_endpoint=endpoint)
    assert delta_storage_options(settings, parse_location("az://c/t"))["AZURE_STORAGE_ENDPOINT"] == expected
