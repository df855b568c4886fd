r"""The one place where gateway errors become Flight/gRPC statuses.

pyarrow appends a Python traceback to the status text of plain Python exceptions (ValueError, KeyError …) raised
in a handler, but not to ``flight.Flight*Error``. So every error leaves as a Flight* exception, built here:

====================================  ===========================  ==================
Error                                 raised as                    gRPC status
====================================  ===========================  ==================
InvalidQueryError (and subclasses)    InvalidArgument*             INVALID_ARGUMENT
LimitExceededError, ConfigError       InvalidArgument*             INVALID_ARGUMENT
NotFoundError                         NotFound*                    NOT_FOUND
UnsupportedError                      Unimplemented*               UNIMPLEMENTED
ReadOnlyViolationError, Forbidden     FlightUnauthorizedError      PERMISSION_DENIED
UnauthenticatedError                  FlightUnauthenticatedError   UNAUTHENTICATED
RetryLaterError (rate, concurrency)   FlightUnavailableError       UNAVAILABLE, naming the limit and when to retry
AuthenticationError (a source's)      FlightUnavailableError       UNAVAILABLE, naming the source
BackendUnavailableError               FlightUnavailableError       UNAVAILABLE
QueryTimeoutError                     FlightTimedOutError          DEADLINE_EXCEEDED
QueryCancelledError                   FlightCancelledError         CANCELLED
anything else                         FlightInternalError          INTERNAL (generic text + query id)
====================================  ===========================  ==================

\\* pyarrow has no Flight* class for INVALID_ARGUMENT, NOT_FOUND or UNIMPLEMENTED: those codes come only from
Arrow exceptions, and for those pyarrow appends ``traceback.format_exception`` of the error to the status text.
``client_safe_tracebacks()`` sets ``sys.tracebacklimit = 0`` so that text carries no frames (no paths, no source
lines), and installs a log formatter that keeps full tracebacks in the server's own log.

pyarrow cannot send FAILED_PRECONDITION or RESOURCE_EXHAUSTED: limits are INVALID_ARGUMENT naming the limit, and
limits that free themselves (query rate, concurrent queries, sign-in throttling) are UNAVAILABLE, the code clients
retry on, with the time to wait in the message.

``GetSchema`` is narrower still: pyarrow's ``GetSchema`` callback (unlike every other one) does not turn a
``flight.Flight*Error`` into its status, so each of them would reach the client as UNKNOWN with a Python exception
name in the text. ``translate(schema_call=True)`` sends those as INVALID_ARGUMENT with the same message (a write
command there is "read-only: … not accepted", what the Java and Go Flight SQL servers answer); the refusal is
PERMISSION_DENIED from ``GetFlightInfo``, ``DoGet`` and ``DoPut``.

A source that refuses the gateway's own credentials is UNAVAILABLE: UNAUTHENTICATED would tell the client that
its login to the gateway failed (clients then drop their token or ask the user for a password), which
``server/flight/auth.py`` alone reports.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.flight as flight

from nexus_flight.core import errors as e

log = logging.getLogger("nexus_flight.errors")

class InvalidArgument(pa.ArrowInvalid):
    """Sent as INVALID_ARGUMENT."""

    __module__ = "builtins"  # the status text then reads "InvalidArgument: …", not a module path


class NotFound(pa.ArrowKeyError):
    """Sent as NOT_FOUND."""

    __module__ = "builtins"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # KeyError would quote the message


class Unimplemented(pa.ArrowNotImplementedError):
    """Sent as UNIMPLEMENTED."""

    __module__ = "builtins"


_FLIGHT_CLASSES: list[tuple[type[e.GatewayError], type[Exception]]] = [
    (e.ReadOnlyViolationError, flight.FlightUnauthorizedError),
    (e.ForbiddenError, flight.FlightUnauthorizedError),
    (e.UnauthenticatedError, flight.FlightUnauthenticatedError),
    (e.RetryLaterError, flight.FlightUnavailableError),
    (e.AuthenticationError, flight.FlightUnavailableError),
    (e.BackendUnavailableError, flight.FlightUnavailableError),
    (e.QueryTimeoutError, flight.FlightTimedOutError),
    (e.QueryCancelledError, flight.FlightCancelledError),
    (e.InvalidQueryError, InvalidArgument),
    (e.LimitExceededError, InvalidArgument),
    (e.ConfigError, InvalidArgument),
    (e.NotFoundError, NotFound),
    (e.UnsupportedError, Unimplemented),
    (e.BackendError, flight.FlightInternalError),
]


def flight_error(error: e.GatewayError) -> Exception:
    """The Flight-raisable exception for a gateway error (same condition, same status, every time)."""
    if isinstance(error, e.AuthenticationError):
        return flight.FlightUnavailableError(
            f"{error.client_message()}: the source refused the gateway's credentials for it; "
            "check the user and password configured for the source"
        )
    for cls, target in _FLIGHT_CLASSES:
        if isinstance(error, cls):
            return target(error.client_message())
    return flight.FlightInternalError(error.client_message())


def status_name(error: BaseException) -> str:
    """The gRPC status name a gateway error maps to (for logs, history and tests)."""
    mapped = flight_error(error) if isinstance(error, e.GatewayError) else None
    return {
        flight.FlightUnauthorizedError: "PERMISSION_DENIED",
        flight.FlightUnauthenticatedError: "UNAUTHENTICATED",
        flight.FlightUnavailableError: "UNAVAILABLE",
        flight.FlightTimedOutError: "DEADLINE_EXCEEDED",
        flight.FlightCancelledError: "CANCELLED",
        InvalidArgument: "INVALID_ARGUMENT",
        NotFound: "NOT_FOUND",
        Unimplemented: "UNIMPLEMENTED",
    }.get(type(mapped), "INTERNAL")


@contextlib.contextmanager
def translate(query_id: str | None = None, schema_call: bool = False) -> Iterator[None]:
    """Turn whatever a handler raises into the mapped Flight error; unknown failures become a generic INTERNAL.

    Args:
        query_id: Named in the error's text.
        schema_call: The handler is ``GetSchema``, which can send only Arrow-coded statuses (see above).

    """
    try:
        yield
    except e.GatewayError as exc:
        if query_id:
            exc.with_context(query_id=query_id)
        mapped = flight_error(exc)
        if schema_call and isinstance(mapped, flight.FlightError) and not isinstance(
            mapped, flight.FlightInternalError
        ):
            raise InvalidArgument(str(mapped)) from None
        raise mapped from None
    except flight.FlightError:
        raise
    except Exception:
        incident = query_id or uuid.uuid4().hex[:12]
        log.exception("internal error (query_id=%s)", incident)
        raise flight.FlightInternalError(f"internal error; the server log has details (query_id={incident})") from None


class _FullTracebackFormatter(logging.Formatter):
    """Formats exceptions with every frame, whatever ``sys.tracebacklimit`` says."""

    full_tracebacks = True

    def formatException(self, ei) -> str:  # noqa: N802 - logging's API
        import traceback

        return "".join(traceback.format_exception(ei[0], ei[1], ei[2], limit=1000))


def client_safe_tracebacks() -> None:
    """Keep tracebacks out of status messages sent to clients, and in the server log."""
    import sys

    sys.tracebacklimit = 0
    for handler in logging.getLogger().handlers:
        if not getattr(handler.formatter, "full_tracebacks", False):
            fmt = handler.formatter._fmt if handler.formatter else None
            handler.setFormatter(_FullTracebackFormatter(fmt))
