"""The catalog commands of the CLI: aligned tables, --json, secrets only by reference."""

from __future__ import annotations

import json

import pytest

from nexus_flight.catalog.cli import format_table, main
from nexus_flight.catalog.history import QueryRecord, record_query
from nexus_flight.catalog.schema_cache import cached_schema
from nexus_flight.catalog.store import CatalogStore

SECRET = "cli-Secret-pw-314"


@pytest.fixture
def cli(tmp_path, master_key, monkeypatch, capsys):
    monkeypatch.setenv("NF_TEST_PW", SECRET)
    base = ["--data-dir", str(tmp_path / "data")]

    def run(*argv, expect=0):
        code = main([*argv[:2], *base, *argv[2:]] if argv[0] in ("sources", "vault") else [argv[0], *base, *argv[1:]])
        out, err = capsys.readouterr()
        assert code == expect, (out, err)
        assert SECRET not in out and SECRET not in err
        return out, err

    run.data_dir = tmp_path / "data"
    return run


def test_sources_commands(cli):
    out, _ = cli(
        "sources",
        "add",
        "sales",
        "--type",
        "postgresql",
        "-o",
        "host=127.0.0.1",
        "-o",
        "port=5432",
        "-o",
        "username=postgres",
        "-o",
        "database=test",
        "--secret",
        "password=${env:NF_TEST_PW}",
        "--json",
    )
    shown = json.loads(out)
    assert shown["config"] == {
        "host": "127.0.0.1",
        "port": 5432,
        "username": "postgres",
        "database": "test",
        "password": "***",
    }
    cli("sources", "add", "mem", "--type", "duckdb", "-o", "memory_limit=1GB")
    out, _ = cli("sources", "list")
    lines = out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "TYPE",
        "FAMILY",
        "STATUS",
        "AUTH_TYPE",
        "HEALTH_FAILURES",
        "LAST_ERROR",
    ]
    assert lines[1].split()[:4] == ["mem", "duckdb", "duckdb", "draft"]
    assert lines[2].split()[:4] == ["sales", "postgresql", "postgres", "draft"]
    assert lines[0].index("TYPE") == lines[1].index("duckdb") == lines[2].index("postgresql")  # aligned
    out, _ = cli("sources", "show", "sales")
    assert "password" in out and "***" in out
    out, _ = cli("sources", "disable", "sales", "--json")
    assert json.loads(out)["status"] == "inactive"
    _, err = cli("sources", "test", "sales", expect=2)
    assert err.startswith("error: DS-011")
    out, _ = cli("sources", "remove", "mem", "--json")
    assert json.loads(out) == {"name": "mem", "removed": True}
    _, err = cli("sources", "show", "mem", expect=2)
    assert "no source named 'mem'" in err


def test_enable_tests_the_source_for_real(cli):
    cli("sources", "add", "ora", "--type", "oracle", "-o", "host=db.example", "--json")
    cli("sources", "disable", "ora")
    out, _ = cli("sources", "enable", "ora", "--json", expect=1)
    result = json.loads(out)
    # The oracle family has no adapter: the test fails honestly and says why.
    assert result["status"] == "error" and result["last_error"].startswith("DS-010:")


def test_an_option_that_opens_toml_must_be_toml(cli, tmp_path):
    # A missing comma: the parser's own message, with the column in the value as typed, not "DS-004".
    _, err = cli("sources", "add", "lake", "--type", "local_files", "-o",
                 f'tables=[{{name = "a" location = "{tmp_path}"}}]', expect=2)
    assert err.strip() == "error: -o tables is not valid TOML: Unclosed inline table (line 1, column 14)"
    _, err = cli("sources", "add", "lake", "--type", "local_files", "-o", "tables=[", expect=2)
    assert "-o tables is not valid TOML" in err and "DS-004" not in err
    out, _ = cli("sources", "add", "lake", "--type", "local_files", "-o",
                 f'tables=[{{name = "a", location = "{tmp_path}"}}]', "--json")
    assert json.loads(out)["config"]["tables"] == [{"name": "a", "location": str(tmp_path)}]
    out, _ = cli("sources", "add", "pg", "--type", "postgresql", "-o", "host=db.example", "-o", "database=x y",
                 "--json")  # text that opens no array or table stays text
    assert json.loads(out)["config"]["database"] == "x y"


def test_literal_secrets_are_refused(cli):
    _, err = cli(
        "sources",
        "add",
        "s",
        "--type",
        "postgresql",
        "-o",
        "host=h",
        "--secret",
        "password=hunter2",
        expect=2,
    )
    assert "CV-007" in err and "hunter2" not in err


