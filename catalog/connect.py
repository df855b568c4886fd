"""Opening a source's backend, and probing it: the one place a catalog source becomes a live connection."""

from __future__ import annotations

from collections.abc import Callable

from nexus_flight.backends.base import Backend
from nexus_flight.backends.registry import backend_class
from nexus_flight.catalog.source_types import SOURCE_TYPES
from nexus_flight.core.errors import BackendUnavailableError, NotFoundError, UnsupportedError
from nexus_flight.core.source import SourceSpec

#: Checks that a source answers; raises a ``GatewayError`` when it does not.
Probe = Callable[[SourceSpec], None]


def family_class(type_name: str) -> type[Backend]:
    """Return the backend class serving a source type.

    Raises:
        UnsupportedError: DS-010 when the type's backend family is not implemented (names the family).
        NotInstalledError: the family exists but its driver package is missing (names the pip extra).

    """
    return _family(SOURCE_TYPES[type_name].family)


def _family(family: str) -> type[Backend]:
    """The backend class of ``family``; DS-010 worded here alone, so a query and a probe say the same."""
    try:
        return backend_class(family)
    except NotFoundError:
        types = ", ".join(name for name, kind in SOURCE_TYPES.items() if kind.family == family) or family
        raise UnsupportedError(
            f"DS-010: backend family {family!r} (source types {types}) is not implemented by this gateway: "
            "the source is registered but cannot be queried",
            rule="DS-010",
        ) from None


def family_implemented(type_name: str) -> bool:
    """Tell whether the type's backend family is known to the backend registry."""
    try:
        family_class(type_name)
    except UnsupportedError as exc:
        return exc.details.get("rule") != "DS-010"
    return True


def open_source(store, name: str) -> Backend:
    """Open the backend of a catalog source by name.

    Raises:
        NotFoundError: no such source.
        BackendUnavailableError: the source is disabled.
        UnsupportedError: DS-010, its family is not implemented.
        ConfigError: its vault record cannot be opened or its credential expired (CV-0xx).

    """
    info = store.get_source(name)
    if info.status == "inactive":
        raise BackendUnavailableError(
            f"source {name!r} is disabled; enable it with `nexus-flight sources enable {name}`", source=name
        )
    cls = family_class(info.type)
    return cls(store.source_spec(name))


def ping_backend(spec: SourceSpec) -> None:
    """Open the source's backend and ping it (the default probe).

    Raises:
        GatewayError: the source does not answer (or cannot be opened at all).

    """
    with _family(spec.kind)(spec) as backend:
        backend.ping()
