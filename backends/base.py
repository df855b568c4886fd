"""The interface every backend adapter implements.

A backend turns a planned read-only query into a lazy ``pyarrow.RecordBatchReader`` and answers the metadata
questions of Flight SQL (schemas, tables, columns, keys). The server never imports a driver: it talks to this
interface only.

Queries arrive as a ``QueryPlan`` (``core/plan.py``): the exact text to send (``plan.sql``), its dialect, sqlglot's
analysed tree of it, where its placeholders stand and the tables it reads, worked out once by the router and
the validator. A backend reads what it needs from the plan and never parses the SQL again. ``plan_sql`` makes a
plan for callers that drive a backend directly (tools, tests).

An execution only starts its query, honours ``QueryLimits.batch_rows``, maps its engine's errors and stops when
cancelled: the server's time limit, result caps, byte-sized batches and the classification of a stopped stream
are the query service's (``server/query/results.py``), the same for every family.

Every adapter must also carry the second line of read-only defence in its own terms (read-only attachments,
read-only transactions, read-only users): ``read_only_guard`` documents what it does, and the conformance suite
runs writes against each backend with the validator switched off.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel

from nexus_flight.core.plan import QueryPlan
from nexus_flight.core.source import QueryLimits, SourceSpec


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the conformance suite reads these to choose its checks."""

    #: Bound parameters (``?`` placeholders) are supported.
    parameters: bool = True
    #: ``cancel`` stops the running query in the engine.
    cancel: bool = True
    #: Primary and foreign keys are reported.
    keys: bool = False
    #: The engine can return the result schema without running the query.
    schema_without_execution: bool = True
    #: A statement's result and parameter schemas cannot change while the backend is open (its database is
    #: read-only and nothing else may write it), so the gateway may reuse them for the same text.
    stable_schemas: bool = False


@dataclass(frozen=True)
class TableInfo:
    """One table or view as the metadata commands report it."""

    db_schema: str
    name: str
    table_type: str = "TABLE"


@dataclass(frozen=True)
class TableLineage:
    """Which tables of a source hand out rows they do not hold themselves (names as the source's metadata lists).

    Attributes:
        parents: ``(schema, child, schema, parent)`` for each table that is a partition or an inheritance child of
            another: reading the parent reads the child's rows too, and the child holds (at least) the parent's
            columns.
        foreign: ``(schema, table)`` of each table whose rows come from outside the source (a foreign table):
            what it reads cannot be told from the source's metadata.

    """

    parents: tuple[tuple[str, str, str, str], ...] = ()
    foreign: tuple[tuple[str, str], ...] = ()


#: A source where every table holds its own rows.
NO_LINEAGE = TableLineage()


@dataclass(frozen=True)
class KeyColumn:
    """One column of a primary or foreign key."""

    db_schema: str
    table: str
    column: str
    key_sequence: int
    key_name: str | None = None


#: Flight SQL's referential-action codes (update_rule / delete_rule of a foreign key), by their SQL names.
FK_RULE_CODES = {"CASCADE": 0, "RESTRICT": 1, "SET NULL": 2, "NO ACTION": 3, "SET DEFAULT": 4}


@dataclass(frozen=True)
class ForeignKeyColumn:
    """One column pair of a foreign key, as GetImportedKeys/GetExportedKeys report it."""

    pk: KeyColumn
    fk: KeyColumn
    update_rule: int = 3  # NO ACTION
    delete_rule: int = 3


#: Field metadata of ``Backend.table_schema``: the database's own name of the column's type (``bigint``,
#: ``numeric(15,2)``, ``VARCHAR(44)``), which the metadata commands report as ARROW:FLIGHT:SQL:TYPE_NAME.
DATABASE_TYPE_NAME = b"nexus.database_type_name"
#: Field metadata of ``Backend.table_schema``: the fractional-second digits a TIMESTAMP or TIME column declares
#: (``timestamp(3)``, MySQL's ``datetime``: 0), which its Arrow unit (microseconds) does not tell.
FRACTIONAL_DIGITS = b"nexus.fractional_digits"


def catalog_column(
    field: pa.Field, type_name: str | None, nullable: bool, fractional_digits: int | None = None
) -> pa.Field:
    """``field`` as the database's catalog describes its column.

    Its own type name, its nullability and, for a TIMESTAMP or TIME column, its fractional-second digits (None:
    those of its Arrow unit).
    """
    field = field.with_nullable(nullable)
    meta = {}
    if type_name:
        meta[DATABASE_TYPE_NAME] = type_name.encode()
    if fractional_digits is not None:
        meta[FRACTIONAL_DIGITS] = str(fractional_digits).encode()
    return field.with_metadata({**(field.metadata or {}), **meta}) if meta else field


def parameter_schema(types: Sequence[pa.DataType]) -> pa.Schema:
    """Return the schema of a statement's placeholders: one nullable field ``parameter_<n>`` per type."""
    return pa.schema([pa.field(f"parameter_{i + 1}", t, nullable=True) for i, t in enumerate(types)])


