"""Bad input, through the gateway, in every family: one status per kind of mistake, or the engine's own answer.

Each kind of mistake gets the status ``core/errors.py`` gives it, whichever engine refused it: a table that does not
exist is NOT_FOUND, a column that does not exist or a statement the engine cannot bind is INVALID_ARGUMENT. Where
engines disagree whether something is a mistake at all (``'ALGERIA' = 1``, a division by zero, ``CAST('ALGERIA' AS
INT)``, ``'abc'`` bound to an integer), the engine's own client decides: when it fails, the gateway answers
INVALID_ARGUMENT; when it answers (NULL, 0, no rows), the gateway answers the same. Every refusal names the source,
and carries no traceback, file path or secret.
"""

from __future__ import annotations

import re

import adbc_driver_manager
import pytest

from tests.differential.harness import assert_same_answer

#: Mistakes every engine refuses: the query (DuckDB's dialect, unqualified, as the suite writes them), the status,
#: and the name the message must mention.
REFUSED = {
    "unknown_table": ("select * from nexus_no_such_table", "NotFound", "nexus_no_such_table"),
    "unknown_column": ("select nexus_no_column from nation", "InvalidArgument", "nexus_no_column"),
    "order_by_past_the_select_list": ("select n_name from nation order by 9", "InvalidArgument", ""),
}

#: Mistakes some engines refuse and others answer: the query and its parameters.
ENGINE_DECIDES = {
    "text_equals_integer": ("select n_name from nation where n_name = 1", None),
    "division_by_zero": ("select n_nationkey / 0 as q from nation", None),
    "cast_of_text_to_integer": ("select cast(n_name as int) as c from nation", None),
    "integer_overflow": ("select n_nationkey + 9223372036854775800 as big from nation", None),
    "absolute_value_out_of_range": ("select abs(-9223372036854775808 + n_nationkey * 0) as a from nation", None),
    "text_bound_to_an_integer": ("select n_name from nation where n_nationkey = ?", ("abc",)),
}

#: What a message a client sees must never hold: a Python traceback, a file path or a source line.
_LEAKS = re.compile(r"Traceback|File \"|/tmp/|/root/|/home/|\.py\b|\.rs:\d+")


def refusal(client, sql: str, parameters=None) -> tuple[str, str]:
    """The gRPC status name and the message of the gateway's refusal of ``sql``."""
    with client.cursor() as cur, pytest.raises(adbc_driver_manager.Error) as failure:
        cur.execute(sql, parameters)
        cur.fetch_arrow_table()
    message = str(failure.value)
    return message.rsplit("(", 1)[1].split(";")[0], message  # "... (NotFound; Prepare)"


def assert_clean(family, message: str) -> None:
    assert f"source={family.catalog}" in message, message
    assert not _LEAKS.search(message), message
    for secret in family.source.secrets.values():
        assert len(secret) < 4 or secret not in message, "a secret of the source is in the message"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_everywhere_with_one_status(family, client, case):
    sql, status, named = REFUSED[case]
    with pytest.raises(Exception):  # noqa: B017, PT011 - each engine's client has its own error classes
        family.native(family.native_sql(family.for_engine(sql)), None)
    got, message = refusal(client, family.for_gateway(sql))
    assert got == status, message
    assert named in message.lower()
    assert_clean(family, message)


@pytest.mark.parametrize("case", sorted(ENGINE_DECIDES))
def test_the_engine_decides_and_the_gateway_agrees(family, client, case):
    sql, parameters = ENGINE_DECIDES[case]
    if case in family.engine_cannot:
        pytest.skip(f"{family.name} itself cannot run {case}: {family.engine_cannot[case]}")
    if parameters and "parameters" in family.engine_cannot:
        pytest.skip(family.engine_cannot["parameters"])
    try:
        expected = family.native(family.native_sql(family.for_engine(sql)), parameters)
    except Exception:  # noqa: BLE001 - the engine's own client refused it: so must the gateway
        got, message = refusal(client, family.for_gateway(sql), parameters)
        assert got == "InvalidArgument", message
        assert_clean(family, message)
        return
    with client.cursor() as cur:
        cur.execute(family.for_gateway(sql), parameters)
        assert_same_answer(cur.fetch_arrow_table(), expected, ordered=False)


@pytest.fixture(scope="module")
def unvalidated(family, tmp_path_factory):
    """A client of a gateway serving the family without the validator: the engine judges every statement."""
    import adbc_driver_flightsql.dbapi as flightsql

    from nexus_flight.core.settings import ServerSettings
    from nexus_flight.server.app.gateway import Gateway

    settings = ServerSettings(port=0, data_dir=tmp_path_factory.mktemp("errors"), demo_scale=None, validate_sql=False)
    gateway = Gateway(settings, [family.source]).start()
    conn = flightsql.connect(gateway.location, autocommit=True)
    yield conn
    conn.close()
    gateway.shutdown()


def test_an_unknown_function_is_refused_by_the_validator_else_by_the_engine(family, client, unvalidated):
    """The validator cannot tell a function that does not exist from one it does not allow; the engine can."""
    sql = "select nexus_no_function(n_name) from nation"
    got, message = refusal(client, family.for_gateway(sql))
    assert got == "PermissionDenied" and "QV-011: nexus_no_function() is not allowed" in message, message
    with pytest.raises(Exception):  # noqa: B017, PT011
        family.native(family.native_sql(family.for_engine(sql)), None)
    got, message = refusal(unvalidated, family.for_gateway(sql))
    # MariaDB checks the login's EXECUTE grant before it looks the function up: the source's own refusal.
    assert got == ("PermissionDenied" if family.source.kind == "mysql" else "InvalidArgument"), message
    assert "nexus_no_function" in message.lower()
    assert_clean(family, message)


def test_a_wrong_number_of_parameters_is_refused_before_the_engine(family, client):
    if "parameters" in family.engine_cannot:
        pytest.skip(family.engine_cannot["parameters"])
    sql = family.for_gateway("select n_name from nation where n_nationkey = ?")
    got, message = refusal(client, sql, (1, 2))
    assert got == "InvalidArgument", message
    assert "the statement has 1 parameter(s), 2 were bound" in message
    assert not _LEAKS.search(message), message
