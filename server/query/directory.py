"""The data sources the gateway serves, by name: each is one Flight SQL catalog.

``SourceDirectory`` is what the query service asks; ``StaticSourceDirectory`` serves sources given at start
(the demo, a config file). A catalog-backed directory implements the same methods.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Protocol

from nexus_flight.backends.base import Backend
from nexus_flight.backends.profile import backend_options, source_profile
from nexus_flight.backends.registry import backend_class, open_backend
from nexus_flight.core.errors import NotFoundError
from nexus_flight.core.source import SourceProfile, SourceSpec


class SourceDirectory(Protocol):
    """Where the query service finds sources."""

    def names(self) -> list[str]:
        """Names of the sources clients may query, sorted."""

    def default(self) -> str | None:
        """The source a query without a catalog runs on."""

    def route_target(self, name: str) -> SourceProfile:
        """What routing needs to know of a source."""

    def backend(self, name: str) -> Backend:
        """The open backend of a source (opened on first use)."""

    def close(self) -> None:
        """Close every open backend."""


class StaticSourceDirectory:
    """Sources fixed at start; backends open lazily, once, and stay open."""

    def __init__(self, specs: list[SourceSpec], default: str | None = None) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._default = default or (specs[0].name if specs else None)
        self._open: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Source names, sorted."""
        return sorted(self._specs)

    def default(self) -> str | None:
        """The default source."""
        return self._default

    def _spec(self, name: str) -> SourceSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(f"unknown catalog {name!r}; known catalogs: {known}") from None

    def route_target(self, name: str) -> SourceProfile:
        """Dialect, allowed locations, engine parser, validator limits and extra functions of a source."""
        spec = self._spec(name)
        return source_profile(backend_class(spec.kind), spec.options)

    def backend(self, name: str) -> Backend:
        """Open (once) and return the backend of ``name`` (the gateway's own options are not the backend's)."""
        spec = self._spec(name)
        with self._lock:
            backend = self._open.get(name)
            if backend is None:
                backend = open_backend(dataclasses.replace(spec, options=backend_options(dict(spec.options))))
                self._open[name] = backend
            return backend

    def opened(self) -> dict[str, Backend]:
        """The backends open now, by source name (metrics read their pools; nothing is opened)."""
        with self._lock:
            return dict(self._open)

    def close(self) -> None:
        """Close all open backends."""
        with self._lock:
            backends, self._open = list(self._open.values()), {}
        for backend in backends:
            backend.close()
