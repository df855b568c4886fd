"""No plaintext secret anywhere: catalog files, PostgreSQL tables, logs, history, Arrow views, reprs."""

from __future__ import annotations

import logging

import pyarrow as pa
import pytest

from nexus_flight.catalog.config_file import load_config
from nexus_flight.catalog.health import check_source
from nexus_flight.catalog.history import QueryRecord, QueryRecorder, search_history
from nexus_flight.catalog.schema_cache import save_schema
from nexus_flight.catalog.system_tables import SYSTEM_TABLES
from nexus_flight.catalog.validation import validate_source
from nexus_flight.core.errors import GatewayError

PASSWORD = "Zq9-plaintext-PASSWORD-7731"
SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def exercise(store, postgres):
    """What a gateway does with a source's secrets: store, update, open, test, query, fail, rotate, show."""
    store.add_source("sales", "postgresql", postgres.options(), {"password": PASSWORD})
    store.add_source(
        "lake",
        "s3_parquet",
        {"tables": [{"name": "t", "location": "s3://bucket/p/"}]},
        {"s3_access_key_id": "AKIAEXAMPLE1", "s3_secret_access_key": SECRET_KEY},
        "iam",
    )
    spec = store.source_spec("sales")
    assert spec.secrets["password"] == PASSWORD  # the one place it exists: inside the backend's spec
    # A real login through the postgres family's backend (trust auth here ignores the password it sends).
    assert check_source(store, "sales").status == "active"
    store.source_spec("lake")
    recorder = QueryRecorder(store, record_parameters=True)
    recorder(QueryRecord("SELECT 1", "success", source="sales", user="alice", rows=1))
    recorder(
        QueryRecord(
            "SELECT * FROM t WHERE k = ?",
            "error",
            source="lake",
            user="bob",
            parameters=[[SECRET_KEY]],
            error=f"403: signature for {SECRET_KEY} does not match",
        )
    )
    recorder(QueryRecord("SELECT 2", "error", source="sales", error=f'password authentication failed: "{PASSWORD}"'))
    store.update_source("sales", options={"port": postgres.port}, secrets={"password": PASSWORD})
    save_schema(store, "sales", {"schemas": {"public": {"t": {"type": "TABLE", "columns": []}}}})
    texts = [repr(store), str(store), repr(store.vault), repr(store.vault.keys), repr(spec), str(spec)]
    for info in store.list_sources():
        texts += [repr(info), str(info), str(info.redacted())]
    texts.append(repr(validate_source("x", "postgresql", {"host": "h", "database": "d"}, {"password": PASSWORD})))
    try:
        store.add_source("bad", "postgresql", {"host": "h", "password": PASSWORD})
    except GatewayError as exc:
        texts += [str(exc), repr(exc), str(exc.details)]
    texts.append(str(search_history(store)))
    sink = pa.BufferOutputStream()
    for build in SYSTEM_TABLES.values():
        table = build(store)
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return "\n".join(texts).encode() + sink.getvalue().to_pybytes()


def assert_clean(blob: bytes, where: str):
    for secret in (PASSWORD, SECRET_KEY):
        assert secret.encode() not in blob, f"{secret[:4]}... found in {where}"
        assert secret.encode("utf-16-le") not in blob, f"{secret[:4]}... (utf-16) found in {where}"


@pytest.fixture
def capture_everything(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # every statement and its parameters
    yield caplog
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


def test_sqlite_catalog_files_logs_history_and_reprs(
    sqlite_store, tmp_path, capture_everything, master_key, postgres_server
):
    shown = exercise(sqlite_store, postgres_server)
    assert "INSERT INTO credential_vault" in capture_everything.text  # the statement log really ran
    assert_clean(shown, "reprs, history, system tables")
    assert_clean(capture_everything.text.encode(), "logs")
    sqlite_store.close()
    files = [p for p in (tmp_path / "data").iterdir() if p.is_file()]
    assert any(p.name == "catalog.db" for p in files)
    for path in files:
        data = path.read_bytes()
        assert_clean(data, path.name)
        assert master_key.encode() not in data
    history = search_history(sqlite_store)
    assert any("***" in (r["error_message"] or "") for r in history)


def test_postgresql_catalog_tables(pg_store, pg_schema, pg_dump, capture_everything, postgres_server):
    shown = exercise(pg_store, postgres_server)
    assert_clean(shown, "reprs, history, system tables")
    assert_clean(capture_everything.text.encode(), "logs")
    dump = pg_dump(pg_schema)
    assert '"name":"sales"' in dump and '"ciphertext":"\\\\x' in dump  # the rows really were read
    assert_clean(dump.encode(), "PostgreSQL tables")


def test_config_file_secrets_stay_secret(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "c.toml"
    path.write_text(
        '[[sources]]\nname = "s"\ntype = "postgresql"\noptions = { host = "h", database = "d" }\n'
        'secrets = { password = "${env:PW}" }\n'
    )
    config = load_config(path, {"PW": PASSWORD})
    assert_clean(f"{config!r} {config.sources!r} {config.server!r}".encode(), "config repr")
    assert_clean(caplog.text.encode(), "logs")
