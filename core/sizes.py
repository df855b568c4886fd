"""Sizes written the way DuckDB's ``memory_limit`` takes them (``512MB``, ``4GB``, ``2GiB``), as bytes."""

from __future__ import annotations

import re

from nexus_flight.core.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes of a size like ``512MB`` or ``4GB``.

    Raises:
        ConfigError: not a size.

    """
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a size like 512MB or 4GB")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").lower()])
