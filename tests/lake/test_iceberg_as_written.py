"""Iceberg tables as pyiceberg writes them beyond a plain append, each answer compared with pyiceberg's own read.

The reference is ``table.scan(...).to_arrow()`` on a SQL catalog in SQLite. pyiceberg's ``delete(filter)``
rewrites the files it touches (copy-on-write, also under ``write.delete.mode=merge-on-read``): it writes no
delete files, so those are not produced here.
"""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from decimal import Decimal

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.lake.conftest import require_modules

require_modules("pyiceberg", "pyiceberg_core")  # pyiceberg_core: writing day/bucket/truncate partitions

from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual  # noqa: E402
from pyiceberg.partitioning import PartitionField, PartitionSpec  # noqa: E402
from pyiceberg.schema import Schema  # noqa: E402
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform, TruncateTransform  # noqa: E402
from pyiceberg.types import (  # noqa: E402
    BinaryType,
    DateType,
    DecimalType,
    DoubleType,
    FixedType,
    FloatType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from nexus_flight.backends.iceberg import IcebergBackend  # noqa: E402
from tests.lake.conftest import source  # noqa: E402
from tests.lake.same_answer import assert_same_answer  # noqa: E402

UTC = dt.UTC
FIRST_UUID, SECOND_UUID = uuid.UUID(int=1), uuid.UUID(int=2**100)


class Warehouse:
    """A pyiceberg SQL catalog (SQLite) with namespace ``shop``, and the gateway's source over it."""

    def __init__(self, root) -> None:
        self.properties = {"uri": f"sqlite:///{root}/catalog.db", "warehouse": f"file://{root}/warehouse"}
        self.catalog = SqlCatalog("as_written", **self.properties)
        self.catalog.create_namespace("shop")
        self.snapshots: dict[str, int] = {}

    def backend(self) -> IcebergBackend:
        tables = [{"name": name, "identifier": f"shop.{name}"} for _, name in self.catalog.list_tables("shop")]
        catalog = {"type": "sql", "name": "as_written", "properties": self.properties}
        return IcebergBackend(source("iceberg", catalog=catalog, tables=tables))

    def scan(self, name: str, **options) -> pa.Table:
        return self.catalog.load_table(f"shop.{name}").scan(**options).to_arrow()


def _events(low: int, high: int) -> pa.Table:
    ids = range(low, high)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "region": [["eu", "us", None][i % 3] for i in ids],
        "seen": pa.array([dt.datetime(2026, 1, 1 + i % 5, i % 24, tzinfo=UTC) for i in ids], pa.timestamp("us", "UTC")),
        "n": pa.array([i % 7 for i in ids], pa.int32()),
        "day": pa.array([dt.date(2026, 2, 1 + i % 3) for i in ids], pa.date32()),
    })


