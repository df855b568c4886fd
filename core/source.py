"""What a source is, to every layer: how a backend connects to it, how its queries are limited and routed.

``SourceSpec`` is what a backend needs to connect; ``QueryLimits`` bounds one query; ``ValidationLimits`` bounds
the SQL the validator accepts; ``SourceProfile`` is what routing and validation know of a source. They live below
``backends``, ``catalog`` and ``server`` so that none of those has to import another to speak of a source.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from typing import Any


@dataclass
class SourceSpec:
    """What a backend needs to connect: the source's name, its non-secret options and its decrypted secrets.

    Secrets are only ever held here, inside the backend process, never logged or returned.
    """

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: The dialect of the product the source is when it is not its family's (``doris`` on the MySQL family).
    dialect: str | None = None


@dataclass(frozen=True)
class QueryLimits:
    """Limits applied to one query.

    The query service enforces the time limit, the message size and the result caps on every stream
    (``server/query/results.py``); adapters honour ``batch_rows`` and may pass the time limit on to their
    engine as well.
    """

    timeout_seconds: float = 300.0
    #: Memory one query may hold in the gateway (the server's ``memory_limit``, a source's or a user's, resolved by
    #: the query service): a DuckDB-run query's own database instance is held to it, ClickHouse gets it as
    #: ``max_memory_usage``, and no engine batch larger than it is buffered. None (a backend used on its own):
    #: the source's ``memory_limit`` option, else 1 GiB.
    memory_limit_bytes: int | None = None
    batch_rows: int = 65_536
    #: The largest Flight message the gateway sends; the result stream cuts batches to fit (adapters ignore it).
    max_message_bytes: int = 16 * 1024 * 1024
    #: Most rows one result may have (None: no cap); the query stops with an error naming the cap.
    max_result_rows: int | None = None
    #: Most bytes (Arrow buffers) one result may have (None: no cap).
    max_result_bytes: int | None = None
    #: The client's correlation id (``x-correlation-id``), for engines that can tag their jobs with it.
    correlation_id: str | None = None
    #: Which of ``timeout_seconds``, ``max_result_rows`` and ``max_result_bytes`` the caller's own limits lowered
    #: (``max_query_seconds``, ``max_rows``, ``max_bytes``): errors then name the caller's limit.
    lowered_by_caller: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ValidationLimits:
    """Limits a query must stay within (per source; the defaults suit analytical SQL).

    Attributes:
        max_length: Longest query, in UTF-8 bytes (QV-009).
        max_nesting: Deepest nesting of parentheses and CASE, and of subqueries (QV-008).
        max_joins: Most joins in one statement, counted over all subqueries (QV-008).
        max_expression_depth: Deepest expression tree, e.g. a chain of ORs (QV-008).
        max_operator_depth: Most arithmetic, comparison or concatenation operators nested in one another, e.g.
            ``1 + 1 + … + 1`` (QV-008). AND and OR do not count: engines flatten them, while DuckDB's binder
            spends time growing with the cube of such a chain (0.3 s for 200 terms, 13 s for 850).

    """

    max_length: int = 100_000
    max_nesting: int = 64
    max_joins: int = 64
    max_expression_depth: int = 1_500
    max_operator_depth: int = 256

    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        """Worked out once: limits are part of every validator cache key."""
        return hash(astuple(self))

    @classmethod
    def from_mapping(cls, values: Any) -> ValidationLimits:
        """Build limits from a mapping of field names (unknown keys ignored); limits pass through as given."""
        if isinstance(values, ValidationLimits):
            return values
        known = {k: int(v) for k, v in dict(values or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


DEFAULT_LIMITS = ValidationLimits()


def canonical_dialect(dialect: str) -> str:
    """The sqlglot name of a dialect, whatever its spelling (``postgresql`` is ``postgres``)."""
    return {"postgresql": "postgres"}.get(dialect.lower(), dialect.lower())


#: Dialects that are another's with additions: the validator applies that one's rules, and that engine's
#: parser reads them.
DIALECT_FAMILY: dict[str, str] = {
    "redshift": "postgres",
    "materialize": "postgres",
    "risingwave": "postgres",
    "doris": "mysql",
    "starrocks": "mysql",
    "singlestore": "mysql",
}


def dialect_family(dialect: str) -> str:
    """The dialect ``dialect`` belongs to (``redshift`` is ``postgres``), or itself."""
    return DIALECT_FAMILY.get(dialect, dialect)


@dataclass(frozen=True)
class SourceProfile:
    """What routing and the validator need to know of one source: its dialect, paths, limits and engine.

    Attributes:
        dialect: The sqlglot dialect the source's engine speaks.
        allowed_paths: Paths and URL prefixes the source's own data lives under (file readers may touch only
            these).
        limits: The validator's limits for this source (a ``ValidationLimits`` or a mapping of its fields).
        engine_dialects: Further dialects whose deny lists apply: those of an engine that finally runs the
            SQL, e.g. ``("duckdb",)`` for a backend that executes through DuckDB (its file readers, query()).
        own_catalogs: Catalog names the source's engine resolves itself (its configured database, which
            PostgreSQL accepts as the first part of a name); any other first part must name a source.
        engine: The engine whose own parser reads the SQL the source receives (``"postgres"``, ``"duckdb"``);
            None where no engine parser runs in the gateway (the validator then fails closed on calls sqlglot
            cannot map).
        allowed_functions: Functions the source declares callable besides its dialect's allow-list.
        reads_tree: The source's backend reads every plan's sqlglot tree (its tables) to run it: routing reads the
            tree at once instead of first deciding on the engine's reading alone.

    """

    dialect: str
    allowed_paths: tuple[str, ...] = ()
    limits: ValidationLimits = field(default_factory=ValidationLimits)
    engine_dialects: tuple[str, ...] = ()
    own_catalogs: tuple[str, ...] = ()
    engine: str | None = None
    allowed_functions: tuple[str, ...] = ()
    reads_tree: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", ValidationLimits.from_mapping(self.limits))
        object.__setattr__(self, "allowed_paths", tuple(self.allowed_paths))
        object.__setattr__(self, "engine_dialects", tuple(self.engine_dialects))
        object.__setattr__(self, "own_catalogs", tuple(self.own_catalogs))
        object.__setattr__(self, "allowed_functions", tuple(str(f) for f in self.allowed_functions))

    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        """Worked out once: profiles are part of every cached plan's key."""
        return hash((self.dialect, self.allowed_paths, self.limits, self.engine_dialects, self.own_catalogs,
                     self.engine, self.allowed_functions, self.reads_tree))

    def rule_dialects(self, read_dialect: str) -> tuple[str, ...]:
        """Dialects whose rules apply besides ``read_dialect``: this source's own, and its engine's."""
        extra = (self.dialect, *self.engine_dialects)
        return tuple(d for d in dict.fromkeys(extra) if canonical_dialect(d) != canonical_dialect(read_dialect))