def test_rule_errors_reach_the_user(cli):
    _, err = cli("sources", "add", "s", "--type", "postgress", "-o", "host=h", "-o", "database=d", expect=2)
    assert err.strip() == "error: DS-003: unknown source type 'postgress'; did you mean 'postgresql'?"


def test_history_command(cli, keys):
    cli("sources", "add", "mem", "--type", "duckdb")
    store = CatalogStore(data_dir=cli.data_dir, keys=keys)
    record_query(store, QueryRecord("SELECT 1", "success", source="mem", user="alice", rows=1, total_ms=3.25))
    record_query(store, QueryRecord("SELECT x", "error", source="mem", user="bob", error="no column x"))
    store.close()
    out, _ = cli("history", "--user", "alice")
    assert "SELECT 1" in out and "SELECT x" not in out and "3.2" in out
    out, _ = cli("history", "--status", "error", "--since", "1h", "--json")
    (row,) = json.loads(out)
    assert row["error_message"] == "no column x"
    out, _ = cli("history", "--source", "other")
    assert out.strip() == "(none)"


def test_vault_rotate_command(cli, monkeypatch):
    from tests.catalog.conftest import new_key_text

    cli(
        "sources",
        "add",
        "sales",
        "--type",
        "postgresql",
        "-o",
        "host=h",
        "-o",
        "database=d",
        "--secret",
        "password=${env:NF_TEST_PW}",
    )
    import os

    out, _ = cli("vault", "rotate")  # the current key alone: nothing to re-seal, nothing to hand over
    assert "nothing to do" in out.lower().replace("_", " ") and "finish-rotation" not in out
    before = json.loads(cli("vault", "rotate", "--json")[0])
    assert "next" not in before and before["rotated"] == before["handovers"] == 0
    monkeypatch.setenv("NEXUS_FLIGHT_OLD_MASTER_KEYS", os.environ["NEXUS_FLIGHT_MASTER_KEY"])
    monkeypatch.setenv("NEXUS_FLIGHT_MASTER_KEY", new_key_text())
    out, _ = cli("vault", "rotate", "--json")
    result = json.loads(out)
    assert result["rotated"] == 1 and result["records_by_key_id"] == {result["current_key_id"]: 1}
    assert "finish-rotation" in result["next"] and "nothing_to_do" not in result
    again = json.loads(cli("vault", "rotate", "--json")[0])  # re-run before finishing: the hand-over still waits
    assert again["rotated"] == 0 and "finish-rotation" in again["next"]
    out, _ = cli("vault", "status")
    assert result["current_key_id"] in out


def test_format_table_aligns_columns():
    text = format_table([{"a": "x", "bb": 1}, {"a": "longer", "bb": None}])
    assert text.splitlines() == ["A       BB", "x       1", "longer"]


def test_test_refresh_and_diff_schema_on_a_real_duckdb_file(cli, tmp_path):
    import duckdb

    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE items (id INTEGER, name VARCHAR)")
    con.close()
    cli("sources", "add", "shop", "--type", "duckdb", "-o", f"path={path}")
    out, _ = cli("sources", "test", "shop", "--json")
    assert json.loads(out) == {"name": "shop", "status": "active", "last_error": None}
    first = json.loads(cli("sources", "refresh-schema", "shop", "--json")[0])
    assert first["changed"] and first["previous_version"] is None
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE items ADD COLUMN price DOUBLE")
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.close()
    second = json.loads(cli("sources", "refresh-schema", "shop", "--json")[0])
    assert second["changed"] and second["previous_version"] == first["version_id"]
    out, _ = cli("sources", "diff-schema", "shop")
    lines = out.splitlines()
    assert lines[0].split() == ["CHANGE", "TABLE", "DETAIL"]
    assert any(line.split()[:3] == ["added", "table", "main.orders"] for line in lines)
    assert any(line.split() == ["added", "column", "main.items", "price"] for line in lines)
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["added_tables"] == ["main.orders"]


def test_diff_schema_says_a_table_was_replaced_by_a_view_of_the_same_columns(cli, tmp_path):
    """A real DuckDB file: ``items`` becomes a view over a renamed table (same columns), then a table again."""
    import duckdb

    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE items (id INTEGER, name VARCHAR)")
    cli("sources", "add", "shop", "--type", "duckdb", "-o", f"path={path}")
    cli("sources", "refresh-schema", "shop")
    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE items RENAME TO items_2026")
        con.execute("CREATE VIEW items AS SELECT * FROM items_2026")
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    assert kinds == {"items": "VIEW", "items_2026": "BASE TABLE"}  # the engine's own word for it
    cli("sources", "refresh-schema", "shop")
    out, _ = cli("sources", "diff-schema", "shop")
    assert [line.split() for line in out.splitlines()[1:]] == [
        ["added", "table", "main.items_2026"],
        ["changed", "kind", "main.items", "TABLE", "->", "VIEW"],
    ]
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["changed_kinds"] == [{"table": "main.items", "old_kind": "TABLE", "new_kind": "VIEW"}]
    assert diff["changed_tables"] == []  # the view has the table's columns: nothing else to say about it

    with duckdb.connect(str(path)) as con:
        con.execute("DROP VIEW items")
        con.execute("ALTER TABLE items_2026 RENAME TO items")
    cli("sources", "refresh-schema", "shop")
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["changed_kinds"] == [{"table": "main.items", "old_kind": "VIEW", "new_kind": "TABLE"}]
    assert diff["removed_tables"] == ["main.items_2026"]


