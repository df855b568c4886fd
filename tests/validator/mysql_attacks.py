"""Attacks on a MySQL-family source, each judged by the damage it could do, not by who stops it.

The gateway once ran a MySQL source's SQL in DuckDB, whose MySQL scanner pushed filters down with quotes doubled but
backslashes left alone: a bound parameter ``x\\' OR 1=1 -- `` returned every row, ``… UNION SELECT load_file(…)``
read server files, ``… INTO OUTFILE`` wrote one, ``mysql.user`` was readable and ``sleep``/``get_lock`` ran around
the deny list, also through the session option ``dialect=postgres`` with an ``E'…'`` string.

Each attack names the validator's rule when the validator must refuse it (``rule``), or None when the SQL is
legitimate for the validator and only the source's own reading can stop it (a parameter value is data, a table
name is a name). Placeholders: ``{SENTINEL}`` (a file the server could read), ``{SENTINEL_HEX}`` (its path as a hex
literal), ``{OUT}`` (a file the server could create), ``{DB}`` (the source's database).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MySQLAttack:
    """One attack: its SQL, its parameters, the session dialect it is written in, and the rule that refuses it."""

    id: str
    sql: str
    parameters: tuple | None = None
    rule: str | None = None
    dialect: str | None = None


_BY_VALUE = "SELECT id, v FROM sentinel WHERE v = ?"

MYSQL_ATTACKS = [
    # A parameter is a value: it must never end the string it is compared with.
    MySQLAttack("param_or_true", _BY_VALUE, ("x\\' OR 1=1 -- ",)),
    MySQLAttack("param_or_true_quote", _BY_VALUE, ("x' OR '1'='1",)),
    MySQLAttack(
        "param_union_load_file", _BY_VALUE, ("x\\' UNION SELECT 7, CAST(load_file({SENTINEL_HEX}) AS CHAR) -- ",)
    ),
    MySQLAttack(
        "param_union_mysql_user", _BY_VALUE, ("x\\' UNION SELECT 7, authentication_string FROM mysql.user -- ",)
    ),
    MySQLAttack("param_into_outfile", _BY_VALUE, ("x\\' INTO OUTFILE '{OUT}' -- ",)),
    MySQLAttack("param_sleep", _BY_VALUE, ("x\\' OR sleep(5) -- ",)),
    MySQLAttack("param_get_lock", _BY_VALUE, ("x\\' OR get_lock('nexus_attack_lock', 0) -- ",)),
    MySQLAttack("param_like_backslash", "SELECT id, v FROM sentinel WHERE v LIKE ?", ("%\\",)),
    # The same through a client that writes PostgreSQL: E'…' strings are transpiled to MySQL's quoting.
    MySQLAttack("postgres_e_string", "SELECT id, v FROM sentinel WHERE v = E'x\\' OR 1=1 -- '", dialect="postgres"),
    MySQLAttack("postgres_param", _BY_VALUE, ("x\\' OR 1=1 -- ",), dialect="postgres"),
    # Server files.
    MySQLAttack("load_file", "SELECT CAST(load_file('{SENTINEL}') AS CHAR) AS f", rule="QV-005"),
    MySQLAttack("load_file_hex", "SELECT CAST(load_file({SENTINEL_HEX}) AS CHAR) AS f", rule="QV-005"),
    MySQLAttack("into_outfile", "SELECT id, v FROM sentinel INTO OUTFILE '{OUT}'", rule="QV-005"),
    MySQLAttack("into_dumpfile", "SELECT v FROM sentinel LIMIT 1 INTO DUMPFILE '{OUT}'", rule="QV-005"),
    MySQLAttack("load_data", "LOAD DATA INFILE '{SENTINEL}' INTO TABLE sentinel", rule="QV-002"),
    # Other users' secrets and statements.
    MySQLAttack("mysql_user", "SELECT user, authentication_string FROM mysql.user"),
    MySQLAttack("other_sessions", "SELECT user, info FROM information_schema.processlist"),
    # Time, locks and session state.
    MySQLAttack("sleep", "SELECT sleep(5)", rule="QV-004"),
    MySQLAttack("benchmark", "SELECT benchmark(500000000, md5('a'))", rule="QV-004"),
    MySQLAttack("get_lock", "SELECT get_lock('nexus_attack_lock', 0)", rule="QV-007"),
    MySQLAttack("do_get_lock", "DO get_lock('nexus_attack_lock', 0)", rule="QV-004"),
    MySQLAttack("read_write_session", "SET SESSION TRANSACTION READ WRITE", rule="QV-006"),
    MySQLAttack("user_variable", "SET @nexus_attack = 1", rule="QV-006"),
    MySQLAttack("for_update", "SELECT * FROM sentinel FOR UPDATE", rule="QV-007"),
    MySQLAttack("two_statements", "SELECT 1; DELETE FROM sentinel", rule="QV-001"),
    MySQLAttack("executable_comment", "SELECT 1 /*! , sleep(5) */", rule="QV-001"),
    # Writes, directly and through a stored function that writes.
    MySQLAttack("delete", "DELETE FROM sentinel", rule="QV-002"),
    MySQLAttack("update", "UPDATE sentinel SET v = 'x'", rule="QV-002"),
    MySQLAttack("insert", "INSERT INTO sentinel VALUES (9, 'x')", rule="QV-002"),
    MySQLAttack("replace", "REPLACE INTO sentinel VALUES (1, 'x')", rule="QV-002"),
    MySQLAttack("truncate", "TRUNCATE TABLE sentinel", rule="QV-003"),
    MySQLAttack("drop", "DROP TABLE sentinel", rule="QV-003"),
    MySQLAttack("create", "CREATE TABLE nexus_attack_created (a int)", rule="QV-003"),
    MySQLAttack("writing_function", "SELECT {DB}.nexus_attack_write() AS w"),
    # The same with names in the identifier quote the gateway announces ("), which the server reads as names.
    MySQLAttack("delete_quoted", 'DELETE FROM "sentinel"', rule="QV-002"),
    MySQLAttack("update_quoted", """UPDATE "sentinel" SET "v" = 'x'""", rule="QV-002"),
    MySQLAttack("insert_quoted", """INSERT INTO "{DB}"."sentinel" ("id", "v") VALUES (9, 'x')""", rule="QV-002"),
    MySQLAttack("drop_quoted", 'DROP TABLE "sentinel"', rule="QV-003"),
    MySQLAttack("writing_function_quoted", 'SELECT "{DB}"."nexus_attack_write"() AS "w"'),
]
