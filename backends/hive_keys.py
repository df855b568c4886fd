"""Hive partition keys (``key=value`` directories) typed and valued as DuckDB's own file readers type them.

A files table's partition keys must read as ``read_parquet(..., hive_partitioning = true)`` (and ``read_csv``)
read them, not as pyarrow's discovery does (int32 for ``year=2024``, text for dates). DuckDB's rules, with its
``hive_types_autocast`` on (its default):

* a key is DATE when every value is a date (``2024-01-31``, ``2024-1-5``), else TIMESTAMP when every value is a
  timestamp (``2024-01-31 10:00:00``, ``2024-01-31T10:00:00Z``), else BIGINT when every value is an integer
  (``3000000000``, ``-7``, ``0x1F``), else VARCHAR: decimals (``1.5``), ``+5``, ``007``, ``1e3``, and keys whose
  values disagree (``1`` and ``abc``, a date and a number) are text;
* the tests are DuckDB's strict casts: a date has a year of two digits or more and nothing but spaces after the
  day; an integer has no ``+``, no leading zero, decimal point, exponent or ``_``;
* ``__HIVE_DEFAULT_PARTITION__`` and ``NULL`` (any case) are NULL and do not count in choosing the type; an empty
  value (``key=``) is the empty string, so its key is VARCHAR;
* the type is chosen on the directory name as written, the value is read from it URL-decoded
  (``city=New%20York`` is ``New York``; ``%41`` is not an integer but reads ``A``);
* a key also stored in the files is the key: the directory's value, in the key's type, in the file column's place
  (names compared case-insensitively); the other keys follow the files' columns, in name order.

Two departures, both where DuckDB would refuse or surprise: only directories below the table's location are keys
(DuckDB also reads ``key=value`` folders above it), and a key missing from some file's path is NULL there
(DuckDB refuses such a read).

Each value is DuckDB's own cast of the decoded text (an in-memory DuckDB that reads no file), so spellings such
as ``2024-01-01 10:00:00+02`` come out exactly as DuckDB's reader has them. The values become each file's
partition expression, from which pyarrow fills in the columns and skips the files a filter on a key excludes.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

#: Directory values that stand for NULL (the first compared exactly, the second in any case).
_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"

#: DuckDB's candidate types, in the order it tries them, with their Arrow types.
_CANDIDATES = (("DATE", pa.date32()), ("TIMESTAMP", pa.timestamp("us")), ("BIGINT", pa.int64()))

#: What DuckDB's strict casts refuse beyond its ordinary ones (which ``TRY_CAST`` asks): the text's shape. Its
#: strict timestamp cast accepts what the ordinary one does.
_SPACE = r"[ \t\n\v\f\r]*"
_STRICT_SHAPES = {
    "DATE": re.compile(
        rf"{_SPACE}(?:-?\d{{2,}}([-/\\ ])\d{{1,2}}\1\d{{1,2}}(?: \(BC\))?|-?infinity|epoch){_SPACE}", re.IGNORECASE
    ),
    "BIGINT": re.compile(rf"{_SPACE}(?:-\d+|[1-9]\d*|0|0[xX][0-9a-fA-F]+|0[bB][01]+){_SPACE}"),
}


@dataclass(frozen=True)
class HiveKeys:
    """A table's partition keys: its schema with them in place, and each file's values of them."""

    #: The files' columns with the keys placed as DuckDB places them.
    schema: pa.Schema
    #: The keys' column names, in the order DuckDB adds them.
    names: tuple[str, ...]
    #: One per file: ``key == value`` (or ``key IS NULL``) for every key.
    expressions: tuple[ds.Expression, ...]

    @property
    def keys(self) -> pa.Schema:
        """The keys' columns alone."""
        return pa.schema([self.schema.field(name) for name in self.names])


def _is_null(raw: str) -> bool:
    """Whether a directory value stands for NULL."""
    return raw == _DEFAULT_PARTITION or raw.upper() == "NULL"


def _directory_keys(path: str, base: str) -> dict[str, str]:
    """The ``key=value`` directories of ``path`` below ``base``, values as written (DuckDB keeps a key's first)."""
    relative = path[len(base):] if path.startswith(base) else path
    keys: dict[str, str] = {}
    for segment in relative.strip("/").split("/")[:-1]:
        key, equals, value = segment.partition("=")
        if equals and key and "=" not in value:
            keys.setdefault(key, value)
    return keys


