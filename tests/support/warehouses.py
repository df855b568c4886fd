"""Session fixtures of the warehouse families: a ClickHouse stand-in and a BigQuery emulator, TPC-H loaded in each.

ClickHouse: no ClickHouse server that clickhouse-connect can use installs here (see
``tests/support/clickhouse_standin.py`` for the evidence); the tests talk HTTP to a stand-in whose engine is
ClickHouse's own (chDB 26.9), clearly not a clickhouse-server process.

BigQuery: the ``bqemulator`` package (REST and Storage Read APIs, DuckDB underneath), installed in its own virtual
environment by ``tests/install-emulators.sh``. It is an emulator, not BigQuery: what it cannot do is listed in the
README.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.support.services import free_port, missing, running_server
from tests.support.tpch import TPCH_TABLES

CLICKHOUSE_TPCH = "tpch"
BIGQUERY_PROJECT = "nexus-test"
BIGQUERY_TPCH = "tpch"
BQ_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nexus-flight" / "bqemulator-venv"


class ClickHouseStandIn:
    """The running stand-in: its port and a clickhouse-connect client for loading data (writes allowed)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def options(self, **extra) -> dict:
        return {"host": "127.0.0.1", "port": self.port, "database": CLICKHOUSE_TPCH, **extra}

    def client(self):
        import clickhouse_connect

        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, autogenerate_session_id=False)


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory) -> ClickHouseStandIn:
    """ClickHouse's engine (chDB) behind the HTTP stand-in, in its own process, on a free port."""
    # Looked up, not imported: importing chDB installs ClickHouse's own handlers for SIGSEGV and the other fatal
    # signals in this process, which report nothing here (faulthandler's are gone) and can hang instead of exiting.
    if importlib.util.find_spec("chdb") is None:
        missing("chdb-core (pip install 'nexus-flight[test]')")
    port = free_port()
    with running_server(clickhouse_standin_argv(port, tmp_path_factory.mktemp("clickhouse") / "db"), port,
                        "the ClickHouse stand-in", timeout=60):
        yield ClickHouseStandIn(port)


def clickhouse_standin_argv(port: int, path: Path) -> list[str]:
    """The command that serves ClickHouse's engine (a database at ``path``) over HTTP on ``port``, in UTC."""
    return ["env", "TZ=UTC", sys.executable, "-m", "tests.support.clickhouse_standin", "--port", str(port),
            "--path", str(path)]


@pytest.fixture(scope="session")
def clickhouse_tpch(clickhouse_server, tpch_dir) -> str:
    """TPC-H sf0.01 in database ``tpch``, loaded from tpchgen-cli's parquet with ``INSERT … SELECT FROM file()``."""
    client = clickhouse_server.client()
    client.command(f"CREATE DATABASE IF NOT EXISTS {CLICKHOUSE_TPCH}")
    for table in TPCH_TABLES:
        path = str(tpch_dir / f"{table}.parquet").replace("'", "\\'")
        client.command(
            f"CREATE TABLE {CLICKHOUSE_TPCH}.{table} ENGINE = MergeTree ORDER BY tuple() "
            f"COMMENT 'TPC-H {table}' AS SELECT * FROM file('{path}', Parquet)"
        )
    client.command(
        f"CREATE VIEW {CLICKHOUSE_TPCH}.nation_names AS SELECT n_name FROM {CLICKHOUSE_TPCH}.nation"
    )
    client.command(f"ALTER TABLE {CLICKHOUSE_TPCH}.nation COMMENT COLUMN n_name 'the nation''s name'")
    client.close()
    return CLICKHOUSE_TPCH


# -- BigQuery ------------------------------------------------------------------------------------------------


class BigQueryEmulator:
    """The running emulator: its REST endpoint and a google-cloud-bigquery client for loading data."""

    def __init__(self, rest_port: int, grpc_port: int) -> None:
        self.rest_port, self.grpc_port = rest_port, grpc_port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def options(self, **extra) -> dict:
        return {
            "project_id": BIGQUERY_PROJECT,
            "dataset": BIGQUERY_TPCH,
            "endpoint": self.endpoint,
            "use_storage_api": False,
            **extra,
        }

    def client(self):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=BIGQUERY_PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory) -> BigQueryEmulator:
    """bqemulator from its own virtualenv, ephemeral, on free ports."""
    if not (BQ_VENV / "bin" / "bqemulator").exists():
        missing(f"bqemulator in {BQ_VENV} (run tests/install-emulators.sh)")
    rest, grpc = free_port(), free_port()
    with running_server(bigquery_emulator_argv(rest, grpc), rest, "bqemulator", timeout=90):
        yield BigQueryEmulator(rest, grpc)


def bigquery_emulator_argv(rest: int, grpc: int) -> list[str]:
    """The command that starts an ephemeral bqemulator for the test project on the two ports."""
    return [
        "env", "OTEL_SDK_DISABLED=true", str(BQ_VENV / "bin" / "bqemulator"), "start", "--rest-host", "127.0.0.1",
        "--rest-port", str(rest), "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc),
        "--ephemeral", "--project", BIGQUERY_PROJECT,
    ]


@pytest.fixture(scope="session")
def bigquery_tpch(bigquery_emulator, tpch_dir) -> str:
    """TPC-H sf0.01 in dataset ``tpch``: tables created with their schema, rows sent with ``insert_rows_json``.

    The emulator refuses the client's load-job upload (multipart part of type ``*/*``), so rows go through the
    streaming-insert API (decimals and dates as their exact text).
    """
    import pyarrow as pa
    from google.cloud import bigquery

    from tests.backends.conftest import tpch_table

    def bq_type(t: pa.DataType) -> str:
        if pa.types.is_decimal(t):
            return "NUMERIC"
        return {pa.int64(): "INT64", pa.int32(): "INT64", pa.utf8(): "STRING", pa.date32(): "DATE"}[t]

    client = bigquery_emulator.client()
    client.create_dataset(BIGQUERY_TPCH, exists_ok=True)
    for table in TPCH_TABLES:
        data = tpch_table(tpch_dir, table)
        schema = [bigquery.SchemaField(f.name, bq_type(f.type), mode="REQUIRED") for f in data.schema]
        target = client.create_table(bigquery.Table(f"{BIGQUERY_PROJECT}.{BIGQUERY_TPCH}.{table}", schema=schema))
        rows = [{k: (str(v) if not isinstance(v, int | str) else v) for k, v in r.items()} for r in data.to_pylist()]
        for start in range(0, len(rows), 20_000):
            errors = client.insert_rows_json(target, rows[start : start + 20_000])
            assert not errors, errors[:3]
    return BIGQUERY_TPCH
