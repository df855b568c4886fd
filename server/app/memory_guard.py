"""A ceiling on the memory the server process may allocate, so that no query takes the machine down with it.

Engines bound what they manage themselves (DuckDB's ``memory_limit`` covers its buffer pool), but not every
allocation: ``SELECT length(repeat('x', 2500000000))`` builds a 2.5 GB string outside DuckDB's buffer manager,
and SQLite values grow outside any limit. ``RLIMIT_DATA`` makes such an allocation fail instead (DuckDB reports
it as an out-of-memory error, naming the limit, and the query fails alone), counting the process's private
writable memory. The ceiling is what the process holds when it starts plus ``process_memory_limit``; SQLite
workers forked later inherit it, each for itself.
"""

from __future__ import annotations

import logging
import re
import resource

from nexus_flight.core.errors import ConfigError

log = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes of a size written like DuckDB's ``memory_limit`` (``512MB``, ``4GB``, ``2GiB``).

    Raises:
        ConfigError: not a size.

    """
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a size like 512MB or 4GB")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").lower()])


def held_bytes() -> int:
    """The process's private writable memory now (``VmData``), which ``RLIMIT_DATA`` counts."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def cap_process_memory(limit: str) -> int:
    """Let the process allocate at most ``limit`` beyond what it holds now; return the ceiling in bytes."""
    ceiling = held_bytes() + parse_size(limit)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))
    log.info("process memory ceiling: %.1f GiB (process_memory_limit=%s)", ceiling / 2**30, limit)
    return ceiling
