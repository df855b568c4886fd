"""Fixtures of the differential suite: one gateway per family, reached with the real ADBC Flight SQL client.

To add a family: write ``family_<name>.py`` with a session fixture ``family_<name>`` returning a
:class:`tests.differential.harness.Family` (load the data as a user would: TPC-H straight from tpchgen-cli's output,
plus the engine's type zoo), then add the fixture's name to ``FAMILY_FIXTURES``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.conftest import mysql_tpch  # noqa: F401 - fixture: TPC-H loaded into MariaDB once per run
from tests.differential.family_bigquery import family_bigquery  # noqa: F401 - fixture
from tests.differential.family_clickhouse import family_clickhouse  # noqa: F401 - fixture
from tests.differential.family_delta import family_delta  # noqa: F401 - fixture
from tests.differential.family_duckdb import family_duckdb  # noqa: F401 - fixture
from tests.differential.family_files import family_files  # noqa: F401 - fixture
from tests.differential.family_flightsql import family_flightsql  # noqa: F401 - fixture
from tests.differential.family_hudi import family_hudi  # noqa: F401 - fixture
from tests.differential.family_iceberg import family_iceberg  # noqa: F401 - fixture
from tests.differential.family_mariadb import family_mariadb  # noqa: F401 - fixture
from tests.differential.family_postgres import family_postgres  # noqa: F401 - fixture
from tests.differential.family_s3 import family_s3  # noqa: F401 - fixture
from tests.differential.family_sail import family_sail  # noqa: F401 - fixture
from tests.differential.family_snowflake import family_snowflake  # noqa: F401 - fixture
from tests.differential.family_sqlite import family_sqlite  # noqa: F401 - fixture
from tests.differential.harness import Family

#: Every family in the suite, by fixture name.
FAMILY_FIXTURES = (
    "family_duckdb",
    "family_postgres",
    "family_sqlite",
    "family_files",
    "family_s3",
    "family_delta",
    "family_iceberg",
    "family_hudi",
    "family_mariadb",
    "family_clickhouse",
    "family_bigquery",
    "family_snowflake",
    "family_flightsql",
    "family_sail",
)


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--update-type-tables",
        action="store_true",
        help="rewrite tests/differential/types/<family>.md from the families' type zoos",
    )


@pytest.fixture(scope="session", params=FAMILY_FIXTURES, ids=lambda name: name.removeprefix("family_"))
def family(request) -> Family:
    return request.getfixturevalue(request.param)


def _gateway(family, tmp_path_factory, **settings):
    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    config = ServerSettings(
        port=0,
        data_dir=tmp_path_factory.mktemp(f"diff-{family.name}"),
        demo_scale=None,
        **settings,
    )
    return Gateway(config, [family.source]).start()


@pytest.fixture(scope="session")
def family_gateway(family, tmp_path_factory) -> Iterator[str]:
    """A gateway serving the family's source (and nothing else); yields its location."""
    gateway = _gateway(family, tmp_path_factory)
    yield gateway.location
    gateway.shutdown()


#: The message limit of the gateway and client that carry values over the clients' default 16 MiB.
RAISED_MESSAGE_LIMIT = 64 * 1024 * 1024


@pytest.fixture(scope="session")
def raised_limit_client(family, tmp_path_factory):
    """An ADBC connection that accepts 64 MiB messages, to a gateway of the family that sends them."""
    import adbc_driver_flightsql.dbapi as flightsql
    from adbc_driver_flightsql import DatabaseOptions

    gateway = _gateway(family, tmp_path_factory, max_message_bytes=RAISED_MESSAGE_LIMIT)
    conn = flightsql.connect(
        gateway.location,
        db_kwargs={DatabaseOptions.WITH_MAX_MSG_SIZE.value: str(RAISED_MESSAGE_LIMIT)},
        autocommit=True,
    )
    yield conn
    conn.close()
    gateway.shutdown()


@pytest.fixture(scope="session")
def client(family_gateway):
    """An ADBC Flight SQL connection to the family's gateway."""
    import adbc_driver_flightsql.dbapi as flightsql

    conn = flightsql.connect(family_gateway, autocommit=True)
    yield conn
    conn.close()
