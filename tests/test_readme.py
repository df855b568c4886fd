"""What the README shows a user to type is what the gateway takes.

Every ``nexus-flight`` command line of its shell blocks parses with the real command's parser, every subcommand and
serve flag its prose names exists, and every TOML block loads as a configuration file (the validation ``serve`` and
SIGHUP run), with the environment variables its ``${env:…}`` references name.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from nexus_flight.catalog.config_file import load_config
from nexus_flight.server.app.cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
#: The secrets the README's examples reference, long enough for the password rule (AU-003).
ENV = {"CAROL_PASSWORD": "carol-example-password", "SALES_PASSWORD": "sales-example-password",
       "CH_PASSWORD": "clickhouse-example-password", "BQ_KEY_JSON": '{"type": "service_account"}'}


def _command_lines() -> list[str]:
    lines = []
    for language, body in BLOCKS:
        if language != "sh":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            # `policies list | show NAME | remove NAME` lists three commands, not a pipeline.
            if line.startswith("nexus-flight ") and " | " not in line:
                lines.append(line)
    return lines


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("line", _command_lines())
def test_every_command_line_parses(line):
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert callable(args.func), line


def test_every_subcommand_the_prose_names_exists():
    groups = _choices(build_parser())
    named = re.findall(r"`(?:nexus-flight )?(users|roles|grants|keys|tokens|sources|vault|policies) ([a-z|-]+)", README)
    assert len(named) >= 10
    for group, alternatives in named:
        for name in alternatives.split("|"):
            assert name in _choices(groups[group]), f"{group} {name}"


def test_every_serve_flag_the_readme_lists_exists():
    serve = _choices(build_parser())["serve"]
    options = {option for action in serve._actions for option in action.option_strings}
    paragraph = README[README.index("`nexus-flight serve` flags:"):README.index("Every server setting")]
    listed = set(re.findall(r"`(--[a-z-]+)", paragraph))
    assert len(listed) >= 14 and listed <= options, listed - options


def test_every_role_the_examples_name_is_one_they_make():
    """A user copying the examples never meets AU-005 (unknown role) for a role the walkthrough never made."""
    shell = "\n".join(body for language, body in BLOCKS if language == "sh")
    toml = "\n".join(body for language, body in BLOCKS if language == "toml")
    made = {"admin", *re.findall(r"nexus-flight roles add (\w+)", shell),
            *re.findall(r"\[\[roles\]\]\s*name = \"(\w+)\"", toml)}
    named = {*re.findall(r"--(?:exempt-)?role (\w+)", shell), *re.findall(r"nexus-flight grants add (\w+)", shell),
             *re.findall(r"nexus-flight roles (?:un)?assign (\w+)", shell)}
    for listed in re.findall(r"^(?:roles|exempt_roles) = \[(.*?)\]", toml, re.M):
        named.update(re.findall(r'"(\w+)"', listed))
    assert {"analyst", "support"} <= named and named <= made, named - made


@pytest.mark.parametrize("text", [body for language, body in BLOCKS if language == "toml"],
                         ids=lambda text: text.strip().splitlines()[0][:40])
def test_every_configuration_example_loads(tmp_path, text):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    load_config(path, env=ENV)
