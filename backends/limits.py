"""The server's limits on the planning step, and the one way a stopped query is reported.

Planning (``get_schema``, ``get_parameter_schema``) can cost an engine real work: DuckDB folds constants and
expands a PIVOT, SQLite types its columns from the first rows. The query service runs it under the same
time limit as the query itself; backends read it here instead of through every method's signature.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from nexus_flight.core.errors import GatewayError, QueryCancelledError, QueryTimeoutError
from nexus_flight.core.source import QueryLimits

_PLANNING: ContextVar[QueryLimits | None] = ContextVar("planning_limits", default=None)


def planning_limits() -> QueryLimits:
    """The limits of the planning step running in this context (the defaults outside one)."""
    return _PLANNING.get() or QueryLimits()


@contextlib.contextmanager
def planning(limits: QueryLimits) -> Iterator[None]:
    """Run the block as a planning step under ``limits``."""
    token = _PLANNING.set(limits)
    try:
        yield
    finally:
        _PLANNING.reset(token)


def timeout_error(seconds: float, source: str | None = None, step: str = "query") -> QueryTimeoutError:
    """The error of a query (or its planning) stopped by the server's time limit, naming the limit."""
    return QueryTimeoutError(
        f"the {step} ran past the server's time limit (query_timeout={seconds:g}s) and was stopped",
        source=source,
    )


def stopped_error(timed_out: bool, seconds: float, source: str | None = None) -> GatewayError:
    """The error of a query the gateway stopped in the engine: at the server's time limit, else by a cancel."""
    if timed_out:
        return timeout_error(seconds, source)
    return QueryCancelledError("the query was cancelled", source=source)
