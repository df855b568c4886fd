"""A row filter and a column mask on a real MariaDB source, with every name in double quotes as BI tools write it.

bob's rows of ``staff`` are filtered to his region (ASIA) and its ``ssn`` is masked. The gateway announces ``"`` as
its identifier quote, and MariaDB's sessions read it so (ANSI_QUOTES): the validator, the policy rewrite and the
server must all read ``"ssn"`` as the column, or bob reads around the policies (or gets the text 'ssn'). Each
statement's answer for bob is compared with MariaDB's own answer (pymysql, as root) to the same statement in
backticks over what bob may see; alice, an administrator, gets MariaDB's answer over the whole table. The validator
is on; the gateway, catalog and MariaDB are real.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import module_store, query_as, serving_region_filtered, sorted_rows
from tests.support.mysql_reader import READER_PASSWORD, engine_answer, fresh_database

DATABASE = "policy_quotes"
DDL = [
    "CREATE TABLE staff (id int, region varchar(10), ssn varchar(11), salary decimal(10, 2))",
    "INSERT INTO staff VALUES (1, 'ASIA', '111-11-1111', 10.50), (2, 'EUROPE', '222-22-2222', 20.25), "
    "(3, 'ASIA', '333-33-3333', NULL)",
]
MASK = "'***'"
#: What bob may see of staff, and what alice may, as MariaDB's own client writes them.
SEEN = {
    "bob": f"(SELECT id, region, {MASK} AS ssn, salary FROM staff WHERE region = 'ASIA')",
    "alice": "staff",
}
TABLE = f'"{DATABASE}"."staff"'

#: name: (the statement as a BI tool writes it, the same in backticks over ``{seen}``, what the user may see of staff).
CASES = {
    "masked": (
        f'SELECT "ssn" FROM {TABLE}',
        "SELECT `ssn` FROM {seen} AS `staff`"),
    "aliased": (
        f'SELECT "id", "ssn" AS "x" FROM {TABLE} ORDER BY "id"',
        "SELECT `id`, `ssn` AS `x` FROM {seen} AS `staff`"),
    "filtered": (
        f"""SELECT "id", "region" FROM {TABLE} WHERE "region" <> 'ASIA'""",
        "SELECT `id`, `region` FROM {seen} AS `staff` WHERE `region` <> 'ASIA'"),
    "masked_in_where": (
        f"""SELECT "id" FROM {TABLE} WHERE "ssn" = '***' OR "ssn" LIKE '1%'""",
        "SELECT `id` FROM {seen} AS `staff` WHERE `ssn` = '***' OR `ssn` LIKE '1%'"),
    "table_alias": (
        f'SELECT "s"."ssn", "s"."region" FROM {TABLE} AS "s" WHERE "s"."id" < 3',
        "SELECT `s`.`ssn`, `s`.`region` FROM {seen} AS `s` WHERE `s`.`id` < 3"),
    "derived_table": (
        f"""SELECT "x"."ssn" FROM (SELECT "ssn", "region" FROM {TABLE}) AS "x" WHERE "x"."region" IN ('ASIA')""",
        "SELECT `x`.`ssn` FROM (SELECT `ssn`, `region` FROM {seen} AS `staff`) AS `x` WHERE `x`.`region` IN ('ASIA')"),
    "unqualified_subquery": (
        """SELECT "ssn", "region" FROM "staff" WHERE "id" IN (SELECT "id" FROM "staff" WHERE "region" <> 'EUROPE')""",
        "SELECT `ssn`, `region` FROM {seen} AS `staff` WHERE `id` IN (SELECT `id` FROM {seen} AS `staff` "
        "WHERE `region` <> 'EUROPE')"),
    "grouped": (
        f'SELECT "region", count(*) AS "n", max("ssn") AS "top" FROM {TABLE} GROUP BY "region"',
        "SELECT `region`, count(*) AS `n`, max(`ssn`) AS `top` FROM {seen} AS `staff` GROUP BY `region`"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_data_dir, mariadb_server):
    from nexus_flight.catalog.policies import PolicySpec, add_policy

    options = fresh_database(mariadb_server, DATABASE, DDL)
    with module_store(tmp_path_factory.mktemp("maria-quotes") / "data") as store:
        store.add_source("maria", "mariadb", options, {"password": READER_PASSWORD})
        add_policy(store, PolicySpec("mask-ssn", "column_mask", f"maria.{DATABASE}.staff", column="ssn",
                                     expression=MASK))
        with serving_region_filtered(store, demo_data_dir, "maria", (f"{DATABASE}.staff",)) as served:
            client, tokens = served
            yield {"client": client, "tokens": tokens, "server": mariadb_server}


@pytest.mark.parametrize("user", ["bob", "alice"])
@pytest.mark.parametrize("name", CASES)
def test_double_quoted_names_read_what_the_policies_leave(world, user, name):
    sql, own = CASES[name]
    got = query_as(world["client"], world["tokens"][user], sql)
    names, expected = engine_answer(world["server"], DATABASE, own.format(seen=SEEN[user]))
    assert got.column_names == names
    assert sorted_rows(got) == sorted(expected, key=repr)
    if user == "bob":
        values = {str(value) for column in got.columns for value in column.to_pylist()}
        assert not values & {"111-11-1111", "222-22-2222", "333-33-3333", "ssn"}, "an ssn, or the text 'ssn'"
