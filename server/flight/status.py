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
Arrow exceptions, and for those pyarrow appends ``traceback.format_exception`` of the error to the status text,
cut to ``sys.tracebacklimit`` frames. ``client_safe_tracebacks()`` holds that limit at 0 while a gateway serves
in the process (and gives back the embedding application's own value when the last one stops), so the text
carries no frames: no paths, no source lines. The server's own log records internal errors with every frame.

Each ``GatewayError`` class names its status (``code``, ``core/errors.py``); the table below turns the status into
the exception pyarrow sends. Errors a result stream raises after its first batch are mapped the same way
(``flight_batches``): they reach the client with their own status, not as UNKNOWN.

pyarrow cannot send FAILED_PRECONDITION or RESOURCE_EXHAUSTED: limits are INVALID_ARGUMENT naming the limit, and
limits that free themselves (query rate, concurrent queries, sign-in throttling) are UNAVAILABLE, the code clients
retry on, with the time to wait in the message.

``GetSchema`` is narrower still: pyarrow's ``GetSchema`` callback (unlike every other one) does not turn a
``flight.Flight*Error`` into its status, so each of them would reach the client as UNKNOWN with a Python exception
name in the text. ``translate(schema_call=True)`` sends those as INVALID_ARGUMENT with the same message (a write
command there is "read-only: … not accepted", what the Java and Go Flight SQL servers answer); the refusal is
PERMISSION_DENIED from ``GetFlightInfo``, ``DoGet`` and ``DoPut``, and a retryable limit (the query rate) is
UNAVAILABLE there but INVALID_ARGUMENT here. No Python exception can make GetSchema send UNAVAILABLE: pyarrow
converts it to an Arrow status without a Flight status detail, and only Arrow's own codes map to gRPC codes
(``tests/security/test_get_schema_refusals.py``).

A ticket or prepared-statement handle that was altered, cut, made up, signed by a key this catalog does not hold,
or has expired (``signed_handles.py``) is INVALID_ARGUMENT naming which: not UNAUTHENTICATED, which would tell the
client that its sign-in failed. Redeeming one issued to another user is PERMISSION_DENIED.

A source that refuses the gateway's own credentials is UNAVAILABLE: UNAUTHENTICATED would tell the client that
its login to the gateway failed (clients then drop their token or ask the user for a password), which
``server/flight/auth.py`` alone reports.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
import uuid
from collections.abc import Iterable, Iterator

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


#: The exception pyarrow sends for each status a gateway error can have.
_FLIGHT_CLASSES: dict[str, type[Exception]] = {
    "PERMISSION_DENIED": flight.FlightUnauthorizedError,
    "UNAUTHENTICATED": flight.FlightUnauthenticatedError,
    "UNAVAILABLE": flight.FlightUnavailableError,
    "DEADLINE_EXCEEDED": flight.FlightTimedOutError,
    "CANCELLED": flight.FlightCancelledError,
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFound,
    "UNIMPLEMENTED": Unimplemented,
    "INTERNAL": flight.FlightInternalError,
}


def flight_error(error: e.GatewayError) -> Exception:
    """The Flight-raisable exception for a gateway error (same condition, same status, every time)."""
    if isinstance(error, e.AuthenticationError):
        return flight.FlightUnavailableError(
            f"{error.client_message()}: the source refused the gateway's credentials for it; "
            "check the user and password configured for the source"
        )
    return _FLIGHT_CLASSES.get(error.code, flight.FlightInternalError)(error.client_message())


def gateway_error_of(exc: BaseException | None) -> e.GatewayError | None:
    """How a call that pyarrow ended with ``exc`` ended, as a gateway error (for history and metrics).

    A stream's own failures arrive as the Flight errors ``flight_batches`` raised; a client that cancelled the
    call or whose deadline passed arrives as pyarrow's own cancel and timeout errors.
    """
    if exc is None:
        return None
    if isinstance(exc, e.GatewayError):
        return exc
    text = str(exc).split(". Detail:")[0].strip() or type(exc).__name__
    if isinstance(exc, flight.FlightCancelledError | pa.ArrowCancelled):
        return e.QueryCancelledError(text)
    if isinstance(exc, flight.FlightTimedOutError):
        return e.QueryTimeoutError(text)
    for code, cls in _FLIGHT_CLASSES.items():
        if type(exc) is cls:
            return _ERROR_BY_CODE[code](text)
    return e.BackendError(text)


_ERROR_BY_CODE: dict[str, type[e.GatewayError]] = {
    "PERMISSION_DENIED": e.ForbiddenError,
    "UNAUTHENTICATED": e.UnauthenticatedError,
    "UNAVAILABLE": e.BackendUnavailableError,
    "DEADLINE_EXCEEDED": e.QueryTimeoutError,
    "CANCELLED": e.QueryCancelledError,
    "INVALID_ARGUMENT": e.InvalidQueryError,
    "NOT_FOUND": e.NotFoundError,
    "UNIMPLEMENTED": e.UnsupportedError,
    "INTERNAL": e.BackendError,
}


def flight_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Yield ``batches``; a gateway error raised while streaming leaves as its mapped Flight error.

    Only a Flight generator stream can send a status after the first batch; a failing reader would reach the
    client as UNKNOWN.
    """
    with translate():
        yield from batches


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
    except Exception as exc:
        incident = query_id or uuid.uuid4().hex[:12]
        # Every frame, whatever the traceback limit while serving is: this is the incident's record.
        frames = "".join(traceback.format_exception(exc, limit=1000))
        log.error("internal error (query_id=%s)\n%s", incident, frames.rstrip())
        raise flight.FlightInternalError(f"internal error; the server log has details (query_id={incident})") from None


class _FullTracebackFormatter(logging.Formatter):
    """Formats exceptions with every frame, whatever ``sys.tracebacklimit`` says."""

    full_tracebacks = True

    def formatException(self, ei) -> str:  # noqa: N802 - logging's API
        return "".join(traceback.format_exception(ei[0], ei[1], ei[2], limit=1000))


def full_tracebacks(handler: logging.Handler) -> None:
    """Make ``handler`` log every frame of an exception while a gateway serves (for the process's own log)."""
    if not getattr(handler.formatter, "full_tracebacks", False):  # a JSON formatter keeps frames its own way
        fmt = handler.formatter._fmt if handler.formatter else None
        handler.setFormatter(_FullTracebackFormatter(fmt))


_serving = 0
_saved_limit: object = None
_limit_lock = threading.Lock()


@contextlib.contextmanager
def client_safe_tracebacks() -> Iterator[None]:
    """Keep tracebacks out of status messages sent to clients while the block (a gateway serving) runs.

    ``sys.tracebacklimit`` is the only knob pyarrow's formatting reads; it is set while at least one gateway
    serves in this process and given back as it was when the last one stops.
    """
    global _serving, _saved_limit
    with _limit_lock:
        if _serving == 0:
            _saved_limit = getattr(sys, "tracebacklimit", _UNSET)
            sys.tracebacklimit = 0
        _serving += 1
    try:
        yield
    finally:
        with _limit_lock:
            _serving -= 1
            if _serving == 0:
                if _saved_limit is _UNSET:
                    del sys.tracebacklimit
                else:
                    sys.tracebacklimit = _saved_limit  # type: ignore[assignment]


_UNSET = object()
