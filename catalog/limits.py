"""The limits a user, an API key or a role can carry, and their validation (AU-009).

Limits are stored as JSON on ``users``, ``roles`` and ``api_keys`` and declared the same way in the TOML file
(``limits = { queries_per_minute = 60, max_rows = 1000000 }``). Which value applies to a caller is decided in
one place, :func:`effective_limits`: the API key's own value, else the user's, else the most generous of the
caller's roles, else the server's ``[server.limits]`` default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nexus_flight.catalog.rules import rule_error

#: name -> (type, what it bounds). Every value must be positive.
LIMITS: dict[str, tuple[type, str]] = {
    "queries_per_minute": (float, "queries started per minute (a token bucket)"),
    "query_burst": (int, "queries that may start at once before the rate applies (default: a sixth of a minute's)"),
    "max_concurrent_queries": (int, "queries running at once"),
    "max_concurrent_queries_per_source": (int, "queries running at once on one source"),
    "max_rows": (int, "rows one query may return"),
    "max_bytes": (int, "bytes one query may return"),
    "max_query_seconds": (float, "run time of one query (the lower of this and the server's timeout)"),
    "memory_limit_mb": (float, "memory one query may hold in the gateway, in MiB (else the source's or server's)"),
    "queue_timeout_seconds": (float, "how long a query over a concurrency limit waits for a slot (0: refused)"),
}


def validate_limits(limits: Mapping[str, Any] | None, where: str = "limits") -> dict[str, Any]:
    """Return ``limits`` with each value of its declared type.

    Raises:
        ConfigError: AU-009 for an unknown name or a value that is not a positive number.

    """
    checked: dict[str, Any] = {}
    for name, value in (limits or {}).items():
        if name not in LIMITS:
            raise rule_error("AU-009", f"{where}: unknown limit {name!r}; limits: {', '.join(LIMITS)}", field=name)
        kind = LIMITS[name][0]
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
            raise rule_error("AU-009", f"{where}.{name}: expected {'an integer' if kind is int else 'a number'}",
                             field=name)
        if value < 0 or (value == 0 and name != "queue_timeout_seconds"):
            raise rule_error("AU-009", f"{where}.{name}: must be positive, got {value}", field=name)
        checked[name] = kind(value)
    return checked


def parse_limits(values: Mapping[str, Any], where: str = "limits") -> dict[str, Any]:
    """Limits as an operator gives them, checked: numbers (a JSON body) or their text (``--limit NAME=VALUE``).

    The CLI and the administration actions both read limits here, so they accept the same values.

    Raises:
        ConfigError: AU-009 for text that is not a number, an unknown name, or a value that is not positive.

    """
    numbers: dict[str, Any] = {}
    for name, value in values.items():
        if not isinstance(value, str):
            numbers[name] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise rule_error("AU-009", f"{where}.{name}: expected a number", field=name) from None
        numbers[name] = int(number) if number.is_integer() and "." not in value else number
    return validate_limits(numbers, where)


def effective_limits(
    key: Mapping[str, Any] | None,
    user: Mapping[str, Any] | None,
    roles: Iterable[Mapping[str, Any]],
    server: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The limits that apply: the key's value, else the user's, else the roles' most generous, else the server's."""
    result: dict[str, Any] = dict(server or {})
    role_values: dict[str, Any] = {}
    for role in roles:
        for name, value in role.items():
            role_values[name] = max(value, role_values.get(name, value))
    result.update(role_values)
    result.update(user or {})
    result.update(key or {})
    return result
