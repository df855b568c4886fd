"""Object-store emulators run as real processes on 127.0.0.1 (free port, readiness polled, stopped after)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
def _running(tool: str, what: str, arguments: Callable[[int], list[str]]) -> Iterator[Emulator]:
    """Run ``tool`` with ``arguments(port)`` on a free port until the block ends; ``what`` names it in skips."""
    command = require_command(tool)
    port = free_port()
    process = subprocess.Popen([command, *arguments(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(process, port, f"{tool} ({what})")
        yield Emulator(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def moto_s3() -> AbstractContextManager[Emulator]:
    """moto's S3 server (pip ``moto[server]``)."""
    return _running("moto_server", "S3 emulator", lambda port: ["-H", "127.0.0.1", "-p", str(port)])


def s3_client(emulator: Emulator):
    """A boto3 S3 client of the emulator, with the test credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=emulator.endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def azurite(location: Path) -> AbstractContextManager[Emulator]:
    """Azurite's blob service (npm ``azurite``)."""
    return _running(
        "azurite-blob",
        "Azure Blob emulator",
        lambda port: [
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
        ],
    )


def gcs_emulator(bucket: str) -> AbstractContextManager[Emulator]:
    """gcp-storage-emulator (pip), in memory, with one bucket."""
    return _running(
        "gcp-storage-emulator",
        "GCS emulator",
        lambda port: ["start", "--host=127.0.0.1", f"--port={port}", "--in-memory", f"--default-bucket={bucket}"],
    )
