"""Where tests/install-clients.sh put the client programs, and how to run them.

Nothing is downloaded or built here: a program that is missing skips the test on a developer machine and fails it
under CI=true (``tests.support.services.missing``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.services import missing

CACHE = Path(os.environ.get("NEXUS_FLIGHT_CLIENTS_DIR")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nexus-flight" / "clients")
JAVA_BUILD = CACHE / "java"
GO_CLIENT = CACHE / "flightsql-go-client"
RUST_CLIENT = CACHE / "rust-target" / "debug" / "flightsql-rust-client"
#: A zone with a half-hour offset: a timestamp read in the wrong zone cannot pass by luck.
JVM_ZONE = "Asia/Kolkata"
_INSTALL_HINT = "run tests/install-clients.sh (make install-test)"


def java_command(main_class: str) -> list[str]:
    """The JVM command line running one of the compiled Java scenario programs."""
    java = shutil.which("java")
    classpath_file = JAVA_BUILD / "classpath.txt"
    if java is None or not classpath_file.exists() or not (JAVA_BUILD / "classes").is_dir():
        missing(f"the compiled Java clients under {JAVA_BUILD} ({_INSTALL_HINT})")
    classpath = f"{JAVA_BUILD / 'classes'}{os.pathsep}{classpath_file.read_text().strip()}"
    return [java, "--add-opens=java.base/java.nio=ALL-UNNAMED", f"-Duser.timezone={JVM_ZONE}",
            "-Xmx1g", "-cp", classpath, f"nexusflight.clients.{main_class}"]


def native_command(path: Path) -> list[str]:
    """The command line of a compiled Go or Rust client."""
    if not path.exists():
        missing(f"the client program {path} ({_INSTALL_HINT})")
    return [str(path)]


def run_lines(command: list[str], timeout: float = 300.0) -> dict[str, dict]:
    """Run a scenario program to the end and index its JSON lines by scenario name."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    records = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            records[record["name"]] = record
    assert records, f"{command[0]} printed no result (exit {done.returncode}): {done.stderr[-2000:]}"
    dump = os.environ.get("NEXUS_FLIGHT_CLIENTS_DUMP")  # a directory: keep what each program printed
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        scenario_file = next(Path(arg) for arg in command if arg.endswith(".tsv"))
        (Path(dump) / f"{scenario_file.parent.name}.json").write_text(json.dumps(records, indent=1, ensure_ascii=False))
    return records
