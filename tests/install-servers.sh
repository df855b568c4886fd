#!/usr/bin/env bash
# Installs the database servers the tests start for themselves (tests/support/servers.py): PostgreSQL and MariaDB
# from Debian's packages, nginx (the gRPC proxy of the replica test), PgBouncer, and MariaDB Connector/C's headers
# (libmariadb-dev), which the MySQL family's driver (pip mariadb) is built against. Idempotent: a machine that already has the binaries keeps them. Nothing is started here,
# and the packages' own system services are not used by the tests.
set -euo pipefail

missing=()
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    missing+=(postgresql)
fi
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    missing+=(mariadb-server)
fi
if ! command -v mariadb_config >/dev/null 2>&1; then
    missing+=(libmariadb-dev)
fi
# nginx (grpc_pass) is the proxy in front of the replicas in tests/operations/test_replicas.py.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    missing+=(nginx-light)
fi
# PgBouncer (transaction pooling) in front of PostgreSQL in tests/backends/test_postgres_pooler.py.
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
    missing+=(pgbouncer)
fi
if ! command -v gcc >/dev/null 2>&1; then
    missing+=(gcc)
fi
# runuser starts the servers as their own OS users when the tests run as root (PostgreSQL refuses root).
if [ "$(id -u)" -eq 0 ] && ! command -v runuser >/dev/null 2>&1; then
    missing+=(util-linux)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo)
else
    echo "tests/install-servers.sh: install ${missing[*]} (Debian packages) as root, then run make test again" >&2
    exit 1
fi
echo "installing ${missing[*]} from Debian's packages"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