_EVENTS = Schema(
    NestedField(1, "id", LongType()),
    NestedField(2, "region", StringType()),
    NestedField(3, "seen", TimestamptzType()),
    NestedField(4, "n", IntegerType()),
    NestedField(5, "day", DateType()),
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    """Every table of this module, written once."""
    house = Warehouse(tmp_path_factory.mktemp("iceberg_as_written"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Merge on read is not yet supported, falling back to copy-on-write"
        _sanitized_names(house)
        _evolved_schema(house)
        _evolved_partitions(house)
        _rows_deleted_and_overwritten(house)
        _types(house)
    return house


def _sanitized_names(house: Warehouse) -> None:
    data = pa.table({"my-col": pa.array([1, 2], pa.int64()), "1st": ["a", "b"], "a.b": [1.5, None],
                     "with space": [True, False], "plain": ["x", None]})
    house.catalog.create_table("shop.names", schema=data.schema).append(data)


def _evolved_schema(house: Warehouse) -> None:
    """int→long, float→double, decimal(8,2)→decimal(12,2), a rename, a drop and an added column."""
    schema = Schema(NestedField(1, "id", IntegerType()), NestedField(2, "ratio", FloatType()),
                    NestedField(3, "price", DecimalType(8, 2)), NestedField(4, "name", StringType()),
                    NestedField(5, "gone", StringType()))
    table = house.catalog.create_table("shop.evolved", schema=schema)
    table.append(pa.table({"id": pa.array([1], pa.int32()), "ratio": pa.array([1.5], pa.float32()),
                           "price": pa.array([Decimal("1.25")], pa.decimal128(8, 2)), "name": ["a"], "gone": ["g"]}))
    house.snapshots["evolved"] = table.current_snapshot().snapshot_id
    with table.update_schema() as update:
        update.update_column("id", LongType())
        update.update_column("ratio", DoubleType())
        update.update_column("price", DecimalType(12, 2))
        update.rename_column("name", "label")
        update.delete_column("gone")
        update.add_column("extra", StringType())
    table.append(pa.table({"id": pa.array([2**40], pa.int64()), "ratio": pa.array([2.5], pa.float64()),
                           "price": pa.array([Decimal("1234567890.12")], pa.decimal128(12, 2)), "label": ["b"],
                           "extra": ["e"]}))
    # Widened only (no rename): the files are read as they are, the old ones cast.
    schema = Schema(NestedField(1, "id", IntegerType()), NestedField(2, "ratio", FloatType()),
                    NestedField(3, "price", DecimalType(8, 2)))
    table = house.catalog.create_table("shop.widened", schema=schema)
    table.append(pa.table({"id": pa.array([1], pa.int32()), "ratio": pa.array([1.5], pa.float32()),
                           "price": pa.array([Decimal("1.25")], pa.decimal128(8, 2))}))
    with table.update_schema() as update:
        update.update_column("id", LongType())
        update.update_column("ratio", DoubleType())
        update.update_column("price", DecimalType(12, 2))
    table.append(pa.table({"id": pa.array([2**40], pa.int64()), "ratio": pa.array([2.5], pa.float64()),
                           "price": pa.array([Decimal("1234567890.12")], pa.decimal128(12, 2))}))


def _evolved_partitions(house: Warehouse) -> None:
    """identity(region), then day(seen) + bucket(id), then truncate(region) + identity(day): a spec per append."""
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "region"))
    table = house.catalog.create_table("shop.repartitioned", schema=_EVENTS, partition_spec=spec)
    table.append(_events(0, 20))
    house.snapshots["repartitioned"] = table.current_snapshot().snapshot_id
    with table.update_spec() as update:
        update.add_field("seen", DayTransform(), "seen_day")
        update.add_field("id", BucketTransform(4), "id_bucket")
        update.remove_field("region")
    table.append(_events(20, 40))
    with table.update_spec() as update:
        update.add_field("region", TruncateTransform(1), "region_initial")
        update.add_identity("day")
    table.append(_events(40, 60))


def _rows_deleted_and_overwritten(house: Warehouse) -> None:
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "region"))
    table = house.catalog.create_table("shop.deleted", schema=_EVENTS, partition_spec=spec,
                                       properties={"write.delete.mode": "merge-on-read"})
    table.append(_events(0, 30))
    house.snapshots["deleted"] = table.current_snapshot().snapshot_id
    table.delete(EqualTo("n", 3))
    table = house.catalog.create_table("shop.overwritten", schema=_EVENTS)
    table.append(_events(0, 10))
    table.overwrite(_events(100, 105))
    table.overwrite(_events(200, 203), overwrite_filter=GreaterThanOrEqual("id", 103))
    table.upsert(_events(100, 102).set_column(3, "n", pa.array([99, 99], pa.int32())), join_cols=["id"])


def _types(house: Warehouse) -> None:
    schema = Schema(
        NestedField(1, "id", LongType(), required=True), NestedField(2, "seen", TimestamptzType()),
        NestedField(3, "local", TimestampType()), NestedField(4, "token", UUIDType()),
        NestedField(5, "code", FixedType(4)), NestedField(6, "blob", BinaryType()),
        NestedField(7, "amount", DecimalType(20, 4)), NestedField(8, "day", DateType()),
        NestedField(9, "clock", TimeType()),
    )
    spec = PartitionSpec(PartitionField(8, 1000, IdentityTransform(), "day"))
    table = house.catalog.create_table("shop.typed", schema=schema, partition_spec=spec)
    table.append(pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "seen": pa.array([dt.datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC), None, None],
                         pa.timestamp("us", "UTC")),
        "local": pa.array([dt.datetime(2026, 1, 1, 5), None, None], pa.timestamp("us")),
        "token": pa.array([FIRST_UUID.bytes, SECOND_UUID.bytes, None], pa.binary(16)),
        "code": pa.array([b"abcd", None, None], pa.binary(4)),
        "blob": pa.array([b"\x00\x01", b"", None], pa.binary()),
        "amount": pa.array([Decimal("12345678901234.5678"), Decimal("-0.0001"), None], pa.decimal128(20, 4)),
        "day": pa.array([dt.date(2026, 1, 1), None, None], pa.date32()),
        "clock": pa.array([dt.time(1, 2, 3), None, None], pa.time64("us")),
    }, schema=table.schema().as_arrow()))
    nested = Schema(
        NestedField(1, "id", LongType()),
        NestedField(2, "point", StructType(NestedField(3, "x", IntegerType()), NestedField(4, "tag", StringType()))),
        NestedField(5, "scores", ListType(6, LongType(), element_required=False)),
        NestedField(7, "weights", MapType(8, StringType(), 9, DoubleType(), value_required=False)),
    )
    table = house.catalog.create_table("shop.nested", schema=nested)
    table.append(pa.Table.from_pylist([
        {"id": 1, "point": {"x": 1, "tag": "a"}, "scores": [1, None, 3], "weights": [("k", 1.5)]},
        {"id": 2, "point": None, "scores": None, "weights": None},
        {"id": 3, "point": {"x": None, "tag": None}, "scores": [], "weights": []},
    ], schema=table.schema().as_arrow()))


