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
import resource

from nexus_flight.core.sizes import parse_size

log = logging.getLogger(__name__)

__all__ = ["cap_process_memory", "held_bytes", "parse_size"]


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
