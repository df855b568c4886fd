"""SQL as BI tools write it for a MariaDB source: every name in the identifier quote the gateway announces (").

DBeaver, DataGrip and Tableau (through the Flight SQL JDBC driver) quote names with GetSqlInfo's
SQL_IDENTIFIER_QUOTE_CHAR, ``"``. MariaDB without ANSI_QUOTES reads ``"OrderId"`` as the text 'OrderId': the name on
every row, a filter that matches nothing. Each statement below goes through ADBC and through the JDBC driver and is
compared with MariaDB's own answer (pymysql, as root) to the same statement with its names in backticks. Strings in
single quotes (with MariaDB's backslash escapes), comments and backticks keep their meaning.
"""

from __future__ import annotations

from decimal import Decimal

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pytest

from nexus_flight.core.settings import ServerSettings
from nexus_flight.core.source import SourceSpec
from nexus_flight.server.app.gateway import Gateway
from tests.clients import toolchain
from tests.clients.jdbc_values import from_getters
from tests.support.mysql_reader import READER_PASSWORD, fresh_database

DATABASE = "bi_quotes"
DDL = [
    "CREATE TABLE `Order Lines` (`OrderId` bigint NOT NULL, `Name` varchar(40), `Region` varchar(10), "
    "`Amount` decimal(10, 2))",
    "INSERT INTO `Order Lines` VALUES (1, 'Ärger', 'EU', 10.50), (2, 'O\\'Brien', 'US', 20.25), "
    "(3, 'Zoë \"Z\"', 'EU', NULL), (4, 'back\\\\slash', 'ASIA', 5.00)",
]
TABLE = f'maria.{DATABASE}."Order Lines"'

#: name: (the statement as a BI tool writes it, the same in MariaDB's own quoting, its parameters).
CASES = {
    "select_list": (
        f'SELECT "OrderId", "Name" FROM {TABLE} ORDER BY "OrderId"',
        "SELECT `OrderId`, `Name` FROM `Order Lines` ORDER BY `OrderId`",
        (),
    ),
    "where_parameter": (
        f'SELECT "OrderId", "Name", "Amount" FROM {TABLE} WHERE "OrderId" = ?',
        "SELECT `OrderId`, `Name`, `Amount` FROM `Order Lines` WHERE `OrderId` = ?",
        (2,),
    ),
    "group_and_order": (
        f'SELECT "Region", count(*) AS "Orders", sum("Amount") AS "Total" FROM {TABLE} GROUP BY "Region" '
        'ORDER BY "Total" DESC',
        "SELECT `Region`, count(*) AS `Orders`, sum(`Amount`) AS `Total` FROM `Order Lines` GROUP BY `Region` "
        "ORDER BY `Total` DESC",
        (),
    ),
    "unqualified": (
        """SELECT "Name" AS "Who" FROM "Order Lines" WHERE "Region" = 'EU' ORDER BY "Who" DESC""",
        "SELECT `Name` AS `Who` FROM `Order Lines` WHERE `Region` = 'EU' ORDER BY `Who` DESC",
        (),
    ),
    "strings_stay_strings": (
        f"""SELECT 'it''s' AS a, 'O\\'Brien' AS b, "Name" FROM {TABLE} """
        """WHERE "Name" IN ('O\\'Brien', 'back\\\\slash', 'Zoë "Z"') ORDER BY "OrderId\"""",
        """SELECT 'it''s' AS a, 'O\\'Brien' AS b, `Name` FROM `Order Lines` """
        """WHERE `Name` IN ('O\\'Brien', 'back\\\\slash', 'Zoë "Z"') ORDER BY `OrderId`""",
        (),
    ),
    "comments_and_backticks": (
        f'SELECT `Name`, "OrderId" /* "Region" */ FROM {TABLE} WHERE `Region` = ? ORDER BY 2 -- "Amount"',
        "SELECT `Name`, `OrderId` FROM `Order Lines` WHERE `Region` = ? ORDER BY 2",
        ("EU",),
    ),
    "subquery": (
        f'SELECT "o"."Name" FROM (SELECT "Name", "Amount" FROM {TABLE}) AS "o" '
        'WHERE "o"."Amount" > (SELECT avg("Amount") FROM "Order Lines")',
        "SELECT `o`.`Name` FROM (SELECT `Name`, `Amount` FROM `Order Lines`) AS `o` "
        "WHERE `o`.`Amount` > (SELECT avg(`Amount`) FROM `Order Lines`)",
        (),
    ),
}


