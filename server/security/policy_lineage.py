"""Which tables of a source hand out another table's rows: partitions, inheritance children and foreign tables.

Policies are attached to a table by name, yet on PostgreSQL the rows of one table can be read under other names:
reading a partitioned (or inheritance) parent reads every partition (or child) below it, at any depth, and a
partition is a table of its own a query may name directly; a foreign table reads rows from outside the source
(``postgres_fdw`` looping back to a filtered table, for one). ``Backend.table_lineage`` lists both from the source's
metadata; this module indexes what it lists by the source's identifier rules, so the rewriter
(``server/security/policies.py``) can ask, for a name a query or a view reads:

- which tables it descends from (their policies hold for its rows too: a partition has its parent's columns, an
  inheritance child at least those);
- which tables descend from it (reading it reads their rows, which their own policies must not be escaped on);
- whether it is a foreign table (what it reads cannot be judged from the source's metadata).

A schema of None (a name the query left unqualified where the source has no default schema) matches every schema's
table of that name: more, never fewer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from nexus_flight.backends.base import TableLineage
from nexus_flight.core.identifiers import IdentifierRules

#: A table as the source's metadata lists it: (schema, name).
Table = tuple[str, str]
_Key = tuple[str, str]


@dataclass(frozen=True)
class LineageIndex:
    """A source's ``TableLineage``, keyed by its identifier rules (build it with ``lineage_index``)."""

    rules: IdentifierRules
    named: Mapping[_Key, Table]
    parents: Mapping[_Key, tuple[_Key, ...]]
    children: Mapping[_Key, tuple[_Key, ...]]
    foreign: frozenset[_Key]

    @property
    def empty(self) -> bool:
        """Whether every table of the source holds only its own rows."""
        return not self.parents and not self.foreign

    def ancestors(self, db_schema: str | None, table: str) -> list[Table]:
        """The tables ``table`` is a partition or an inheritance child of, at any depth, nearest first."""
        return self._walk(db_schema, table, self.parents)

    def descendants(self, db_schema: str | None, table: str) -> list[Table]:
        """The partitions and inheritance children of ``table``, at any depth, nearest first."""
        return self._walk(db_schema, table, self.children)

    def is_foreign(self, db_schema: str | None, table: str) -> bool:
        """Whether ``table`` is a foreign table (its rows come from outside the source)."""
        return any(key in self.foreign for key in self._keys(db_schema, table))

    def _keys(self, db_schema: str | None, table: str) -> Iterator[_Key]:
        name = self.rules.table_key(table)
        if db_schema is not None:
            yield self.rules.table_key(db_schema), name
            return
        yield from (key for key in self.named if key[1] == name)

    def _walk(self, db_schema: str | None, table: str, edges: Mapping[_Key, tuple[_Key, ...]]) -> list[Table]:
        seen = set(self._keys(db_schema, table))
        queue = list(seen)
        found: list[Table] = []
        while queue:
            for key in edges.get(queue.pop(0), ()):
                if key not in seen:
                    seen.add(key)
                    queue.append(key)
                    found.append(self.named[key])
        return found


def lineage_index(lineage: TableLineage, rules: IdentifierRules) -> LineageIndex:
    """Index what a source's metadata says of its partitions, inheritance children and foreign tables."""
    def key(db_schema: str, table: str) -> _Key:
        found = (rules.table_key(db_schema), rules.table_key(table))
        named.setdefault(found, (db_schema, table))
        return found

    named: dict[_Key, Table] = {}
    parents: dict[_Key, list[_Key]] = {}
    children: dict[_Key, list[_Key]] = {}
    for child_schema, child, parent_schema, parent in lineage.parents:
        child_key, parent_key = key(child_schema, child), key(parent_schema, parent)
        parents.setdefault(child_key, []).append(parent_key)
        children.setdefault(parent_key, []).append(child_key)
    foreign = frozenset(key(db_schema, table) for db_schema, table in lineage.foreign)
    return LineageIndex(rules, named, {k: tuple(v) for k, v in parents.items()},
                        {k: tuple(v) for k, v in children.items()}, foreign)
