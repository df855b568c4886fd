"""The ``files`` family on S3 (moto): tpchgen-cli's parquet files and the parquet zoo uploaded as they are.

Reference: DuckDB's own parquet reader fetching the same objects from the same emulator through its httpfs
extension. The gateway reads them through pyarrow's S3 file system and datasets scanned by DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.differential.lake_data import lake_family, read_parquet, reference, zoo_table
from tests.lake.emulators import S3_KEY_ID, S3_REGION, S3_SECRET, moto_s3, s3_client
from tests.support.tpch import TPCH_TABLES

BUCKET = "differential"


def _httpfs_setup(port: int) -> tuple[str, ...]:
    import duckdb_extension_httpfs

    extension = next(Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))
    return (
        f"LOAD '{extension}'",
        f"CREATE SECRET s3 (TYPE S3, KEY_ID '{S3_KEY_ID}', SECRET '{S3_SECRET}', REGION '{S3_REGION}', "
        f"ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false)",
    )


@pytest.fixture(scope="session")
def family_s3(tpch_dir, tmp_path_factory):
    zoo_file = tmp_path_factory.mktemp("diff-s3") / "type_zoo.parquet"
    pq.write_table(zoo_table("parquet"), zoo_file)
    files = {name: tpch_dir / f"{name}.parquet" for name in TPCH_TABLES}
    files["type_zoo"] = zoo_file
    with moto_s3() as emulator:
        client = s3_client(emulator)
        client.create_bucket(Bucket=BUCKET)
        # One directory per table, as a user lays tables out on a bucket (single PUTs: moto and multipart).
        for name, path in files.items():
            client.put_object(Bucket=BUCKET, Key=f"tpch/{name}/{path.name}", Body=path.read_bytes())
        options = {
            "s3_endpoint": f"127.0.0.1:{emulator.port}",
            "s3_use_ssl": False,
            "s3_path_style": True,
            "s3_region": S3_REGION,
            "s3_access_key_id": S3_KEY_ID,
            "tables": [{"name": name, "location": f"s3://{BUCKET}/tpch/{name}/"} for name in files],
        }
        views = {name: read_parquet([f"s3://{BUCKET}/tpch/{name}/{path.name}"]) for name, path in files.items()}
        native = reference(views, _httpfs_setup(emulator.port))
        yield lake_family("s3", "files", options, native, "parquet", {"s3_secret_access_key": S3_SECRET})
