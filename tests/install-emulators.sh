#!/usr/bin/env bash
# Installs the local emulators some tests start (object stores, peers). Idempotent; nothing runs here.
set -euo pipefail

# Azure Blob emulator for tests/lake (moto and the GCS emulator come with the lake-test pip extra).
if ! command -v azurite-blob >/dev/null 2>&1; then
    npm install -g 'azurite@^3.35'
fi
