"""What the JDBC scenario program printed, read back as Python values and compared with an engine's answer."""

from __future__ import annotations

import datetime
import json
import zoneinfo
from decimal import Decimal

import pyarrow as pa


def from_getters(cell: dict | None, arrow_type: pa.DataType):
    """The Python value a driver cell stands for, read from the getter JDBC prescribes for its type."""
    if cell is None:
        return None
    t = arrow_type
    if pa.types.is_decimal(t):
        assert -Decimal(cell["value"]).as_tuple().exponent == t.scale, cell  # BigDecimal keeps the scale
        return Decimal(cell["value"])
    if pa.types.is_floating(t):
        return float(cell["value"])
    if pa.types.is_date(t):
        return datetime.date.fromisoformat(cell["value"])
    if pa.types.is_timestamp(t):  # getString; getTimestamp is shifted (the xfail test below)
        parsed = datetime.datetime.fromisoformat(cell["string"])
        return parsed.replace(tzinfo=zoneinfo.ZoneInfo(t.tz)) if t.tz else parsed
    if pa.types.is_binary(t):
        return bytes.fromhex(cell["value"])
    if pa.types.is_list(t) or pa.types.is_struct(t):
        return json.loads(cell["string"])
    return cell["value"]


def compare_result(result: dict, expected: pa.Table, skip=lambda t: False) -> None:
    assert [c["label"] for c in result["columns"]] == expected.schema.names
    assert len(result["rows"]) == expected.num_rows
    for index, field in enumerate(expected.schema):
        if skip(field.type):
            continue
        got = [from_getters(row[index], field.type) for row in result["rows"]]
        want = expected.column(index).to_pylist()
        assert got == want, field.name