def test_refresh_schema_names_a_view_it_cannot_describe_and_keeps_the_rest(cli, tmp_path):
    import duckdb

    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE items (id INTEGER)")
        con.execute("CREATE TABLE old_prices (id INTEGER)")
        con.execute("CREATE VIEW prices AS SELECT id FROM old_prices")
        con.execute("DROP TABLE old_prices")
        with pytest.raises(duckdb.CatalogException) as engine:
            con.execute("SELECT * FROM prices")
    cli("sources", "add", "shop", "--type", "duckdb", "-o", f"path={path}")
    result = json.loads(cli("sources", "refresh-schema", "shop", "--json")[0])
    assert result["unreadable"] == {"main.prices": f"[duckdb] {str(engine.value).splitlines()[0]}"}
    out, _ = cli("sources", "refresh-schema", "shop")
    assert "Table with name old_prices does not exist" in out
    store = CatalogStore(data_dir=cli.data_dir)
    try:
        tables = cached_schema(store, "shop").content["schemas"]["main"]
    finally:
        store.close()
    assert [c["name"] for c in tables["items"]["columns"]] == ["id"]
    assert tables["prices"]["type"] == "VIEW" and tables["prices"]["columns"] == []


def test_diff_schema_says_a_view_became_unreadable_and_readable_again_not_that_its_columns_went(cli, tmp_path):
    """A view over two tables of a real DuckDB file: one dropped, then the other instead, then both back."""
    import duckdb

    path = tmp_path / "shop.duckdb"

    def duck(*statements: str) -> str | None:
        """Run ``statements`` in DuckDB; what DuckDB itself answers to ``SELECT * FROM prices`` then."""
        with duckdb.connect(str(path)) as con:
            for statement in statements:
                con.execute(statement)
            try:
                con.execute("SELECT * FROM prices")
            except duckdb.CatalogException as exc:
                return f"[duckdb] {str(exc).splitlines()[0]}"
        return None

    def refreshed() -> str:
        result = json.loads(cli("sources", "refresh-schema", "shop", "--json")[0])
        assert result["changed"]
        return result["version_id"]

    assert duck("CREATE TABLE items (id INTEGER, name VARCHAR)", "CREATE TABLE fx (id INTEGER, rate DOUBLE)",
                "CREATE VIEW prices AS SELECT items.id, name, rate FROM items JOIN fx USING (id)") is None
    cli("sources", "add", "shop", "--type", "duckdb", "-o", f"path={path}")
    readable = refreshed()

    items_gone = duck("DROP TABLE items")
    assert "items does not exist" in items_gone
    refreshed()
    out, _ = cli("sources", "diff-schema", "shop")
    lines = out.splitlines()
    assert lines[0].split() == ["CHANGE", "TABLE", "DETAIL"]
    assert len(lines) == 3  # the view, and the dropped table; no column of the view is said to be removed
    assert lines[1].split() == ["removed", "table", "main.items"]
    assert lines[2].split()[:4] == ["became", "unreadable", "main.prices", "[duckdb]"]
    assert lines[2].endswith(items_gone)
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["changed_tables"] == [] and diff["readable_again_tables"] == []
    assert diff["unreadable_tables"] == [{"table": "main.prices", "reason": items_gone, "previous_reason": None}]

    fx_gone = duck("CREATE TABLE items (id INTEGER, name VARCHAR)", "DROP TABLE fx")
    assert "fx does not exist" in fx_gone
    refreshed()
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["unreadable_tables"] == [{"table": "main.prices", "reason": fx_gone, "previous_reason": items_gone}]
    out, _ = cli("sources", "diff-schema", "shop")
    assert any(line.split()[:3] == ["still", "unreadable", "main.prices"] and line.endswith(f"(was: {items_gone})")
               for line in out.splitlines())

    assert duck("CREATE TABLE fx (id INTEGER, rate DOUBLE)") is None
    again = refreshed()
    out, _ = cli("sources", "diff-schema", "shop")
    assert [line.split() for line in out.splitlines()[1:]] == [
        ["added", "table", "main.fx"],
        ["readable", "again", "main.prices", "columns:", "id,", "name,", "rate"],
    ]
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["readable_again_tables"] == [
        {"table": "main.prices", "columns": ["id", "name", "rate"], "previous_reason": fx_gone}
    ]
    out, _ = cli("sources", "diff-schema", "shop", "--from", readable, "--to", again)
    assert out.strip() == f"no changes between {readable} and {again}"

    # A view added already broken is an added table with the engine's reason, not one with no columns.
    duck("CREATE TABLE draft (rate DOUBLE)", "CREATE VIEW rates AS SELECT rate FROM draft", "DROP TABLE draft")
    with duckdb.connect(str(path)) as con, pytest.raises(duckdb.CatalogException) as broken:
        con.execute("SELECT * FROM rates")
    rates_gone = f"[duckdb] {str(broken.value).splitlines()[0]}"
    refreshed()
    diff = json.loads(cli("sources", "diff-schema", "shop", "--json")[0])
    assert diff["added_tables"] == ["main.rates"] and diff["removed_tables"] == []
    assert diff["unreadable_tables"] == [{"table": "main.rates", "reason": rates_gone, "previous_reason": None}]
    out, _ = cli("sources", "diff-schema", "shop")
    assert out.splitlines()[1].split()[:4] == ["added", "table", "main.rates", "unreadable:"]
    assert out.splitlines()[1].endswith(rates_gone) and len(out.splitlines()) == 2


