"""What a view of a source reads, found through its definition: whether policies let a caller read it as it is.

The rewrite (``server/security/policies.py``) cannot filter inside a view, so on a source where policies apply
to the caller a view is read as it is only when nothing it reads can reach a table with policies. This module
works out, once per view (cached by the rewriter with its other metadata), every relation the view reads:

- its definition comes from the source's own metadata (``Backend.view_definition``); a family that cannot read
  it, or a definition that cannot be read, leaves the view refused;
- the definition is judged by the read-only validator exactly as a query sent to the source would be
  (``server/query/sql/routing.judged``: the source's dialect, its allow-lists of functions, its engine's own
  reading): a definition calling a function the validator does not allow (a user-defined function could read
  anything) leaves the view refused, naming the function;
- every relation it names (a CTE's name is not one; the CTE's body is read) must be a table or a view the
  source's metadata lists in the schema the name resolves to: the view's own schema for an unqualified name
  (``Backend.view_names_schema`` where the family's definitions say otherwise), the written one else. A name
  qualified with the source's own database (``Backend.view_database``: DuckDB keeps ``shop.main.t`` as written
  in ``shop.duckdb``, and ``memory.main.t`` in memory) is the source's. A table function, a file path, a name
  of another database, a system relation or anything the metadata does not list leaves the view refused,
  naming it;
- each view it reads is looked through the same way, at most ``MAX_VIEW_DEPTH`` deep; a view reading itself
  is refused;
- a relation read ``ONLY`` (PostgreSQL: ``pg_get_viewdef`` prints ``FROM ONLY public.logs`` for a view written
  ``FROM ONLY logs`` or ``FROM ONLY (logs)``, and ``FROM public.logs`` for ``logs*``) is marked so: it reads its
  own rows, not its partitions' or inheritance children's.

What is found does not depend on the caller: the rewriter then refuses the view when any relation found has a
policy that applies to the caller (an unqualified name counts for every schema's policies on it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlglot import exp

from nexus_flight.backends.base import TableInfo
from nexus_flight.core.errors import BackendUnavailableError, GatewayError
from nexus_flight.core.identifiers import IdentifierRules
from nexus_flight.core.references import TableRef, cte_references, table_ref
from nexus_flight.core.source import SourceProfile
from nexus_flight.server.query.sql.routing import judged

#: How deep views may read views before the outermost one is refused.
MAX_VIEW_DEPTH = 8
#: Characters in a table name that make DuckDB read a file instead (``FROM "data/orders.csv"``).
PATH_CHARACTERS = ("/", "\\", ".", ":")

#: The tables and views of one schema of the source, ``rules.table_key`` of a name -> what the metadata lists
#: (None: the listing failed).
SchemaListing = Callable[[str], Mapping[str, TableInfo] | None]


@dataclass(frozen=True)
class Reached:
    """One relation a view reads, directly or through the views it reads.

    Attributes:
        db_schema: The schema its name was written with (None: unqualified, so every schema's policies count).
        name: Its name as the source's metadata lists it.
        shown: ``source.schema.name`` for messages.
        through: The views read on the way to it, outermost first, as shown.
        only: Read ``ONLY`` (PostgreSQL): its own rows, none of its partitions' or inheritance children's.

    """

    db_schema: str | None
    name: str
    shown: str
    through: tuple[str, ...]
    only: bool = False


@dataclass(frozen=True)
class ViewReach:
    """Every relation a view reads (``relations``), or why that cannot be known (``refusal``)."""

    relations: tuple[Reached, ...] = ()
    refusal: str | None = None


class _Refused(Exception):
    """Why a view cannot be looked through (the text ends up in the caller's PERMISSION_DENIED)."""


def view_reach(source: str, view: TableInfo, backend: Any, profile: SourceProfile, rules: IdentifierRules,
               listing: SchemaListing) -> ViewReach:
    """Find what ``view`` of ``source`` reads (see the module's docstring).

    Args:
        source: The source's name (for messages).
        view: The view as the source's metadata lists it.
        backend: The source's backend (its ``view_definition`` and ``view_names_schema``).
        profile: The source's validator rules.
        rules: How the source compares names.
        listing: The tables and views of a schema.

    Raises:
        GatewayError: the source's metadata could not be read now (nothing is decided; ask again later).

    """
    found: list[Reached] = []
    try:
        _Walk(source, backend, profile, rules, listing, found).view(view, ())
    except _Refused as exc:
        return ViewReach(refusal=str(exc))
    return ViewReach(tuple(found))


@dataclass
class _Walk:
    source: str
    backend: Any
    profile: SourceProfile
    rules: IdentifierRules
    listing: SchemaListing
    found: list[Reached]
    walked: set[str] = field(default_factory=set)

    def shown(self, db_schema: str, name: str) -> str:
        return f"{self.source}.{db_schema}.{name}"

    def view(self, view: TableInfo, through: tuple[str, ...]) -> None:
        shown = self.shown(view.db_schema, view.name)
        if shown in through:
            raise _Refused(f"{' -> '.join((*through, shown))} reads itself")
        if len(through) >= MAX_VIEW_DEPTH:
            raise _Refused(f"{through[0]} reads views more than {MAX_VIEW_DEPTH} deep")
        if shown in self.walked:  # read twice (a join of two views over it): what it reads is found already
            return
        self.walked.add(shown)
        definition = self.backend.view_definition(view.db_schema, view.name)
        if not definition:
            raise _Refused(f"the definition of {shown} cannot be read from the source's metadata")
        try:
            analysis = judged(definition, self.profile)
        except GatewayError as exc:
            raise _Refused(f"the definition of {shown} is refused by the read-only validator: {exc.message}") from None
        tree = analysis.tree
        if analysis.query is not tree or not isinstance(tree, exp.Query):
            raise _Refused(f"the definition of {shown} is not a plain query")
        through = (*through, shown)
        names_schema = self.backend.view_names_schema or view.db_schema
        shadowed = cte_references(tree)
        for node in tree.find_all(exp.Table, exp.Unnest, exp.Lateral):
            if isinstance(node, exp.Table) and id(node) not in shadowed:
                self.relation(node, names_schema, through)
            elif isinstance(node, exp.Unnest) and isinstance(node.parent, exp.From | exp.Join):
                raise _Refused(f"{shown} reads the table function unnest")
            elif isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
                raise _Refused(f"{shown} reads a table function through LATERAL")

    def relation(self, node: exp.Table, names_schema: str, through: tuple[str, ...]) -> None:
        viewer = through[-1]
        if not isinstance(node.this, exp.Identifier) or not node.name:
            what = node.this.sql(dialect=self.profile.dialect).split("(")[0] if node.this is not None else "?"
            raise _Refused(f"{viewer} reads the table function {what.lower()}")
        if any(c in node.name for c in PATH_CHARACTERS):
            raise _Refused(f"{viewer} reads {node.name!r} by path")
        ref = table_ref(node, self.rules)
        written = self.written_schema(ref, viewer)
        db_schema = written or names_schema
        info = self.listed(db_schema).get(self.rules.table_key(ref.name))
        if info is None or info.table_type not in ("TABLE", "VIEW"):
            raise _Refused(f"{viewer} reads {self.shown(db_schema, ref.name)}, which is not a table of the source")
        self.found.append(Reached(written, info.name, self.shown(info.db_schema, info.name), through,
                                  only=bool(node.args.get("only"))))
        if info.table_type == "VIEW":
            self.view(info, through)

    def listed(self, db_schema: str) -> Mapping[str, TableInfo]:
        listed = self.listing(db_schema)
        if listed is None:  # the listing failed: nothing is decided (the caller asks again shortly)
            raise BackendUnavailableError(f"the tables of {self.source}.{db_schema} cannot be listed now")
        return listed

    def written_schema(self, ref: TableRef, viewer: str) -> str | None:
        """The schema a relation's name is qualified with (None: unqualified), its database the source's own.

        A name of the source's own database (``Backend.view_database``) is the source's: ``shop.main.t`` reads
        ``main.t``, and so does ``shop.t`` where no schema is called ``shop`` (DuckDB reads it in the database's
        default schema). Any other database's name is refused.
        """
        own = self.own_database
        if ref.catalog:
            if not self.rules.same_table(ref.catalog, own):
                raise _Refused(f"{viewer} reads {ref.catalog}.{ref.db_schema}.{ref.name}, of another database")
            return ref.db_schema
        default = self.backend.default_schema
        if ref.db_schema and default and self.rules.same_table(ref.db_schema, own) and not self.listed(ref.db_schema):
            return str(default)
        return ref.db_schema

    @cached_property
    def own_database(self) -> str | None:
        return self.backend.view_database()
