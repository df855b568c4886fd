"""What the query and metadata paths ask before they show or run anything: may this principal see or read it.

The decision itself lives with the grants (``server/security/access_control.py``); the pipeline knows it only
through this protocol, and with none installed (authentication off) everything is allowed. Row filters and
column masks (``server/security/policies.py``) are applied through it too, to the plan a backend receives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nexus_flight.core.plan import QueryPlan
from nexus_flight.server.query.principal import Principal


class QueryAccess(Protocol):
    """Grants as the pipeline sees them."""

    def visible_catalogs(self, principal: Principal, names: Iterable[str]) -> set[str]:
        """The catalogs (sources) among ``names`` the principal may see at all."""

    def visible(self, principal: Principal, catalog: str, db_schema: str | None = None,
                table: str | None = None) -> bool:
        """Whether a catalog, schema or table shows in the principal's metadata."""

    def check_query(self, principal: Principal, catalog: str, sql: str, dialect: str,
                    default_schema: str | None) -> None:
        """Refuse (PERMISSION_DENIED naming the object) a query reading anything the principal may not read."""

    def apply_policies(self, principal: Principal, plan: QueryPlan,
                       backend_of: Callable[[str], Any], default_schema: str | None) -> str | None:
        """The SQL the source runs instead of the plan's, row filters and column masks applied (None: unchanged).

        ``backend_of(source)`` is the source's backend, whose metadata names tables' columns and views. Raises
        ForbiddenError when the policies cannot be applied with certainty.
        """