class Execution(abc.ABC):
    """A running query: its result stream and a way to stop it.

    Failures surface from ``reader`` (starting) or from its batches, mapped to the gateway's errors where the
    adapter knows its engine's; after ``cancel`` whatever the engine raises is reported as the stop it was.
    """

    #: Table → version or snapshot id the query read, for sources that version their tables (lake formats).
    read_versions: Mapping[str, str] = MappingProxyType({})

    @property
    @abc.abstractmethod
    def reader(self) -> pa.RecordBatchReader:
        """The lazy result stream."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the query in the engine; safe to call from another thread, more than once, and after it finished."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release engine resources held by the query."""

    def drop_stream(self) -> None:
        """Forget the result stream once the call has ended (the service calls it after ``close``).

        Executions keep their started stream in ``_reader``: a pyarrow reader over a generator of their own, whose
        frame refers back to the execution. That cycle runs through C++, where Python's collector cannot see it,
        so a stream its client abandoned would keep the execution, the engine's cursor and its buffered batches
        alive for good.
        """
        self.__dict__.pop("_reader", None)


class Backend(abc.ABC):
    """One configured data source of one engine family."""

    #: Registry key and configuration discriminator.
    kind: ClassVar[str]
    #: The sqlglot dialect queries are validated and transpiled in.
    dialect: ClassVar[str]
    #: Dialects of engines that finally run the SQL besides ``dialect`` (their deny lists apply too).
    engine_dialects: ClassVar[tuple[str, ...]] = ()
    #: The engine whose own parser reads the SQL this backend receives, when the gateway has that parser
    #: (``"duckdb"``, ``"postgres"``): the validator then judges the engine's reading too. It applies only while
    #: ``dialect`` is that engine's (a subclass that translates another dialect first gets none).
    engine_parser: ClassVar[str | None] = None
    #: Whether running any plan reads its sqlglot tree (the tables it binds): routing then reads the tree at once.
    reads_plan_tree: ClassVar[bool] = False
    #: The schema unqualified names resolve to (reported as the session's current schema, and where grants on a
    #: schema find an unqualified table); a family whose sources choose it sets it per source (``default_schema_for``).
    default_schema: str | None = None
    #: Where a relation name that ``view_definition``'s text leaves unqualified resolves (None: the view's schema).
    view_names_schema: ClassVar[str | None] = None
    #: What this backend can do.
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: One sentence on the connection-level read-only defence this backend applies.
    read_only_guard: ClassVar[str]
    #: The database's own type names and their XDBC data types, for GetXdbcTypeInfo (None: DuckDB's names).
    xdbc_type_names: ClassVar[Mapping[str, int] | None] = None
    #: Whether the source's server decides how it compares names (MySQL's ``lower_case_table_names``): its
    #: backend then holds ``identifier_rules`` read from the server when it connects (``core/identifiers.py``).
    identifiers_from_server: ClassVar[bool] = False
    #: Frozen pydantic model (``extra="forbid"``) of this family's options plus secrets, secrets as ``SecretStr``;
    #: the catalog validates a source's configuration with it.
    config_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    @classmethod
    def default_schema_for(cls, options: Mapping[str, Any]) -> str | None:
        """The schema unqualified names of a source with these options resolve to (the family's, by default)."""
        return cls.default_schema

    @classmethod
    def content_identity(cls, options: Mapping[str, Any]) -> Hashable | None:
        """What names the data a source with these options reads, where something may swap it under the gateway.

        E.g. a file renamed over the source's path: when the identity changes, the source is opened again. None:
        nothing to watch (the family's engine sees changes itself, or none can happen).
        """
        return None

    @property
    def name(self) -> str:
        """The source's name, which is also its Flight SQL catalog name."""
        return self.spec.name

    @property
    def query_memory_limit(self) -> str | None:
        """The source's own memory limit for each of its queries (its ``memory_limit`` option), if it sets one."""
        value = self.spec.options.get("memory_limit") if getattr(self, "spec", None) is not None else None
        return str(value) if value else None

    def pool_sizes(self) -> tuple[int, int] | None:
        """Connections of the source's pool lent out and idle (None: the family pools none)."""
        pool = getattr(self, "pool", None)
        if pool is None:
            return None
        return pool.in_use, pool.idle

    @abc.abstractmethod
    def get_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return the result schema of ``plan`` without running it (placeholders bound to NULL).

        Raises:
            InvalidQueryError: the SQL does not bind in the engine.
            BackendUnavailableError: the source cannot be reached.

        """

    def get_parameter_schema(self, plan: QueryPlan) -> pa.Schema:
        """Return one nullable, concrete Arrow field per placeholder (JDBC binds into these types)."""
        return parameter_schema([pa.utf8()] * plan.parameter_count)

    def get_bound_schema(self, plan: QueryPlan, parameters: Sequence[Sequence[Any]]) -> pa.Schema | None:
        """Return the result schema once ``parameters`` are bound, where it can differ from ``get_schema``'s.

        Engines whose result types follow the bound values answer here (SQLite types values, not columns; a
        PostgreSQL placeholder takes its value's type); None keeps the schema found when the statement was
        prepared.

        Raises:
            InvalidQueryError: the SQL or the parameters do not bind.

        """
        return None

    def split(self, plan: QueryPlan, most: int) -> list[QueryPlan]:
        """The plans of the endpoints ``plan``'s result is served as (at most ``most``), whose rows add up to it.

        One (``[plan]``) unless the family can split a result: a scan of several files by groups of files
        (``file_part``), an upstream Flight SQL server's result by its own endpoints (``upstream_partitions``).

        Raises:
            GatewayError: the source failed while finding the parts (the caller serves the result whole).

        """
        return [plan]

    @abc.abstractmethod
    def execute(
        self,
        plan: QueryPlan,
        parameters: Sequence[Sequence[Any]] | None,
        limits: QueryLimits,
    ) -> Execution:
        """Prepare ``plan`` to run; each parameter row runs once and results are concatenated.

        The query should start when the execution's ``reader`` is first asked for, so that the caller can
        register it for cancel first; the reader's batches have at most ``limits.batch_rows`` rows.

        Raises:
            InvalidQueryError: the SQL or the parameters do not bind.
            ReadOnlyViolationError: the engine refused a write (the second line of defence).
            BackendUnavailableError: the source cannot be reached.

        """

    @abc.abstractmethod
    def list_schemas(self) -> list[str]:
        """Return the schema names of this source.

        Raises:
            BackendUnavailableError: the source cannot be reached.

        """

    @abc.abstractmethod
    def list_tables(self, db_schema: str | None = None) -> list[TableInfo]:
        """Return the tables and views, optionally of one schema.

        Raises:
            BackendUnavailableError: the source cannot be reached.

        """

    @abc.abstractmethod
    def table_schema(self, db_schema: str, table: str) -> pa.Schema:
        """Return the Arrow schema of one table, with the types a query of it returns.

        Each column is nullable only when the database says so, and carries the database's own type name in
        ``DATABASE_TYPE_NAME`` metadata where it has one (``catalog_column``).

        Raises:
            NotFoundError: no such table.

        """

    def table_schemas(self, db_schema: str) -> Mapping[str, pa.Schema]:
        """Return ``table_schema`` of some tables of ``db_schema`` read together: the ones the engine answers in bulk.

        A snapshot asks ``table_schema`` for each table left out; by default that is every table.
        """
        return {}

    def primary_keys(self, db_schema: str | None, table: str) -> list[KeyColumn]:
        """Return the primary-key columns of a table (empty when the engine has none or cannot say)."""
        return []

    def foreign_keys(self, db_schema: str | None = None, table: str | None = None) -> list[ForeignKeyColumn]:
        """Return foreign-key column pairs where ``table`` is either side (all when ``table`` is None)."""
        return []

    def view_definition(self, db_schema: str, view: str) -> str | None:
        """Return the query a view of the source runs, as the source's own metadata holds it (None: unknown).

        ``db_schema`` and ``view`` are the names the source's metadata lists. Relation names the query leaves
        unqualified resolve in ``view_names_schema`` (the view's own schema when that is None). A family that
        cannot read its views' definitions returns None: row filters and column masks then refuse its views.

        Raises:
            BackendUnavailableError: the source cannot be reached.

        """
        return None

    def table_lineage(self) -> TableLineage:
        """Return the source's partitions, inheritance children and foreign tables (``TableLineage``).

        Row filters and column masks read it to follow a table's rows wherever the source also hands them out. A
        family whose tables all hold their own rows (and may not be read under another table's name) returns
        ``NO_LINEAGE`` without asking the source.

        Raises:
            BackendUnavailableError: the source cannot be reached.

        """
        return NO_LINEAGE

    def view_database(self) -> str | None:
        """The name the source's view definitions may give its own database in a qualified name (None: none).

        A relation a view names with it (``shop.main.depts`` in DuckDB's file ``shop.duckdb``, ``memory.main.depts``
        in its in-memory database) is the source's own; a view naming any other database is refused where row
        filters and column masks apply.
        """
        return None

    def ping(self) -> None:
        """Check the source answers.

        Raises:
            BackendUnavailableError: it does not.

        """
        self.list_schemas()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and engine resources."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReaderExecution(Execution):
    """An execution whose stream already exists and whose cancel is a callable."""

    def __init__(self, reader: pa.RecordBatchReader, cancel=None, close=None) -> None:
        self._reader = reader
        self._cancel = cancel
        self._close = close

    @property
    def reader(self) -> pa.RecordBatchReader:
        """The result stream."""
        return self._reader

    def cancel(self) -> None:
        """Call the engine's cancel, if it has one."""
        if self._cancel is not None:
            self._cancel()

    def close(self) -> None:
        """Call the engine's close hook, if any."""
        if self._close is not None:
            self._close()
