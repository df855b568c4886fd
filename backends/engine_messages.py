"""Engine messages as clients see them: one line of the engine's own text, with no secret in it."""

from __future__ import annotations

from collections.abc import Sequence


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Remove any secret value from an engine message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def first_line(exc: BaseException) -> str:
    """Return an engine message's first line (DuckDB's and others' can span lines with a caret diagram)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
