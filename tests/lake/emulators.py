"""Object-store emulators run as real processes on 127.0.0.1 (free port, readiness polled, stopped after)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import free_port, missing, port_open, require_command

#: Azurite's published development account (not a secret: it is the same in every Azurite).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

S3_KEY_ID = "lake-test-key"
S3_SECRET = "lake-test-secret"
S3_REGION = "us-east-1"


@dataclass
class Emulator:
    """A running emulator: its port and the process to stop."""

    port: int
    process: subprocess.Popen

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait(process: subprocess.Popen, port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            missing(f"{what} (exited with {process.returncode})")
        if port_open("127.0.0.1", port, timeout=0.2):
            return
        time.sleep(0.05)
    process.kill()
    missing(f"{what} (not listening after {timeout:.0f} s)")


@contextmanager
def _running(argv: list[str], what: str, port: int, env: dict | None = None) -> Iterator[Emulator]:
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    try:
        _wait(process, port, what)
        yield Emulator(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def moto_s3() -> Iterator[Emulator]:
    """moto's S3 server (pip ``moto[server]``)."""
    command = require_command("moto_server")
    port = free_port()
    with _running(
        [command, "-H", "127.0.0.1", "-p", str(port)], "moto_server (S3 emulator)", port
    ) as emulator:
        yield emulator


@contextmanager
def azurite(location: Path) -> Iterator[Emulator]:
    """Azurite's blob service (npm ``azurite``)."""
    command = require_command("azurite-blob")
    port = free_port()
    argv = [
        command,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
        "--disableTelemetry",
    ]
    with _running(argv, "azurite-blob (Azure Blob emulator)", port) as emulator:
        yield emulator


@contextmanager
def gcs_emulator(bucket: str) -> Iterator[Emulator]:
    """gcp-storage-emulator (pip), in memory, with one bucket."""
    command = require_command("gcp-storage-emulator")
    port = free_port()
    argv = [
        command,
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        "--in-memory",
        f"--default-bucket={bucket}",
    ]
    with _running(argv, "gcp-storage-emulator (GCS emulator)", port) as emulator:
        yield emulator
