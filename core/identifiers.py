"""How an engine resolves and compares the names of schemas, tables and columns.

PostgreSQL folds an unquoted name to lower case and keeps a quoted one exactly, then compares exactly: ``x``,
``X`` and ``"x"`` are one column, ``"X"`` is another. Snowflake folds to upper case the same way. DuckDB,
SQLite and BigQuery compare column and table names without regard to case, quoted or not. MySQL/MariaDB compare
column names without case, and database and table names as the server's ``lower_case_table_names`` says: exactly
for 0 (the default on Linux: ``items`` and ``Items`` are two tables), without case for 1 and 2; the source reads
it when it connects (``rules_of``), and until then they compare without case. ClickHouse compares exactly and
folds nothing.

Grants, ``SELECT *`` expansion, metadata filtering and policies compare names through these rules: a name the
query wrote is first *resolved* (the name the engine looks up), then compared by *key* with a name the catalog
holds (a grant's, a policy's, or one the source's metadata lists, all exact catalog names).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy

from nexus_flight.core.source import canonical_dialect, dialect_family


@dataclass(frozen=True)
class IdentifierRules:
    """One engine's identifier rules.

    Attributes:
        fold: What an unquoted name becomes: ``lower``, ``upper`` or ``None`` (kept as written).
        exact: Whether resolved names compare exactly (else without regard to case).
        tables_exact: Whether schema and table names compare exactly; None: as ``exact`` says (MySQL's differ
            from its column names').

    """

    fold: str | None = None
    exact: bool = False
    tables_exact: bool | None = None

    def resolve(self, name: str, quoted: bool) -> str:
        """The name the engine looks up for ``name`` as the query wrote it (quoted or not)."""
        if quoted or self.fold is None:
            return name
        return name.lower() if self.fold == "lower" else name.upper()

    def resolved(self, node: exp.Expression | None) -> str:
        """The resolved name of an identifier node ("" for none)."""
        if not isinstance(node, exp.Identifier):
            return node.name if node is not None else ""
        return self.resolve(node.name, bool(node.args.get("quoted")))

    def key(self, name: str) -> str:
        """What two resolved names are compared by: equal keys name the same object."""
        return name if self.exact else name.lower()

    def same(self, a: str | None, b: str | None) -> bool:
        """Whether two resolved names name the same object."""
        return a is not None and b is not None and self.key(a) == self.key(b)

    @property
    def table_names_exact(self) -> bool:
        """Whether schema and table names compare exactly."""
        return self.exact if self.tables_exact is None else self.tables_exact

    def table_key(self, name: str) -> str:
        """What two resolved schema or table names are compared by."""
        return name if self.table_names_exact else name.lower()

    def same_table(self, a: str | None, b: str | None) -> bool:
        """Whether two resolved schema or table names name the same object."""
        return a is not None and b is not None and self.table_key(a) == self.table_key(b)


CASE_INSENSITIVE = IdentifierRules()
_BY_STRATEGY = {
    NormalizationStrategy.LOWERCASE: IdentifierRules("lower", exact=True),
    NormalizationStrategy.UPPERCASE: IdentifierRules("upper", exact=True),
    NormalizationStrategy.CASE_SENSITIVE: IdentifierRules(None, exact=True),
}
#: Engines sqlglot calls case-sensitive for their table names on some systems, whose columns compare without case.
_CASE_INSENSITIVE_FAMILIES = frozenset({"mysql"})


def mysql_rules(lower_case_table_names: int) -> IdentifierRules:
    """A MySQL/MariaDB server's rules, by its ``@@lower_case_table_names``: 0 keeps table names exact."""
    return IdentifierRules(tables_exact=lower_case_table_names == 0)


def rules_of(backend: Any) -> IdentifierRules:
    """A source's rules: its backend's own (read from its server) where it has them, else its dialect's."""
    rules = getattr(backend, "identifier_rules", None)
    return rules if isinstance(rules, IdentifierRules) else identifier_rules(backend.dialect)


@lru_cache(maxsize=64)  # asked per query; sqlglot builds a Dialect on each get_or_raise
def identifier_rules(dialect: str) -> IdentifierRules:
    """The identifier rules of an engine speaking sqlglot's ``dialect`` (case-insensitive when unknown)."""
    name = canonical_dialect(dialect)
    if dialect_family(name) in _CASE_INSENSITIVE_FAMILIES:
        return CASE_INSENSITIVE
    try:
        strategy = Dialect.get_or_raise(name).normalization_strategy
    except ValueError:
        return CASE_INSENSITIVE
    return _BY_STRATEGY.get(strategy, CASE_INSENSITIVE)
