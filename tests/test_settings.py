"""Server settings: one model, and a setting comes from the default < the file < the environment < a flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from nexus_flight.core.errors import ConfigError
from nexus_flight.core.settings import DEFAULT_PORT, ServerSettings, load_settings
from nexus_flight.server.app.cli import build_parser, given_settings, with_flag

ROOT = Path(__file__).resolve().parents[1]


def flags(*argv: str) -> dict:
    return given_settings(build_parser().parse_args(["serve", *argv]))


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[server]\nport = 4000\nquery_timeout_seconds = 60\nmemory_limit = "1GB"\n')
    return path


def test_default_then_file_then_environment_then_flag(config_file):
    assert load_settings(None, env={}).port == DEFAULT_PORT
    assert load_settings(config_file, env={}).port == 4000
    env = {"NEXUS_FLIGHT__SERVER__PORT": "4100"}
    assert load_settings(config_file, env=env).port == 4100
    assert load_settings(config_file, env=env, flags=flags("--port", "4200")).port == 4200
    # Settings nobody overrides keep the file's value, and the file's keep the default's.
    settings = load_settings(config_file, env=env, flags=flags("--port", "4200"))
    assert (settings.query_timeout_seconds, settings.memory_limit, settings.max_joins) == (60, "1GB", 64)


def test_a_flag_equal_to_the_default_still_wins(config_file):
    env = {"NEXUS_FLIGHT__SERVER__PORT": "4100"}
    assert load_settings(config_file, env=env, flags=flags("--port", str(DEFAULT_PORT))).port == DEFAULT_PORT
    assert load_settings(config_file, env=env, flags=flags()).port == 4100  # a flag not given is no flag


def test_flags_name_settings_and_only_given_ones_count(tmp_path):
    assert flags() == {}
    assert flags("--no-demo") == {"demo_scale": None}
    assert flags("--demo-scale", "1") == {"demo_scale": 1.0}
    assert flags("--query-timeout", "3") == {"query_timeout_seconds": 3.0}
    assert flags("--allow-unauthenticated-remote") == {"allow_unauthenticated_remote": True}
    given = flags("--tls-cert", str(tmp_path / "c.pem"), "--tls-key", str(tmp_path / "k.pem"))
    settings = load_settings(None, env={}, flags=given)
    assert (settings.tls.cert_file, settings.tls.key_file) == (tmp_path / "c.pem", tmp_path / "k.pem")


def test_every_serve_flag_sets_a_setting():
    """One knob, one declaration: a flag's dest is a ServerSettings field (dotted for nested tables)."""
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    dests = {a.dest for a in serve._actions if a.dest not in ("help", "config")}
    for dest in dests:
        head, _, rest = dest.partition(".")
        assert head in ServerSettings.model_fields, dest
        if rest:
            assert rest in ServerSettings.model_fields[head].annotation.__args__[0].model_fields, dest


def test_nested_tables_and_none_from_the_environment(config_file):
    env = {
        "NEXUS_FLIGHT__SERVER__TLS__CERT_FILE": "/etc/nf/cert.pem",
        "NEXUS_FLIGHT__SERVER__TLS__KEY_FILE": "/etc/nf/key.pem",
        "NEXUS_FLIGHT__SERVER__PROCESS_MEMORY_LIMIT": "none",
        "NEXUS_FLIGHT__SERVER__DEMO_SCALE": "none",
    }
    settings = load_settings(config_file, env=env)
    assert settings.tls.key_file == Path("/etc/nf/key.pem")
    assert settings.process_memory_limit is None and settings.demo_scale is None
    # A flag on one field of a table keeps the others the environment set.
    settings = load_settings(config_file, env=env, flags=flags("--tls-key", "/other/key.pem"))
    assert (settings.tls.cert_file, settings.tls.key_file) == (Path("/etc/nf/cert.pem"), Path("/other/key.pem"))


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--port", "70000"), {}, "server.port: Input should be less than or equal to 65535"),
        ((), {"NEXUS_FLIGHT__SERVER__PORT": "many"}, "server.port: Input should be a valid integer"),
        ((), {"NEXUS_FLIGHT__SERVER__PROT": "1"}, "server.prot: unknown setting"),
        (("--tls-cert", "/c.pem"), {}, "server.tls.key_file: Field required"),
        ((), {"NEXUS_FLIGHT__SERVER__MEMORY_LIMIT": "lots"}, "server.memory_limit: Value error, must be a size"),
    ],
)
def test_a_bad_setting_names_itself_wherever_it_came_from(argv, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(None, env=env, flags=flags(*argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--tls-cert", "/c.pem"), "error: server.tls.key_file (--tls-key): Field required"),
        (("--port", "70000"), "error: server.port (--port): Input should be less than or equal to 65535"),
        (("--query-timeout", "-1"), "error: server.query_timeout_seconds (--query-timeout): Input should be greater"),
    ],
)
def test_serve_names_the_flag_of_a_bad_setting(tmp_path, argv, message):
    """The file's name of the setting and the flag that sets it: the message reads right whichever was given."""
    refused = subprocess.run(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--data-dir", str(tmp_path), *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_setting_without_a_flag_keeps_its_message():
    assert with_flag("server.prot: unknown setting") == "server.prot: unknown setting"
    assert with_flag("sources[0] (sales): DS-006: port 0") == "sources[0] (sales): DS-006: port 0"
    build_parser()
    assert with_flag("server.demo_scale: bad") == "server.demo_scale (--demo-scale): bad"


def test_server_settings_are_one_declaration():
    """The file's [server] keys, the environment's names and the gateway's settings are the same fields."""
    settings = load_settings(None, env={"NEXUS_FLIGHT__SERVER__MAX_QUERY_LENGTH": "5000"})
    assert settings.validation_limits.max_length == 5000
    assert ServerSettings().process_memory_limit == "4GB" and ServerSettings().data_dir == Path("data")


def test_serve_takes_the_flag_over_the_environment_even_at_the_default(demo_data_dir):
    """The environment asks for a non-loopback address (refused without authentication); --host 127.0.0.1, the
    default, wins and the server starts."""
    env = {**os.environ, "NEXUS_FLIGHT__SERVER__HOST": "0.0.0.0", "NEXUS_FLIGHT__SERVER__HEALTH_CHECKS": "false"}
    refused = subprocess.run(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--port", "0", "--data-dir", str(demo_data_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )
    assert refused.returncode == 2 and "refusing to bind 0.0.0.0" in refused.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "nexus_flight.server", "serve", "--port", "0", "--data-dir", str(demo_data_dir),
         "--host", "127.0.0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("Nexus Flight listening on grpc://127.0.0.1:"), proc.stderr.read()
        with flightsql.connect(line.split()[-1], autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM nation")
            assert cur.fetchone()[0] == 25
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_an_environment_value_opening_an_array_must_be_toml():
    env = {"NEXUS_FLIGHT__SERVER__AUTH__METHODS": '["password" "api_key"]'}
    with pytest.raises(ConfigError, match=r"^NEXUS_FLIGHT__SERVER__AUTH__METHODS is not valid TOML: .*"
                                          r"\(line 1, column 13\)$"):
        load_settings(None, env=env)
    assert load_settings(None, env={"NEXUS_FLIGHT__SERVER__AUTH__METHODS": '["password", "api_key"]'}).auth.methods
