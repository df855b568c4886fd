#!/usr/bin/env bash
# Installs the local emulators some tests start (object stores, peers). Idempotent; nothing runs here.
set -euo pipefail

# Azure Blob emulator for tests/lake (moto and the GCS emulator come with the lake-test pip extra).
if ! command -v azurite-blob >/dev/null 2>&1; then
    npm install -g 'azurite@^3.35'
fi

# Snowflake emulator for tests/backends/test_snowflake.py. fakesnow pins duckdb 2.x and needs
# snowflake-connector-python < 5, so it lives in its own virtual environment.
fakesnow_venv="${XDG_CACHE_HOME:-$HOME/.cache}/nexus-flight/fakesnow-venv"
if [ ! -x "$fakesnow_venv/bin/fakesnow" ]; then
    python3 -m venv "$fakesnow_venv"
    "$fakesnow_venv/bin/pip" install -q 'fakesnow[server]>=0.12,<0.13' 'snowflake-connector-python>=4.8,<5'
fi