def test_column_names_pyiceberg_writes_sanitized(warehouse):
    """pyiceberg stores ``my-col`` as ``my_x2Dcol`` in the files: read by name, those columns would be NULL."""
    with warehouse.backend() as backend:
        assert_same_answer(backend, "SELECT * FROM names", warehouse.scan("names"))
        assert_same_answer(backend, 'SELECT "1st" FROM names WHERE "my-col" = ?',
                           pa.table({"1st": ["b"]}), params=[[2]])


def test_schema_evolution(warehouse):
    with warehouse.backend() as backend:
        assert_same_answer(backend, "SELECT * FROM evolved", warehouse.scan("evolved"))
        first = warehouse.snapshots["evolved"]
        assert_same_answer(backend, f'SELECT * FROM "evolved@v{first}"', warehouse.scan("evolved", snapshot_id=first))
        assert_same_answer(backend, "SELECT * FROM widened", warehouse.scan("widened"))
        assert isinstance(backend._bind("widened").data, ds.Dataset)  # files read as they are, with pushdown
        assert_same_answer(backend, "SELECT id FROM widened WHERE price = ? OR ratio = 1.5",
                           pa.table({"id": pa.array([1], pa.int64())}), params=[[Decimal("1.25")]])


def test_partition_evolution(warehouse):
    with warehouse.backend() as backend:
        assert_same_answer(backend, "SELECT * FROM repartitioned", warehouse.scan("repartitioned"))
        assert_same_answer(backend, "SELECT id FROM repartitioned WHERE region = 'eu' AND day = DATE '2026-02-02'",
                           warehouse.scan("repartitioned", row_filter="region = 'eu' and day = '2026-02-02'",
                                          selected_fields=("id",)))
        assert_same_answer(backend, "SELECT id, seen FROM repartitioned WHERE region IS NULL AND seen >= ?",
                           warehouse.scan("repartitioned",
                                          row_filter="region is null and seen >= '2026-01-03T00:00:00+00:00'",
                                          selected_fields=("id", "seen")),
                           params=[[dt.datetime(2026, 1, 3, tzinfo=UTC)]])
        first = warehouse.snapshots["repartitioned"]
        assert_same_answer(backend, f'SELECT * FROM "repartitioned@v{first}"',
                           warehouse.scan("repartitioned", snapshot_id=first))


def test_deleted_overwritten_and_upserted_rows(warehouse):
    with warehouse.backend() as backend:
        deleted = warehouse.scan("deleted")
        assert deleted.num_rows == 30 - 4
        assert_same_answer(backend, "SELECT * FROM deleted", deleted)
        before = warehouse.snapshots["deleted"]
        assert_same_answer(backend, f'SELECT * FROM "deleted@v{before}"', warehouse.scan("deleted", snapshot_id=before))
        assert_same_answer(backend, "SELECT * FROM overwritten", warehouse.scan("overwritten"))


def test_timestamptz_uuid_fixed_binary_decimal_and_nested(warehouse):
    with warehouse.backend() as backend:
        assert_same_answer(backend, "SELECT * FROM typed", warehouse.scan("typed"))
        assert_same_answer(backend, "SELECT id FROM typed WHERE token = ?", pa.table({"id": pa.array([2], pa.int64())}),
                           params=[[str(SECOND_UUID)]])
        assert_same_answer(backend, "SELECT id FROM typed WHERE seen = TIMESTAMPTZ '2026-01-01 23:59:59.999999+00'",
                           pa.table({"id": pa.array([1], pa.int64())}))
        assert_same_answer(backend, "SELECT * FROM nested", warehouse.scan("nested"))
