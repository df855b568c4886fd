"""ClickHouse and BigQuery attacks: refused by the validator with their rule, and harmless without it.

The second half is the DAMAGE check of the second line of defence: each attack goes straight to the backend (no
validator in front) against ClickHouse's engine behind the HTTP stand-in (``tests/support/clickhouse_standin.py``;
no clickhouse-server installs here) and against bqemulator, must be refused there, and must leave the tables as
they were (names and a checksum of their contents) and write no file.
"""

from __future__ import annotations

import pytest

from nexus_flight.backends.bigquery import BigQueryBackend
from nexus_flight.backends.clickhouse import ClickHouseBackend
from nexus_flight.core.errors import GatewayError
from nexus_flight.core.source import SourceProfile, SourceSpec
from nexus_flight.server.query.sql.readonly import validate
from nexus_flight.server.query.sql.routing import route
from nexus_flight.server.query.sql.rules import RULES
from tests.support.results import run
from tests.validator.corpus_warehouses import BIGQUERY_ATTACKS, CLICKHOUSE_ATTACKS, WAREHOUSE_ATTACKS


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("attack-out")


def fill(sql: str, out_dir) -> str:
    return sql.replace("{OUT}", str(out_dir))


@pytest.mark.parametrize(("dialect", "rule", "sql"), WAREHOUSE_ATTACKS, ids=lambda v: repr(v)[:60])
def test_the_validator_refuses_the_attack_with_its_rule(dialect, rule, sql, out_dir):
    with pytest.raises(GatewayError) as caught:
        validate(fill(sql, out_dir), dialect)
    assert caught.value.message.startswith(f"{rule}: "), caught.value.message
    assert isinstance(caught.value, RULES[rule].error)


def test_a_question_mark_stays_a_question_mark_when_a_clickhouse_query_names_its_catalog():
    """sqlglot writes an unnamed ClickHouse parameter as ``{?: }``; the router must hand the backend ``?``."""
    routed = route(
        "SELECT n_name FROM ch.tpch.nation WHERE n_nationkey = ? AND n_name <> ?",
        sources={"ch": SourceProfile("clickhouse")},
        session_catalog=None,
        default_source="ch",
    )
    assert routed.sql == "SELECT n_name FROM tpch.nation WHERE n_nationkey = ? AND n_name <> ?"
    assert routed.parameter_count == 2


# -- the second line of defence ------------------------------------------------------------------------------


def _clickhouse_fingerprint(client) -> tuple:
    tables = client.query(
        "SELECT database, name, engine, total_rows FROM system.tables "
        "WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY 1, 2"
    ).result_rows
    contents = client.query(
        "SELECT (SELECT (groupBitXor(cityHash64(*)), count()) FROM tpch.region), "
        "(SELECT (groupBitXor(cityHash64(*)), count()) FROM tpch.nation)"
    ).result_rows
    return tables, contents


def test_clickhouse_attacks_change_nothing_without_the_validator(clickhouse_server, clickhouse_tpch, out_dir):
    """``readonly=1`` on every request is what refuses here; the stand-in refuses INTO OUTFILE as the server does."""
    backend = ClickHouseBackend(SourceSpec("ch", "clickhouse", clickhouse_server.options()))
    client = clickhouse_server.client()
    before = _clickhouse_fingerprint(client)
    ran = {}
    try:
        for _, sql in CLICKHOUSE_ATTACKS:
            try:
                ran[sql] = run(backend, fill(sql, out_dir)).num_rows
            except GatewayError:
                pass
        assert _clickhouse_fingerprint(client) == before
        assert run(backend, "SELECT count() AS n FROM tpch.region").column(0).to_pylist() == [5]
    finally:
        backend.close()
        client.close()
    assert not ran, f"ClickHouse ran these without refusing them: {ran}"
    assert list(out_dir.iterdir()) == []


def _bigquery_fingerprint(client, dataset: str) -> tuple:
    tables = sorted(t.table_id for t in client.list_tables(dataset))
    region = sorted(tuple(row.values()) for row in client.query(f"SELECT * FROM {dataset}.region").result())
    counts = [tuple(row.values()) for row in client.query(
        f"SELECT (SELECT count(*) FROM {dataset}.nation), (SELECT count(*) FROM {dataset}.orders)"
    ).result()]
    return tables, region, counts


def test_bigquery_attacks_change_nothing_without_the_validator(bigquery_emulator, bigquery_tpch, out_dir):
    """The dry run names each statement; anything but a query is refused before a job runs."""
    backend = BigQueryBackend(SourceSpec("bq", "bigquery", bigquery_emulator.options()))
    client = bigquery_emulator.client()
    before = _bigquery_fingerprint(client, bigquery_tpch)
    ran = {}
    try:
        for _, sql in BIGQUERY_ATTACKS:
            try:
                ran[sql] = run(backend, fill(sql, out_dir)).num_rows
            except GatewayError:
                pass
        assert _bigquery_fingerprint(client, bigquery_tpch) == before
        # The emulator still answers: no attack left its connection inside a transaction.
        assert run(backend, "SELECT count(*) AS n FROM tpch.region").column(0).to_pylist() == [5]
    finally:
        backend.close()
        client.close()
    assert not ran, f"the emulator ran these without refusing them: {ran}"
    assert list(out_dir.iterdir()) == []
