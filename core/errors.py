"""The one exception tree of the gateway.

Every error a client can see is a ``GatewayError``. Each class carries its canonical status ``code`` (gRPC's
names, which history and metrics record too); ``server/flight/status.py`` turns each code into exactly one
Flight/gRPC status, in one place::

    GatewayError
    ├── InvalidQueryError            INVALID_ARGUMENT   SQL that does not parse, bad parameters, bad input
    │   └── QueryRejectedError       INVALID_ARGUMENT   read-only validator rule QV-0xx (not a write)
    ├── ReadOnlyViolationError       PERMISSION_DENIED  a write, DDL or side effect (QV-0xx)
    ├── ForbiddenError               PERMISSION_DENIED  authenticated, but not allowed
    ├── UnauthenticatedError         UNAUTHENTICATED    the client's own sign-in failed or is missing
    ├── AuthenticationError          UNAVAILABLE        a source refused the gateway's credentials
    ├── NotFoundError                NOT_FOUND          unknown source, table, handle or ticket
    ├── UnsupportedError             UNIMPLEMENTED      a command or feature the gateway does not offer
    │   └── NotInstalledError        UNIMPLEMENTED      a backend whose driver package is missing
    ├── BackendUnavailableError      UNAVAILABLE        the source cannot be reached
    ├── QueryTimeoutError            DEADLINE_EXCEEDED
    ├── QueryCancelledError          CANCELLED
    ├── LimitExceededError           INVALID_ARGUMENT   a configured limit (memory, rows, length); names the limit
    │   └── RetryLaterError          UNAVAILABLE        a rate, concurrency or sign-in limit; says when to retry
    ├── ConfigError                  INVALID_ARGUMENT   invalid source or server configuration (DS-0xx, CV-0xx)
    └── BackendError                 INTERNAL           the engine failed in a way we cannot classify

Messages put the engine's own text first and the context after, never a secret, a file path of ours or a
traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    """Root of every error the gateway reports to a client.

    Attributes:
        code: The canonical status of the class (``INVALID_ARGUMENT``, ``NOT_FOUND`` …, as drawn above).
        message: The human-readable text, safe to show to a client.
        details: Structured extras (sqlstate, vendor_code, rule, line, column, source, query_id).

    """

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def with_context(self, **context: Any) -> GatewayError:
        """Add context (source, query id) to ``details`` and return self, for chaining."""
        for key, value in context.items():
            if value is not None:
                self.details.setdefault(key, value)
        return self

    def client_message(self) -> str:
        """The text a client sees: the message first, then source and query id in parentheses."""
        context = [f"{k}={self.details[k]}" for k in ("source", "query_id") if k in self.details]
        return f"{self.message} ({', '.join(context)})" if context else self.message


class InvalidQueryError(GatewayError):
    """The request is malformed: SQL that does not parse, wrong parameters, garbage protobuf."""

    code = "INVALID_ARGUMENT"


class QueryRejectedError(InvalidQueryError):
    """The read-only validator refused a query for a reason other than a write (length, depth, shape)."""


class ReadOnlyViolationError(GatewayError):
    """The query would change data, schema, configuration or the file system."""

    code = "PERMISSION_DENIED"


class ForbiddenError(GatewayError):
    """The caller is known but may not do this."""

    code = "PERMISSION_DENIED"


class UnauthenticatedError(GatewayError):
    """The client did not sign in, or its credentials are wrong, expired or revoked.

    The message never says which part was wrong (no user-existence oracle) and never echoes a credential.
    """

    code = "UNAUTHENTICATED"


class AuthenticationError(GatewayError):
    """A source refused the gateway's credentials (the client's own sign-in is ``UnauthenticatedError``)."""

    code = "UNAVAILABLE"


class NotFoundError(GatewayError):
    """A source, table, prepared statement or ticket does not exist (or has expired)."""

    code = "NOT_FOUND"


class UnsupportedError(GatewayError):
    """The gateway does not implement this command or feature."""

    code = "UNIMPLEMENTED"


class NotInstalledError(UnsupportedError):
    """A backend's driver package is not installed; the message names the pip extra."""


class BackendUnavailableError(GatewayError):
    """The data source cannot be reached right now."""

    code = "UNAVAILABLE"


class CatalogUnavailableError(BackendUnavailableError):
    """The gateway's own catalog database cannot be reached (down, restarting, or locked) right now."""


class QueryTimeoutError(GatewayError):
    """The query ran past its deadline and was stopped."""

    code = "DEADLINE_EXCEEDED"


class QueryCancelledError(GatewayError):
    """The query was cancelled by the client or an operator."""

    code = "CANCELLED"


class LimitExceededError(GatewayError):
    """A configured limit was exceeded; the message names the limit and its value."""

    code = "INVALID_ARGUMENT"


class RetryLaterError(LimitExceededError):
    """A limit that frees itself (query rate, concurrency, sign-in throttling): retrying later succeeds.

    Attributes:
        retry_after_seconds: When a retry may succeed (also in the message).

    """

    code = "UNAVAILABLE"

    def __init__(self, message: str, retry_after_seconds: float | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after_seconds = retry_after_seconds


class ConfigError(GatewayError):
    """A source or server configuration is invalid."""

    code = "INVALID_ARGUMENT"


class BackendError(GatewayError):
    """The engine failed and the failure is not one of the classes above."""

    code = "INTERNAL"


#: Errors about a source as a whole (unreachable, or refusing the gateway's login), not about one of its objects:
#: describing one object that fails with one of these says nothing about that object.
SOURCE_FAILURES: tuple[type[GatewayError], ...] = (BackendUnavailableError, AuthenticationError)