@pytest.fixture(scope="module")
def maria(mariadb_server):
    return fresh_database(mariadb_server, DATABASE, DDL)


@pytest.fixture(scope="module")
def gateway(maria, tmp_path_factory):
    settings = ServerSettings(port=0, data_dir=tmp_path_factory.mktemp("bi-quotes"), demo_scale=None)
    gw = Gateway(settings, [SourceSpec("maria", "mysql", maria, {"password": READER_PASSWORD})]).start()
    yield gw
    gw.shutdown()


def engine_answer(mariadb_server, sql: str, parameters: tuple) -> tuple[list[str], list[tuple]]:
    """MariaDB's own answer through pymysql (its ``?`` as pymysql's ``%s``)."""
    with mariadb_server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(sql.replace("?", "%s"), parameters or None)
        return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]


def adbc_answer(gateway, sql: str, parameters: tuple) -> pa.Table:
    with flightsql.connect(gateway.location, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, parameters or None)
        return cur.fetch_arrow_table()


def _jdbc_argument(value) -> str:
    return f"long:{value}" if isinstance(value, int) else f"string:{value}"


@pytest.fixture(scope="module")
def jdbc(gateway, tmp_path_factory) -> dict[str, dict]:
    """Every case through the JDBC driver in one JVM: prepared when it has parameters, else a plain statement."""
    url = f"jdbc:arrow-flight-sql://127.0.0.1:{gateway.port}/?useEncryption=false"
    scenarios = [("connect", "connect", url, "user=alice", "password=x"), ("info", "info")]
    for name, (sql, _, parameters) in CASES.items():
        if parameters:
            scenarios.append((name, "prepared", sql, *map(_jdbc_argument, parameters)))
        else:
            scenarios.append((name, "query", sql))
    path = tmp_path_factory.mktemp("jdbc-bi-quotes") / "scenarios.tsv"
    path.write_text("\n".join("\t".join(s) for s in scenarios) + "\n", encoding="utf-8")
    return toolchain.run_lines([*toolchain.java_command("JdbcScenarios"), str(path)])


def test_the_driver_quotes_names_with_a_double_quote(jdbc):
    assert jdbc["info"]["result"]["identifierQuoteString"] == '"'


@pytest.mark.parametrize("name", CASES)
def test_adbc_answers_as_mariadb_answers_its_own_quoting(gateway, mariadb_server, name):
    sql, own, parameters = CASES[name]
    names, expected = engine_answer(mariadb_server, own, parameters)
    assert expected, "the case must have rows to compare"
    got = adbc_answer(gateway, sql, parameters)
    assert got.column_names == names
    assert [tuple(r.values()) for r in got.to_pylist()] == expected


@pytest.mark.parametrize("name", CASES)
def test_the_jdbc_driver_answers_as_mariadb_answers_its_own_quoting(jdbc, gateway, mariadb_server, name):
    sql, own, parameters = CASES[name]
    names, expected = engine_answer(mariadb_server, own, parameters)
    record = jdbc[name]
    assert record["ok"], record.get("error")
    result = record["result"]["runs"][0] if parameters else record["result"]
    assert [c["label"] for c in result["columns"]] == names
    types = adbc_answer(gateway, sql, parameters).schema.types  # how each getter's value reads back
    got = [tuple(from_getters(cell, t) for cell, t in zip(row, types, strict=True)) for row in result["rows"]]
    assert got == expected


def test_a_double_quoted_string_is_a_name_now(gateway):
    """A statement written for MariaDB's default reading fails naming the column instead of answering the text."""
    with pytest.raises(flightsql.ProgrammingError, match="Unknown column 'EU'"):
        adbc_answer(gateway, f'SELECT "Name" FROM {TABLE} WHERE "Region" = "EU"', ())
    answer = adbc_answer(gateway, f"""SELECT "Amount" FROM {TABLE} WHERE "Region" = 'EU' AND "Amount" > 1""", ())
    assert answer.column("Amount").to_pylist() == [Decimal("10.50")]
