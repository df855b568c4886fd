"""Keeping secrets out of everything shown: redacted configs, redacted parameters and a log scrubber.

Secrets live as ``SecretStr`` from the moment they are read. As a last line of defence, every secret value the
vault decrypts is registered with :data:`SCRUBBER`, which replaces it in log records and in texts the catalog
stores (error messages in query history) should an engine echo a credential back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "***"
#: Shorter values would scrub ordinary words; such secrets are weak anyway.
_MIN_SCRUB_LENGTH = 4


def redact_config(options: Mapping[str, Any], secret_names: Sequence[str]) -> dict[str, Any]:
    """Options as shown to users, with every stored secret present as ``***``."""
    return {**dict(options), **{name: REDACTED for name in secret_names}}


def redact_parameters(parameters: Sequence[Sequence[Any]] | None) -> list[list[str]] | None:
    """Bound parameters as history keeps them by default: the shape, not the values."""
    if parameters is None:
        return None
    return [[REDACTED for _ in row] for row in parameters]


class SecretScrubber:
    """Replaces known secret values in text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretScrubber({len(self._values)} values)"

    def add(self, *values: str) -> None:
        """Remember secret values to scrub."""
        with self._lock:
            self._values.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_SCRUB_LENGTH)

    def scrub(self, text: str | None) -> str | None:
        """``text`` with every known secret replaced by ``***`` (longest first, so prefixes do not leak)."""
        if not text or not self._values:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


#: The process-wide scrubber the vault feeds.
SCRUBBER = SecretScrubber()


class ScrubbingFilter(logging.Filter):
    """A logging filter that formats each record and scrubs known secrets out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without secrets; never drops a record."""
        message = record.getMessage()
        scrubbed = SCRUBBER.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def install_log_scrubber(logger: logging.Logger | None = None) -> None:
    """Attach the scrubbing filter to a logger's handlers (the root logger's by default), once each."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, ScrubbingFilter) for f in handler.filters):
            handler.addFilter(ScrubbingFilter())
