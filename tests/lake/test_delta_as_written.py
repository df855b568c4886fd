"""Delta tables as delta-rs writes them beyond a plain append, each answer compared with deltalake's own read.

The reference is ``DeltaTable(...).to_pyarrow_table()`` where deltalake's pyarrow reader reads the table, and
deltalake's own engine (``DeltaTable.scan()``) where it does not: column mapping (which the pyarrow reader reads as
NULL columns), deletion vectors and v2 checkpoints (which it refuses). DuckDB's ``delta_scan`` is not installed
here. delta-rs enables deletion vectors but writes none (its DELETE rewrites the files), so a table holding actual
vectors cannot be produced here; the one below has the reader feature and a DELETE.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from tests.lake.conftest import require_modules

require_modules("deltalake")

from deltalake import DeltaTable, TableFeatures, write_deltalake  # noqa: E402
from deltalake.exceptions import DeltaProtocolError  # noqa: E402

from nexus_flight.backends.delta import DeltaBackend  # noqa: E402
from nexus_flight.core.errors import NotFoundError  # noqa: E402
from tests.lake.conftest import source, wait_a_moment  # noqa: E402
from tests.lake.same_answer import assert_same_answer  # noqa: E402

UTC = dt.UTC


def _kinds() -> pa.Table:
    """Six rows of the types partitions are made of, NULLs included."""
    return pa.table({
        "id": pa.array(range(1, 7), pa.int64()),
        "label": ["a b", "a/b", "x=y", "50%", "é", None],
        "flag": [True, False, None, True, False, None],
        "amount": pa.array([Decimal("1.10"), None, Decimal("-3.30"), Decimal("4.00"), Decimal("5.55"), None],
                           pa.decimal128(10, 2)),
        "seen_at": pa.array([dt.datetime(2026, 1, d, 10, 30, tzinfo=UTC) for d in (1, 1, 2, 2, 3)] + [None],
                            pa.timestamp("us", tz="UTC")),
        "local": pa.array([dt.datetime(2026, 1, d, 8) for d in (1, 2, 2, 3, 3)] + [None], pa.timestamp("us")),
        "day": pa.array([dt.date(2026, 2, 1), None, dt.date(2026, 2, 2), dt.date(2026, 2, 2), None, None]),
    })


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, str]:
    """Every table of this module, by name, written once."""
    root = tmp_path_factory.mktemp("delta_as_written")
    names = ("text", "times", "mapped", "mapped_id", "dv", "v2_checkpoint", "changed", "compacted")
    paths = {name: str(root / name) for name in names}
    data = _kinds()
    write_deltalake(paths["text"], data, partition_by=["label", "flag"])
    write_deltalake(paths["times"], data, partition_by=["seen_at", "local", "day"])
    write_deltalake(paths["mapped"], data, partition_by=["label", "seen_at"],
                    configuration={"delta.columnMapping.mode": "name"})
    write_deltalake(paths["mapped"], data.slice(0, 2), mode="append")
    DeltaTable(paths["mapped"]).delete("id = 1")
    write_deltalake(paths["mapped_id"], data, configuration={"delta.columnMapping.mode": "id"})
    write_deltalake(paths["dv"], data, configuration={"delta.enableDeletionVectors": "true"})
    DeltaTable(paths["dv"]).delete("id = 2")
    write_deltalake(paths["v2_checkpoint"], data.select(["id", "label"]))
    DeltaTable(paths["v2_checkpoint"]).alter.add_feature(TableFeatures.V2Checkpoint,
                                                         allow_protocol_versions_increase=True)
    write_deltalake(paths["v2_checkpoint"], data.select(["id", "label"]).slice(0, 2), mode="append")
    DeltaTable(paths["v2_checkpoint"]).create_checkpoint()
    _changes(paths["changed"], data)
    _compacted(paths["compacted"])
    return paths


@pytest.fixture(scope="module")
def commits(tmp_path_factory) -> tuple[str, dt.datetime]:
    """Versions 0-11, a checkpoint of 11, then version 12; and a moment between versions 9 and 10."""
    path = str(tmp_path_factory.mktemp("delta_commits") / "commits")
    for i in range(12):
        write_deltalake(path, pa.table({"id": pa.array([i], pa.int64()), "v": [str(i)]}), mode="append")
        if i == 9:
            between = wait_a_moment()
    DeltaTable(path).create_checkpoint()
    DeltaTable(path).delete("id = 0")  # read as the checkpoint plus one commit
    return path, between


def _changes(path: str, data: pa.Table) -> None:
    """DELETE, UPDATE, MERGE, then a merged schema (one more column)."""
    write_deltalake(path, data.select(["id", "label", "day"]), partition_by=["day"])
    DeltaTable(path).delete("id = 2")
    DeltaTable(path).update(updates={"label": "'updated'"}, predicate="id = 3")
    incoming = pa.table({"id": pa.array([4, 9], pa.int64()), "label": ["merged", "inserted"],
                         "day": pa.array([dt.date(2026, 2, 2), None])})
    (
        DeltaTable(path).merge(incoming, "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update({"label": "s.label"})
        .when_not_matched_insert({"id": "s.id", "label": "s.label", "day": "s.day"})
        .execute()
    )
    more = pa.table({"id": pa.array([10], pa.int64()), "label": ["late"], "day": pa.array([dt.date(2026, 2, 1)]),
                     "score": [2.5]})
    write_deltalake(path, more, mode="append", schema_mode="merge", partition_by=["day"])


def _compacted(path: str) -> None:
    """Small appends, a DELETE, then OPTIMIZE and a VACUUM that removes every file the latest version left."""
    for i in range(4):
        write_deltalake(path, pa.table({"id": pa.array([i, i + 100], pa.int64())}), mode="append")
    DeltaTable(path).delete("id = 1")
    DeltaTable(path).optimize.compact()
    DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def _backend(paths: dict[str, str]) -> DeltaBackend:
    return DeltaBackend(source("delta", tables=[{"name": n, "location": p} for n, p in paths.items()]))


def _deltalake_engine(path: str, version: int | None = None) -> pa.Table:
    """deltalake's own engine's read of the table, which applies column mapping and deletion vectors."""
    return pa.RecordBatchReader.from_stream(DeltaTable(path, version=version).scan()).read_all()


def test_partition_values_written_escaped_read_as_written(tables):
    """The log URI-encodes partition directories ("label=a%20b" is logged "label=a%2520b"): every value must read."""
    with _backend(tables) as backend:
        assert_same_answer(backend, "SELECT * FROM text", DeltaTable(tables["text"]).to_pyarrow_table())
        expected = pa.table({"id": pa.array([2], pa.int64())})
        assert_same_answer(backend, "SELECT id FROM text WHERE label = ?", expected, params=[["a/b"]])
        assert_same_answer(backend, "SELECT id FROM text WHERE label = '50%' OR label = 'é'",
                           pa.table({"id": pa.array([4, 5], pa.int64())}))


def test_timestamp_and_date_partitions_with_nulls(tables):
    with _backend(tables) as backend:
        assert_same_answer(backend, "SELECT * FROM times", DeltaTable(tables["times"]).to_pyarrow_table())
        at = dt.datetime(2026, 1, 2, 10, 30, tzinfo=UTC)
        assert_same_answer(backend, "SELECT id FROM times WHERE seen_at = ? AND day IS NOT NULL",
                           pa.table({"id": pa.array([3, 4], pa.int64())}), params=[[at]])
        assert_same_answer(backend, "SELECT id FROM times WHERE local = TIMESTAMP '2026-01-03 08:00:00'",
                           pa.table({"id": pa.array([4, 5], pa.int64())}))


def test_column_mapping_reads_the_logical_columns(tables):
    """Files name columns ``col-<uuid>``; the answer has the table's names and values (name and id modes)."""
    with _backend(tables) as backend:
        latest = _deltalake_engine(tables["mapped"])
        assert latest.num_rows == 6 and latest.column("amount").null_count == 3  # the data itself, not NULLs
        assert_same_answer(backend, "SELECT * FROM mapped", latest)
        assert_same_answer(backend, 'SELECT * FROM "mapped@v0"', _deltalake_engine(tables["mapped"], 0))
        assert_same_answer(backend, "SELECT id, amount FROM mapped WHERE label = ? AND seen_at IS NOT NULL",
                           pa.table({"id": pa.array([2, 2], pa.int64()),
                                     "amount": pa.array([None, None], pa.decimal128(10, 2))}), params=[["a/b"]])
        assert_same_answer(backend, "SELECT * FROM mapped_id", _deltalake_engine(tables["mapped_id"]))


