"""Session fixtures for the lake tests: emulators, and small data written to each store by pyarrow."""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from nexus_flight.core.source import QueryLimits, SourceSpec
from tests.lake.byte_counter import CountingRelay
from tests.lake.emulators import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    S3_KEY_ID,
    S3_REGION,
    S3_SECRET,
    azurite,
    gcs_emulator,
    moto_s3,
    s3_client,
)
from tests.support.results import run

BUCKET = "lake-bucket"

#: Room for the emulators on a busy machine.
LIMITS = QueryLimits(timeout_seconds=60)


def rows(backend, sql: str) -> list[dict]:
    """Run ``sql`` to the end and return its rows as dicts."""
    return run(backend, sql, timeout_seconds=LIMITS.timeout_seconds).to_pylist()


def require_modules(*names: str) -> None:
    """Skip the calling test module when a client package is missing; fail instead under CI (CI=true)."""
    from tests.support.services import IN_CI

    absent = [name for name in names if importlib.util.find_spec(name) is None]
    if not absent:
        return
    message = f"python packages not installed: {', '.join(absent)}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: tests that need them must run)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def sales_table(rows: int = 2000) -> pa.Table:
    """Deterministic sales rows; ``region`` is the partition column."""
    regions = ["eu", "us", "apac"]
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "region": [regions[i % 3] for i in range(rows)],
            "amount": [round(i * 1.25, 2) for i in range(rows)],
            "day": [dt.date(2026, 1, 1) + dt.timedelta(days=i % 300) for i in range(rows)],
        }
    )


def write_hive(table: pa.Table, filesystem: pafs.FileSystem, base: str, rows_per_group: int = 100) -> None:
    """Hive-partitioned parquet by region, small row groups so filters can skip some."""
    ds.write_dataset(
        table,
        base,
        filesystem=filesystem,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("region", pa.string())]), flavor="hive"),
        min_rows_per_group=rows_per_group,
        max_rows_per_group=rows_per_group,
        existing_data_behavior="overwrite_or_ignore",
    )


def upload_dir(s3_fixture, local: Path, prefix: str) -> None:
    """Copy a local directory into the emulator's bucket with single PUTs (moto fails pyarrow's multipart)."""
    client = s3_fixture[3]
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(local).as_posix()}", Body=path.read_bytes()
            )


def write_hive_s3(s3_fixture, table: pa.Table, prefix: str, scratch: Path) -> None:
    """``write_hive`` onto the S3 emulator."""
    local = scratch / prefix.replace("/", "_")
    write_hive(table, pafs.LocalFileSystem(), str(local))
    upload_dir(s3_fixture, local, prefix)


def source(kind: str, name: str = "lake", secrets: dict | None = None, **options) -> SourceSpec:
    return SourceSpec(name, kind, options, secrets or {})


def s3_source(kind: str, s3_settings: tuple[dict, dict], **options) -> SourceSpec:
    """A source on the S3 emulator (``s3_settings``); ``options`` add to or override its store options."""
    store, secrets = s3_settings
    return source(kind, secrets=secrets, **{**store, **options})


def azure_source(kind: str, emulator, key: str = AZURITE_KEY, **options) -> SourceSpec:
    """A source on Azurite's development account, with its key (or ``key``)."""
    return source(
        kind,
        secrets={"azure_account_key": key},
        azure_account_name=AZURITE_ACCOUNT,
        azure_endpoint=emulator.endpoint,
        **options,
    )


# -- S3 (moto) -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server behind a byte-counting relay, with one bucket."""
    with moto_s3() as emulator:
        relay = CountingRelay(emulator.port)
        filesystem = pafs.S3FileSystem(
            access_key=S3_KEY_ID,
            secret_key=S3_SECRET,
            region=S3_REGION,
            endpoint_override=f"127.0.0.1:{emulator.port}",
            scheme="http",
            allow_bucket_creation=True,
        )
        filesystem.create_dir(BUCKET)
        yield emulator, relay, filesystem, s3_client(emulator)
        relay.close()


@pytest.fixture(scope="session")
def s3_settings(s3) -> tuple[dict, dict]:
    """Options and secrets of a source on the S3 emulator."""
    options = {
        "s3_endpoint": f"127.0.0.1:{s3[0].port}",
        "s3_use_ssl": False,
        "s3_path_style": True,
        "s3_region": S3_REGION,
        "s3_access_key_id": S3_KEY_ID,
    }
    return options, {"s3_secret_access_key": S3_SECRET}


# -- Azure (Azurite) -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def azure(tmp_path_factory):
    with azurite(tmp_path_factory.mktemp("azurite")) as emulator:
        filesystem = pafs.AzureFileSystem(
            account_name=AZURITE_ACCOUNT,
            account_key=AZURITE_KEY,
            blob_storage_authority=f"127.0.0.1:{emulator.port}",
            blob_storage_scheme="http",
            dfs_storage_authority=f"127.0.0.1:{emulator.port}",
            dfs_storage_scheme="http",
        )
        filesystem.create_dir("lake")
        yield emulator, filesystem


# -- GCS (gcp-storage-emulator) ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gcs():
    with gcs_emulator(BUCKET) as emulator:
        filesystem = pafs.GcsFileSystem(
            anonymous=True,
            endpoint_override=f"127.0.0.1:{emulator.port}",
            scheme="http",
            retry_time_limit=dt.timedelta(seconds=2),
        )
        yield emulator, filesystem


def wait_a_moment() -> dt.datetime:
    """A timestamp strictly between two commits."""
    time.sleep(0.02)
    now = dt.datetime.now(dt.UTC)
    time.sleep(0.02)
    return now


@pytest.fixture(scope="session")
def local_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lake")
