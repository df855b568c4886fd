"""What the query and metadata paths ask before they show or run anything: may this principal see or read it.

The decision itself lives with the grants (``server/security/access_control.py``); the pipeline knows it only
through this protocol, and with none installed (authentication off) everything is allowed. Row filters and
column masks (``server/security/policies.py``) are applied through it too, to the plan a backend receives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from nexus_flight.core.identifiers import IdentifierRules
from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import SourceProfile
from nexus_flight.server.query.principal import Principal

#: A table's column names in table order (None: no such table, or its schema cannot be read), given its schema
#: (None: unqualified in a source without a default schema) and name, as the query wrote them.
TableColumns = Callable[[str | None, str], Sequence[str] | None]


class QueryAccess(Protocol):
    """Grants as the pipeline sees them."""

    def visible_catalogs(self, principal: Principal, names: Iterable[str]) -> set[str]:
        """The catalogs (sources) among ``names`` the principal may see at all."""

    def visible(self, principal: Principal, catalog: str, db_schema: str | None, table: str | None,
                rules: IdentifierRules) -> bool:
        """Whether a catalog, schema or table shows in the principal's metadata (names by the engine's ``rules``)."""

    def readable_columns(self, principal: Principal, catalog: str, db_schema: str | None,
                         table: str, rules: IdentifierRules) -> frozenset[str] | None:
        """The columns of a table the principal may read, as ``rules.key`` of their names: None for every one."""

    def reads_plans(self, principal: Principal, catalog: str) -> bool:
        """Whether ``check_query`` or the policies read the tables of the principal's plans on ``catalog``."""

    def check_query(self, principal: Principal, plan: QueryPlan, default_schema: str | None,
                    table_columns: TableColumns, rules: IdentifierRules | None = None) -> None:
        """Refuse (PERMISSION_DENIED naming the object) a planned query reading anything the principal may not.

        ``default_schema`` is where the plan's source resolves unqualified table names; ``table_columns`` expands
        a ``*`` over a table of that source; ``rules`` are how the source compares names (its dialect's if None).
        """

    def apply_policies(self, principal: Principal, plan: QueryPlan, backend_of: Callable[[str], Any],
                       default_schema: str | None, profile_of: Callable[[], SourceProfile] | None = None) -> str | None:
        """The SQL the source runs instead of the plan's, row filters and column masks applied (None: unchanged).

        ``backend_of(source)`` is the source's backend, whose metadata names tables' columns and views and holds
        the views' definitions; ``profile_of()`` the plan's source's validator rules, which judge those
        definitions. Raises ForbiddenError when the policies cannot be applied with certainty.
        """