def test_reader_features_the_pyarrow_reader_refuses(tables):
    """Deletion vectors and v2 checkpoints: read by deltalake's engine, not refused, not read without them."""
    with _backend(tables) as backend:
        for name in ("dv", "v2_checkpoint"):
            with pytest.raises(DeltaProtocolError, match="reader features"):
                DeltaTable(tables[name]).to_pyarrow_table()
        dv = _deltalake_engine(tables["dv"])
        assert sorted(dv.column("id").to_pylist()) == [1, 3, 4, 5, 6]
        assert_same_answer(backend, "SELECT * FROM dv", dv)
        assert_same_answer(backend, "SELECT id FROM dv WHERE label = ?", pa.table({"id": pa.array([3], pa.int64())}),
                           params=[["x=y"]])
        assert_same_answer(backend, 'SELECT * FROM "dv@v0"', _deltalake_engine(tables["dv"], 0))
        assert_same_answer(backend, "SELECT * FROM v2_checkpoint", _deltalake_engine(tables["v2_checkpoint"]))


def test_delete_update_merge_and_merged_schema(tables):
    path = tables["changed"]
    with _backend(tables) as backend:
        expected = DeltaTable(path).to_pyarrow_table()
        assert expected.column_names == ["id", "label", "day", "score"]
        assert_same_answer(backend, "SELECT * FROM changed", expected)
        assert_same_answer(backend, "SELECT id, score FROM changed WHERE day = ?",
                           expected.filter(pa.compute.equal(expected["day"], dt.date(2026, 2, 1)))
                           .select(["id", "score"]), params=[[dt.date(2026, 2, 1)]])
        for version in (1, 3):  # after DELETE; after MERGE (before the merged schema)
            assert_same_answer(backend, f'SELECT * FROM "changed@v{version}"',
                               DeltaTable(path, version=version).to_pyarrow_table())


