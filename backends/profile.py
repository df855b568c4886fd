"""A source's routing profile, computed in one place whichever directory the source comes from.

Every source, static or from the catalog, is a family plus options. :func:`source_profile` turns them into the
``SourceProfile`` routing and the validator use; :class:`GatewayOptions` declares the options every source takes
that belong to the gateway (the validator's limits and allowances), which :func:`backend_options` strips before the
backend sees the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nexus_flight.backends.base import Backend
from nexus_flight.core.source import SourceProfile, canonical_dialect, dialect_family


class GatewayOptions(BaseModel):
    """Options of any source that the gateway reads itself; they never reach the backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The validator's limits for this source (QV-009 length in bytes, QV-008 nesting and joins); the server's
    #: own limits apply when none is set.
    max_query_length: int | None = Field(None, ge=1)
    max_nesting: int | None = Field(None, ge=1)
    max_joins: int | None = Field(None, ge=0)
    max_operator_depth: int | None = Field(None, ge=1)
    #: Functions queries may call besides the dialect's allow-list (``name`` or ``schema.name``, QV-011).
    allowed_functions: tuple[str, ...] = ()
    #: Paths and URL prefixes file readers may read besides the source's own data (its ``path`` and its tables'
    #: ``location``), e.g. the files a DuckDB source's ``setup_sql`` builds views over.
    allowed_paths: tuple[str, ...] = ()


GATEWAY_OPTION_NAMES = frozenset(GatewayOptions.model_fields)
_LIMITS = {"max_query_length": "max_length", "max_nesting": "max_nesting", "max_joins": "max_joins",
           "max_operator_depth": "max_operator_depth"}


def backend_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A source's options without the gateway's own (what the backend family's model and backend receive)."""
    return {k: v for k, v in options.items() if k not in GATEWAY_OPTION_NAMES}


def source_profile(
    family: type[Backend] | None, options: Mapping[str, Any], dialect: str | None = None
) -> SourceProfile:
    """What routing and the validator need to know of a source.

    Args:
        family: The source's backend class; None when its family has no adapter here or its driver is missing
            (nothing can run on the source then, and no engine parser applies).
        options: The source's options (the gateway's own included).
        dialect: The dialect of the product the source is (``doris`` on the MySQL family); the family's own
            when None.

    """
    dialect = dialect if dialect is not None else (family.dialect if family is not None else "")
    tables = options.get("tables")
    locations = [t.get("location") for t in tables if isinstance(t, Mapping)] if isinstance(tables, list) else []
    own = [options.get("path"), *locations, *(options.get("allowed_paths") or ())]
    engine = family.engine_parser if family is not None else None
    if engine and dialect_family(canonical_dialect(dialect)) != engine:
        engine = None  # the source speaks another dialect than its engine's: that parser does not read it
    database = options.get("database")
    return SourceProfile(
        dialect=dialect,
        allowed_paths=tuple(str(p) for p in dict.fromkeys(own) if p and p != ":memory:"),
        limits={_LIMITS[k]: int(v) for k, v in options.items() if k in _LIMITS and v is not None},
        engine_dialects=family.engine_dialects if family is not None else (),
        own_catalogs=(database,) if isinstance(database, str) else (),
        engine=engine,
        allowed_functions=tuple(options.get("allowed_functions") or ()),
        reads_tree=family.reads_plan_tree if family is not None else False,
    )
