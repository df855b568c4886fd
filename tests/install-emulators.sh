#!/usr/bin/env bash
# Installs the local emulators some tests start (object stores, peers). Idempotent; nothing runs here.
set -euo pipefail

# Azure Blob emulator for tests/lake (moto and the GCS emulator come with the lake-test pip extra).
if ! command -v azurite-blob >/dev/null 2>&1; then
    npm install -g 'azurite@^3.35'
fi

# Snowflake emulator for tests/backends/test_snowflake.py and the differential suite. fakesnow pins duckdb 2.x
# and needs snowflake-connector-python < 5, so it lives in its own virtual environment; the connector's pandas
# extra gives it fetch_arrow_all, the engine's own answer the differential suite compares with.
fakesnow_venv="${XDG_CACHE_HOME:-$HOME/.cache}/nexus-flight/fakesnow-venv"
if [ ! -x "$fakesnow_venv/bin/fakesnow" ] || ! "$fakesnow_venv/bin/python" -c 'import pandas' 2>/dev/null; then
    [ -x "$fakesnow_venv/bin/python" ] || python3 -m venv "$fakesnow_venv"
    "$fakesnow_venv/bin/pip" install -q 'fakesnow[server]>=0.12,<0.13' 'snowflake-connector-python[pandas]>=4.8,<5'
fi

# BigQuery emulator for tests/backends/test_bigquery.py, in its own virtual environment (it pins its own
# DuckDB stack). Its spatial and avro extensions come from DuckDB's signed extension wheels, copied where DuckDB
# looks for them, since the emulator would otherwise try to download them when it starts.
bq_venv="${XDG_CACHE_HOME:-$HOME/.cache}/nexus-flight/bqemulator-venv"
if [ ! -x "$bq_venv/bin/bqemulator" ]; then
    python3 -m venv "$bq_venv"
    "$bq_venv/bin/pip" install -q 'bqemulator==1.4.0' 'duckdb==1.5.5' numpy \
        'duckdb-extension-spatial==1.5.5' 'duckdb-extension-avro==1.5.5'
fi
ext_dir="$HOME/.duckdb/extensions/v1.5.5/linux_amd64"
mkdir -p "$ext_dir"
for name in spatial avro; do
    if [ ! -f "$ext_dir/$name.duckdb_extension" ]; then
        cp "$bq_venv"/lib/python3*/site-packages/duckdb_extension_"$name"/extensions/v1.5.5/"$name".duckdb_extension "$ext_dir/"
    fi
done

# ClickHouse: no server installs from these registries (Debian's is 18.16, which clickhouse-connect cannot use);
# the tests run ClickHouse's engine from the chdb-core wheel (the test extra) behind tests/support/clickhouse_standin.py.