def test_optimized_and_vacuumed_table(tables):
    with _backend(tables) as backend:
        assert_same_answer(backend, "SELECT * FROM compacted", DeltaTable(tables["compacted"]).to_pyarrow_table())
        # Version 0's files were vacuumed: NOT_FOUND naming the file, never the server's path to it.
        with pytest.raises(NotFoundError, match=r"a data file of the table is gone \(part-[^/]*\.parquet\)") as got:
            assert_same_answer(backend, 'SELECT * FROM "compacted@v0"', pa.table({}))
        assert tables["compacted"] not in str(got.value)


def test_checkpointed_table_by_version_and_timestamp(commits):
    path, between = commits
    with _backend({"commits": path}) as backend:
        assert_same_answer(backend, "SELECT * FROM commits", DeltaTable(path).to_pyarrow_table())
        assert_same_answer(backend, 'SELECT * FROM "commits@v4"', DeltaTable(path, version=4).to_pyarrow_table())
        as_of = DeltaTable(path)
        as_of.load_as_version(between)
        assert as_of.version() == 9
        assert_same_answer(backend, f'SELECT * FROM "commits@{between.isoformat()}"', as_of.to_pyarrow_table())
        with pytest.raises(NotFoundError, match="has no version 99 \\(the latest is 12\\)"):
            assert_same_answer(backend, 'SELECT * FROM "commits@v99"', pa.table({}))


def test_generated_column_and_constraint_tables_read_as_written(tmp_path):
    from deltalake import Field, Schema

    generated = str(tmp_path / "generated")
    schema = Schema([Field("id", "long", True), Field("twice", "long", True,
                                                        metadata={"delta.generationExpression": "id * 2"})])
    DeltaTable.create(generated, schema=schema)
    write_deltalake(generated, pa.table({"id": pa.array([1, 2], pa.int64())}), mode="append")
    checked = str(tmp_path / "checked")
    write_deltalake(checked, pa.table({"id": pa.array([1, 2], pa.int64())}))
    DeltaTable(checked).alter.add_constraint({"positive": "id > 0"})
    with _backend({"generated": generated, "checked": checked}) as backend:
        got = assert_same_answer(backend, "SELECT * FROM generated", DeltaTable(generated).to_pyarrow_table())
        assert got.column("twice").to_pylist() != [None, None]
        assert_same_answer(backend, "SELECT * FROM checked", DeltaTable(checked).to_pyarrow_table())
