"""The TOML configuration file: settings, ${env:NAME} secrets, environment overrides, and clear failures."""

from __future__ import annotations

import pytest

from nexus_flight.catalog.config_file import apply_sources, load_config
from nexus_flight.core.errors import ConfigError

GOOD = """
[server]
port = 4000
data_dir = "/tmp/nf"
memory_limit = "2GB"

[server.auth]
enabled = true
methods = ["password", "api_key"]

[[sources]]
name = "sales"
type = "postgresql"
options = { host = "127.0.0.1", port = 5432, database = "test", username = "postgres" }
secrets = { password = "${env:NF_SALES_PW}" }

[[sources]]
name = "lake"
type = "s3_parquet"
auth_type = "iam"
options = { s3_region = "eu-west-1", tables = [{ name = "sales", location = "s3://bucket/sales/" }] }
secrets = { s3_access_key_id = "${env:NF_AK}", s3_secret_access_key = "${env:NF_SK}" }
"""
ENV = {
    "NF_ADMIN_PW": "admin-pw-1",
    "NF_SALES_PW": "sales-pw-1",
    "NF_AK": "AKIAEXAMPLE",
    "NF_SK": "sk-example-1",
}


def write(tmp_path, text):
    path = tmp_path / "nexus-flight.toml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path):
    config = load_config(write(tmp_path, GOOD), ENV)
    assert config.server.port == 4000 and config.server.host == "127.0.0.1"
    assert config.server.auth.enabled and config.server.auth.methods == ["password", "api_key"]
    assert "admin-pw-1" not in repr(config) and "sales-pw-1" not in repr(config)
    sales, lake = config.sources
    assert sales.secrets["password"].get_secret_value() == "sales-pw-1"
    assert lake.auth_type == "iam" and lake.options["s3_region"] == "eu-west-1"
    assert lake.options["tables"] == [{"name": "sales", "location": "s3://bucket/sales/", "format": "parquet"}]


def test_environment_overrides(tmp_path):
    env = {
        **ENV,
        "NEXUS_FLIGHT__SERVER__PORT": "4100",
        "NEXUS_FLIGHT__SERVER__RECORD_PARAMETERS": "true",
        "NEXUS_FLIGHT__SOURCES__SALES__OPTIONS__HOST": "db.internal",
        "NEXUS_FLIGHT__SERVER__AUTH__TOKEN_TTL_SECONDS": "600",
    }
    config = load_config(write(tmp_path, GOOD), env)
    assert config.server.port == 4100 and config.server.record_parameters is True
    assert config.server.auth.token_ttl_seconds == 600
    assert config.sources[0].options["host"] == "db.internal"


def test_no_file_means_defaults_plus_environment():
    config = load_config(None, {"NEXUS_FLIGHT__SERVER__CATALOG_URL": "postgresql+psycopg://x@h/db"})
    assert config.server.catalog_url == "postgresql+psycopg://x@h/db" and config.sources == []


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[server]\nport = 70000\n", {}, "server.port: Input should be less than or equal to 65535"),
        ("[server]\nprot = 1\n", {}, "server.prot: unknown setting"),
        ("[server]\nmemory_limit = 'lots'\n", {}, "server.memory_limit: Value error, must be a size like"),
        ("[server]\nlimit_counts = 'memory'\n", {},
         r"server.limit_counts: Input should be 'catalog' or 'process'"),
        ("[server\n", {}, "not valid TOML"),
        (
            GOOD.replace("${env:NF_SALES_PW}", "plain-text-pw"),
            ENV,
            r"^sources\[0\] \(sales\): CV-007: sources\[0\] \(sales\).secrets.password must be a reference",
        ),
        (
            GOOD,
            {k: v for k, v in ENV.items() if k != "NF_SK"},
            r"sources\[1\] \(lake\).secrets.s3_secret_access_key: the environment variable NF_SK is not set",
        ),
        (GOOD.replace("port = 5432", "port = 0"), ENV, r"^sources\[0\] \(sales\): DS-006: port 0"),
        (GOOD.replace('"lake"', '"Sales"'), ENV, r"^sources\[1\] \(Sales\): DS-002"),
        (
            GOOD.replace('"s3://bucket/sales/"', '"gs://bucket/sales/"'),
            ENV,
            r"^sources\[1\] \(lake\): DS-015",
        ),
        (GOOD.replace('methods = ["password", "api_key"]', 'methods = ["password", "ldap"]'), ENV,
         r"^server.auth.methods.1: Input should be"),
        (GOOD.replace('methods = ["password", "api_key"]', 'methods = ["oidc"]'), ENV, r"^server.auth: .*AU-010"),
    ],
)
def test_invalid_files_name_the_field_and_reason(tmp_path, text, env, message):
    with pytest.raises(ConfigError, match=message) as excinfo:
        load_config(write(tmp_path, text), env)
    assert "plain-text-pw" not in excinfo.value.message and "hunter2" not in excinfo.value.message


def test_override_of_a_missing_source_fails(tmp_path):
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        load_config(write(tmp_path, GOOD), {**ENV, "NEXUS_FLIGHT__SOURCES__NOPE__OPTIONS__HOST": "x"})


def test_apply_sources_adds_then_leaves_unchanged_then_updates(sqlite_store, tmp_path):
    path = write(tmp_path, GOOD)
    assert apply_sources(sqlite_store, load_config(path, ENV)) == {"sales": "added", "lake": "added"}
    sqlite_store.set_status("sales", "active")
    assert apply_sources(sqlite_store, load_config(path, ENV)) == {"sales": "unchanged", "lake": "unchanged"}
    assert sqlite_store.get_source("sales").status == "active"
    changed = {**ENV, "NF_SALES_PW": "rotated-pw-2"}
    assert apply_sources(sqlite_store, load_config(path, changed))["sales"] == "updated"
    assert sqlite_store.source_spec("sales").secrets["password"] == "rotated-pw-2"
    assert sqlite_store.get_source("sales").status == "draft"
