"""What every backend answers where its source has no such thing, for the tests' stand-ins of a backend's metadata.

A stand-in (used where no engine of the kind runs in a test) answers the few questions a test is about and takes
``Backend``'s own defaults for the rest, so it never drifts from what production code may ask.
"""

from __future__ import annotations

from nexus_flight.backends.base import Backend


class BackendDefaults:
    """``Backend``'s defaults: no default schema, views' names in their own schema, no lineage, no database name."""

    default_schema = Backend.default_schema
    view_names_schema = Backend.view_names_schema
    table_lineage = Backend.table_lineage
    view_database = Backend.view_database
