"""Type-check the query pipeline and the shared vocabulary strictly (``make test`` runs this before pytest).

The code installs as ``nexus_flight.*`` from folders at the repository's root (setuptools' package-dir), which
mypy cannot map by itself: it reads a temporary ``nexus_flight/`` whose parts link to those folders. The
settings are ``[tool.mypy]`` in pyproject.toml (strict on ``nexus_flight.core`` and ``nexus_flight.server.query``).

Usage: ``python tests/typecheck.py`` (exit status 0 when clean).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("core", "backends", "catalog", "server")
CHECKED = ("nexus_flight.core", "nexus_flight.server.query")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="nexus-typecheck-") as tmp:
        package = Path(tmp, "nexus_flight")
        package.mkdir()
        for part in PARTS:
            (package / part).symlink_to(ROOT / part, target_is_directory=True)
        args = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache")]
        for name in CHECKED:
            args += ["-p", name]
        os.environ["MYPYPATH"] = tmp
        out, err, status = api.run(args)
    sys.stdout.write(out.replace(f"{tmp}/nexus_flight/", ""))
    sys.stderr.write(err)
    return status


if __name__ == "__main__":
    sys.exit(main())
