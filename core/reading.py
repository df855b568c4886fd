"""Whose rows a query reads where a source holds rows of every user: the ``system`` catalog's query history.

The query service sets it around a backend's ``execute`` for a signed-in principal who is no admin; the
``system`` backend then registers only that user's history rows (and no rows of the tables only admins may
read). None (the default: authentication off, an admin, a tool driving a backend directly) reads every row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_READING_FOR: ContextVar[str | None] = ContextVar("nexus_flight_reading_for", default=None)


def reading_user() -> str | None:
    """The user whose rows alone the current query may read (None: every user's)."""
    return _READING_FOR.get()


@contextlib.contextmanager
def reading_for(user: str | None) -> Iterator[None]:
    """Within the block, per-user data shows only ``user``'s rows (None: every row)."""
    token = _READING_FOR.set(user)
    try:
        yield
    finally:
        _READING_FOR.reset(token)