def hive_keys(files: Sequence[str], base: str, file_schema: pa.Schema) -> HiveKeys:
    """The partition keys of ``files`` (paths below ``base``), typed and valued as DuckDB's reader has them."""
    per_file = [_directory_keys(path, base) for path in files]
    names = sorted({key for keys in per_file for key in keys})
    if not names:
        return HiveKeys(file_schema, (), ())
    with _duckdb() as con:
        types = _key_types(con, names, per_file)
        schema, columns = place_keys(file_schema, pa.schema([(name, types[name]) for name in names]))
        values = {name: _values(con, types[name], {keys.get(name) for keys in per_file}) for name in names}
    expressions = tuple(
        functools.reduce(operator.and_, [_equals(columns[name], values[name][keys.get(name)]) for name in names])
        for keys in per_file
    )
    return HiveKeys(schema, tuple(columns[name] for name in names), expressions)


def place_keys(columns: pa.Schema, keys: pa.Schema) -> tuple[pa.Schema, dict[str, str]]:
    """``columns`` with each key in place of the column of its name, the others after; and each key's column name."""
    by_name = {field.name.lower(): field for field in keys}
    placed: dict[str, str] = {}
    fields = []
    for field in columns:
        key = by_name.get(field.name.lower())
        if key is None or key.name in placed:
            fields.append(field)
        else:  # the key replaces the file's column, under the column's name
            placed[key.name] = field.name
            fields.append(pa.field(field.name, key.type))
    for key in keys:
        if key.name not in placed:
            placed[key.name] = key.name
            fields.append(key)
    return pa.schema(fields, metadata=columns.metadata), placed


def _duckdb() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config={"enable_external_access": False})


def _key_types(
    con: duckdb.DuckDBPyConnection, names: list[str], per_file: list[dict[str, str]]
) -> dict[str, pa.DataType]:
    """Each key's type: the first candidate all its (non-NULL) values cast to strictly, else VARCHAR."""
    raw = sorted({keys[name] for keys in per_file for name in names if name in keys and not _is_null(keys[name])})
    casts = _casts(con, raw)
    types = {}
    for name in names:
        values = {keys[name] for keys in per_file if name in keys and not _is_null(keys[name])}
        chosen = {_strict_type(value, casts[value]) for value in values}
        types[name] = chosen.pop() if len(chosen) == 1 else pa.string()
    return types


def _casts(con: duckdb.DuckDBPyConnection, raw: list[str]) -> dict[str, tuple[bool, ...]]:
    """For each text, whether DuckDB's ordinary cast to each candidate type accepts it."""
    con.register("texts", pa.table({"v": pa.array(raw, pa.string())}))
    tests = ", ".join(f"TRY_CAST(v AS {name}) IS NOT NULL" for name, _ in _CANDIDATES)
    return {row[0]: tuple(row[1:]) for row in con.execute(f"SELECT v, {tests} FROM texts").fetchall()}


def _strict_type(value: str, casts: tuple[bool, ...]) -> pa.DataType:
    for (name, arrow_type), casts_to in zip(_CANDIDATES, casts, strict=True):
        shape = _STRICT_SHAPES.get(name)
        if casts_to and (shape is None or shape.fullmatch(value)):
            return arrow_type
    return pa.string()


def _values(
    con: duckdb.DuckDBPyConnection, arrow_type: pa.DataType, raw: set[str | None]
) -> dict[str | None, pa.Scalar]:
    """Each directory value (None: the key is absent from a path) as the key's value, cast by DuckDB."""
    values = {value: pa.scalar(None, arrow_type) for value in raw if value is None or _is_null(value)}
    decoded = {value: unquote(value, errors="strict") for value in raw if value not in values}
    if pa.types.is_string(arrow_type):
        return values | {value: pa.scalar(text, arrow_type) for value, text in decoded.items()}
    sql_type = next(name for name, candidate in _CANDIDATES if candidate == arrow_type)
    con.register("texts", pa.table({"v": pa.array(sorted(set(decoded.values())), pa.string())}))
    cast = con.execute(f"SELECT v, CAST(v AS {sql_type}) AS typed FROM texts").to_arrow_table()
    typed = dict(zip(cast.column("v").to_pylist(), cast.column("typed").cast(arrow_type), strict=True))
    return values | {value: typed[text] for value, text in decoded.items()}


def _equals(column: str, value: pa.Scalar) -> ds.Expression:
    return pc.field(column).is_null() if not value.is_valid else pc.field(column) == value
