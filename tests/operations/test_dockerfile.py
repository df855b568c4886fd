"""The Dockerfile's steps, run in a fresh virtualenv, and its entry command served and health-checked.

No Docker engine runs here. So the test reads the Dockerfile, copies what it COPYs into a fresh build directory,
runs its RUN steps with the virtualenv's interpreter (``/data`` mapped to a temporary directory; ``useradd`` and
``chown`` are the image's business and skipped; pip installs from the already installed dependencies, nothing is
downloaded), then starts the CMD exactly as written except for the ports and paths, runs the HEALTHCHECK command
against it and stops it the way ``docker stop`` does.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from tests.support.services import free_port

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln.strip() else "")
            for ln in text.splitlines() if ln.strip()]


def test_the_dockerfile_declares_a_data_volume_a_healthcheck_and_build_time_extras():
    steps = dict(_instructions())
    assert steps["VOLUME"] == "/data"
    assert "/healthz" in steps["HEALTHCHECK"]
    assert steps["ARG"].startswith("EXTRAS=")
    command = json.loads(steps["CMD"])
    assert command[:2] == ["nexus-flight", "serve"]
    assert command[command.index("--data-dir") + 1] == "/data"
    assert command[command.index("--http-port") + 1] == "9090"
    assert {"31337", "9090"} <= set(steps["EXPOSE"].split())
    # The extras picked at build time reach pip as pip's extras syntax (the RUN shell expands them).
    install = next(a for i, a in _instructions() if i == "RUN" and "pip install" in a).split(" && ")[0]
    target = shlex.split(install)[-1]
    for extras, expected in (("", "."), ("postgres,mysql", ".[postgres,mysql]")):
        shown = subprocess.run(["sh", "-c", f"printf %s {target!r}".replace("'", '"')], env={"EXTRAS": extras},
                               capture_output=True, text=True, check=True).stdout
        assert shown == expected


def test_the_image_steps_build_in_a_fresh_venv_and_its_command_serves(tmp_path):
    venv, build, data = tmp_path / "venv", tmp_path / "app", tmp_path / "data"
    # --without-pip: the running environment's pip and setuptools build it and its installed packages are the
    # dependencies (nothing downloaded). A .pth names that environment's site-packages, since --system-site-packages
    # would reach the base interpreter's instead when the tests run in a virtualenv.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    shared = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (Path(site_packages) / "shared-environment.pth").write_text("".join(f"{path}\n" for path in shared))
    build.mkdir()
    data.mkdir()
    flight_port, http_port = free_port(), free_port()
    # The shared environment's scripts (tpchgen-cli) are what the image's pip puts on its PATH.
    env = {"PATH": f"{venv / 'bin'}:{sysconfig.get_path('scripts')}:/usr/bin:/bin", "HOME": str(tmp_path)}
    command = healthcheck = None
    for instruction, arguments in _instructions():
        if instruction == "ARG":
            name, _, default = arguments.partition("=")
            env[name] = default.strip('"')
        elif instruction == "COPY":
            *sources, target = arguments.split()
            for source in sources:
                origin, into = ROOT / source, build / (target if target not in ("./", ".") else "")
                if origin.is_dir():
                    shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    into.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, into / origin.name)
        elif instruction == "RUN":
            step = arguments.split(" && ")[0]  # useradd, mkdir and chown of /data belong to the image
            step = step.replace("pip install", "python -m pip install --no-index --no-build-isolation -q")
            step = step.replace("'/data'", repr(str(data)))
            subprocess.run(["sh", "-c", step], cwd=build, env=env, check=True, timeout=240)
        elif instruction == "CMD":
            command = json.loads(arguments)
        elif instruction == "HEALTHCHECK":
            healthcheck = arguments.split(" CMD ", 1)[1]
    installed = subprocess.run([str(python), "-c", "import nexus_flight.server; print(nexus_flight.server.__file__)"],
                               capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert str(venv) in installed  # the package came from the build directory, not from a worktree
    assert list(data.glob("tpch_*.duckdb"))

    assert command is not None and healthcheck is not None
    served = [{"31337": str(flight_port), "9090": str(http_port), "/data": str(data)}.get(a, a) for a in command]
    server = subprocess.Popen(served, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        check = shlex.split(healthcheck.replace("9090", str(http_port)))
        deadline = time.monotonic() + 60
        while subprocess.run(check, env=env, capture_output=True).returncode != 0:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
            time.sleep(0.3)
        with flightsql.connect(f"grpc://127.0.0.1:{flight_port}", autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM nation")
            assert cur.fetchone()[0] == 25
        server.send_signal(signal.SIGTERM)  # docker stop
        assert server.wait(30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert (data / "catalog.db").exists()  # the catalog is on the volume