def test_diff_schema_notices_set_not_null_and_a_longer_varchar_on_postgresql(cli, postgres_server):
    """Arrow sees neither change (int32 stays int32, text stays text): the database's own names and NOT NULL do."""
    import uuid

    import psycopg

    database = f"nf_diff_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(database)
    with psycopg.connect(postgres_server.dsn(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer, name varchar(25))")
    options = [f"-o={k}={v}" for k, v in postgres_server.options(database).items()]
    cli("sources", "add", "pgshop", "--type", "postgresql", *options)
    cli("sources", "refresh-schema", "pgshop")
    with psycopg.connect(postgres_server.dsn(database), autocommit=True) as conn:
        conn.execute("ALTER TABLE items ALTER COLUMN id SET NOT NULL")
        conn.execute("ALTER TABLE items ALTER COLUMN name TYPE varchar(40)")
    assert json.loads(cli("sources", "refresh-schema", "pgshop", "--json")[0])["changed"]
    diff = json.loads(cli("sources", "diff-schema", "pgshop", "--json")[0])
    [items] = diff["changed_tables"]
    assert sorted(items["changed_columns"], key=lambda c: c["name"]) == [
        {"name": "id", "old_type": "integer", "new_type": "integer", "old_nullable": True, "new_nullable": False},
        {
            "name": "name",
            "old_type": "character varying(25)",
            "new_type": "character varying(40)",
            "old_nullable": True,
            "new_nullable": True,
        },
    ]
    out, _ = cli("sources", "diff-schema", "pgshop")
    assert any(line.endswith("id: integer -> integer (not null)") for line in out.splitlines())


@pytest.mark.parametrize("argv", [("history", "--since", "garbage"), ("audit", "--since", "3q"),
                                  ("keys", "create", "carol", "k", "--expires", "5x")])
def test_a_time_that_is_none_says_what_a_time_is(argv, capsys):
    from nexus_flight.server.app.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(list(argv))
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {argv[-2]}: {argv[-1]!r} is neither a duration like 30m, 12h or 7d nor an ISO time" in error


def test_the_log_level_is_one_of_those_the_help_names(capsys):
    from nexus_flight.server.app.cli import build_parser

    assert build_parser().parse_args(["--log-level", "warning", "sources", "list"]).log_level == "WARNING"
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--log-level", "loud", "sources", "list"])
    assert exited.value.code == 2 and "argument --log-level: invalid choice" in capsys.readouterr().err


def test_a_secret_read_from_empty_stdin_is_refused_and_the_stored_one_stays(cli, monkeypatch):
    """`-s password=-` in a script without input must not replace the source's password with nothing."""
    import io

    cli("sources", "add", "sales", "--type", "postgresql", "-o", "host=127.0.0.1", "-o", "database=test",
        "-s", "password=${env:NF_TEST_PW}")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    _, err = cli("sources", "update", "sales", "-s", "password=-", expect=2)
    assert "error: --secret password: - read nothing" in err
    store = CatalogStore(data_dir=cli.data_dir)
    try:
        assert store.source_spec("sales").secrets["password"] == SECRET
    finally:
        store.close()
