"""The BigQuery family against bqemulator: TPC-H and a type zoo sent as rows, compared with the client's own rows.

What answers is bqemulator (BigQuery's REST API over DuckDB), not BigQuery: none is reachable from here. Data goes
in as a user's program sends it, with ``insert_rows_json`` (the emulator refuses load jobs' uploads). The reference
is google-cloud-bigquery's own row path (``client.query(...).result()``, its JSON decoding of the REST pages,
parameters typed as a user types them), never the gateway's Arrow route; its Python values are put in the form
the gateway documents (JSON as its compact text, an INTERVAL as months, days and nanoseconds).

What the emulator cannot hold, so the zoo leaves it out: BIGNUMERIC columns (creating one fails; computed values
lose the digits past DuckDB's 38) and GEOGRAPHY columns (creating one drops the connection; computed values come
back as WKB bytes typed BYTES).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from nexus_flight.core.source import SourceSpec
from tests.differential.harness import EngineRows, Family, TypeCase

_UTC = pa.timestamp("us", tz="UTC")

#: (case, BigQuery schema field, JSON value sent with insert_rows_json)
_ZOO = (
    (TypeCase("i", "INT64", pa.int64(), -9223372036854775808), ("INT64", "NULLABLE", ()), -9223372036854775808),
    (TypeCase("n", "NUMERIC", pa.decimal128(38, 9), Decimal("-99999999999999999999999999999.999999999"),
              note="exact, 29 digits and 9 decimals"),
     ("NUMERIC", "NULLABLE", ()), "-99999999999999999999999999999.999999999"),
    (TypeCase("n_small", "NUMERIC", pa.decimal128(38, 9), Decimal("0.000000001")), ("NUMERIC", "NULLABLE", ()),
     "0.000000001"),
    (TypeCase("f", "FLOAT64", pa.float64(), 2.25), ("FLOAT64", "NULLABLE", ()), 2.25),
    (TypeCase("b", "BOOL", pa.bool_(), True), ("BOOL", "NULLABLE", ()), True),
    (TypeCase("s", "STRING", pa.utf8(), "héllo 中文 😀"), ("STRING", "NULLABLE", ()), "héllo 中文 😀"),
    (TypeCase("s_empty", "STRING", pa.utf8(), "", note="empty string, not NULL"), ("STRING", "NULLABLE", ()), ""),
    (TypeCase("by", "BYTES", pa.binary(), note="not bound: the emulator matches no BYTES column to a parameter"),
     ("BYTES", "NULLABLE", ()), "3q0="),
    (TypeCase("d", "DATE", pa.date32(), dt.date(2024, 2, 29)), ("DATE", "NULLABLE", ()), "2024-02-29"),
    (TypeCase("dtm", "DATETIME", pa.timestamp("us"), dt.datetime(2024, 1, 1, 12, 0, 0, 123456), note="naive"),
     ("DATETIME", "NULLABLE", ()), "2024-01-01T12:00:00.123456"),
    (TypeCase("ts", "TIMESTAMP", _UTC, dt.datetime(2024, 6, 1, 6, 30, 0, 123456, tzinfo=dt.UTC), note="UTC"),
     ("TIMESTAMP", "NULLABLE", ()), "2024-06-01T12:00:00.123456+05:30"),
    (TypeCase("t", "TIME", pa.time64("us"), dt.time(23, 59, 59, 123456)), ("TIME", "NULLABLE", ()),
     "23:59:59.123456"),
    (TypeCase("j", "JSON", pa.utf8(), note="the JSON text"), ("JSON", "NULLABLE", ()), '{"k":[1,2],"s":"x"}'),
    (TypeCase("iv", "INTERVAL", pa.month_day_nano_interval()), ("INTERVAL", "NULLABLE", ()), "1-2 3 4:5:6.5"),
    (TypeCase("rd", "RANGE<DATE>", pa.struct([("start", pa.date32()), ("end", pa.date32())])),
     ("RANGE", "NULLABLE", "DATE"), {"start": "2024-01-01", "end": "2024-02-01"}),
    (TypeCase("rts", "RANGE<TIMESTAMP>", pa.struct([("start", _UTC), ("end", _UTC)]), note="an unbounded end"),
     ("RANGE", "NULLABLE", "TIMESTAMP"), {"start": "2024-01-01T00:00:00Z", "end": None}),
    (TypeCase("ai", "ARRAY<INT64>", pa.list_(pa.int64()), note="a NULL array reads as []"),
     ("INT64", "REPEATED", ()), [1, 2, 3]),
    (TypeCase("as_", "ARRAY<STRING>", pa.list_(pa.utf8())), ("STRING", "REPEATED", ()), ["a", "", "ü"]),
    (TypeCase("st", "STRUCT<a INT64, b STRING, ts ARRAY<TIMESTAMP>>",
              pa.struct([("a", pa.int64()), ("b", pa.utf8()), ("ts", pa.list_(_UTC))])),
     ("RECORD", "NULLABLE", (("a", "INT64", "NULLABLE"), ("b", "STRING", "NULLABLE"), ("ts", "TIMESTAMP", "REPEATED"))),
     {"a": 1, "b": "x", "ts": ["2024-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]}),
    (TypeCase("ast", "ARRAY<STRUCT<x NUMERIC, y DATE>>",
              pa.list_(pa.struct([("x", pa.decimal128(38, 9)), ("y", pa.date32())]))),
     ("RECORD", "REPEATED", (("x", "NUMERIC", "NULLABLE"), ("y", "DATE", "NULLABLE"))),
     [{"x": "1.5", "y": "2024-01-02"}, {"x": None, "y": None}]),
)


def _schema_field(name: str, spec) -> object:
    from google.cloud import bigquery

    kind, mode, extra = spec
    if kind == "RANGE":
        return bigquery.SchemaField(name, "RANGE", mode=mode, range_element_type=extra)
    fields = [bigquery.SchemaField(n, k, mode=m) for n, k, m in extra]
    return bigquery.SchemaField(name, kind, mode=mode, fields=fields)


def _load_zoo(client, project: str, dataset: str) -> None:
    from google.cloud import bigquery

    schema = [bigquery.SchemaField("id", "INT64", mode="REQUIRED")]
    schema += [_schema_field(case.column, spec) for case, spec, _ in _ZOO]
    table = client.create_table(bigquery.Table(f"{project}.{dataset}.type_zoo", schema=schema), exists_ok=True)
    row = {"id": 1, **{case.column: value for case, _, value in _ZOO}}
    errors = client.insert_rows_json(table, [{"id": 0}, row, {"id": 2}])
    assert not errors, errors


# -- the engine's own answer ---------------------------------------------------------------------------------


def _documented(value, field):
    """A google-cloud-bigquery row value in the form the gateway documents for its schema field."""
    if field.mode == "REPEATED":
        return [_documented(v, _single(field)) for v in value]
    if value is None:
        return None
    kind = field.field_type.upper()
    if kind in ("RECORD", "STRUCT"):
        return {f.name: _documented(value.get(f.name), f) for f in field.fields}
    if kind == "JSON":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if kind == "INTERVAL":  # a dateutil relativedelta
        nanos = ((value.hours * 60 + value.minutes) * 60 + value.seconds) * 10**9 + value.microseconds * 1000
        return (value.years * 12 + value.months, value.days, nanos)
    return value


def _single(field):
    from google.cloud import bigquery

    return bigquery.SchemaField(field.name, field.field_type, mode="NULLABLE", fields=field.fields)


def _parameter(value):
    """A positional parameter typed as a user types it, by the Python value."""
    from google.cloud import bigquery

    kinds = ((bool, "BOOL"), (int, "INT64"), (float, "FLOAT64"), (Decimal, "NUMERIC"), (str, "STRING"),
             (bytes, "BYTES"), (dt.datetime, "DATETIME"), (dt.date, "DATE"), (dt.time, "TIME"))
    kind = next((k for t, k in kinds if isinstance(value, t)), "STRING")
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        kind = "TIMESTAMP"
    return bigquery.ScalarQueryParameter(None, kind, value)


def _native(client):
    from google.cloud import bigquery

    def native(sql, parameters):
        config = bigquery.QueryJobConfig(query_parameters=[_parameter(v) for v in parameters or ()])
        result = client.query(sql, job_config=config).result()
        return EngineRows(
            (tuple(_documented(v, f) for v, f in zip(row.values(), result.schema, strict=True)) for row in result),
            [f.name for f in result.schema],
        )

    return native


@pytest.fixture(scope="session")
def family_bigquery(bigquery_emulator, bigquery_tpch) -> Family:
    from tests.support.warehouses import BIGQUERY_PROJECT

    client = bigquery_emulator.client()
    _load_zoo(client, BIGQUERY_PROJECT, bigquery_tpch)
    return Family(
        name="bigquery",
        source=SourceSpec("bq", "bigquery", bigquery_emulator.options()),
        dialect="bigquery",
        native=_native(client),
        schema=bigquery_tpch,
        zoo=tuple(case for case, _, _ in _ZOO),
        unverified=(
            ("BIGNUMERIC", "decimal256(76, 38)", "the emulator cannot create the column, types a BIGNUMERIC expression "
             "NUMERIC and keeps 38 digits at most"),
            ("GEOGRAPHY", "string", "WKT; the emulator cannot create the column and returns computed values as WKB "
             "bytes typed BYTES"),
        ),
        engine_cannot={
            "tpch_q13": "BigQuery has no column list on a derived table's alias (AS c_orders (c_custkey, c_count)); "
            "sqlglot drops it, and c_count names nothing",
        },
    )
