"""Row filters and column masks: policies on one table, kept in the catalog and checked before they are stored (AU-007).

A **row filter** is one SQL predicate over the table's columns (``region = {user.region}``); a **column mask**
names a column and the expression that replaces it (``NULL`` when none is given; ``'***' || right(ssn, 4)``).
``{user.name}`` stands for the signed-in user's name and ``{user.<attribute>}`` for one of its attributes; the
gateway puts the value in as a SQL literal (``server/security/policies.py``), never as text pasted into SQL.
Every policy applies to everyone but administrators and the roles it exempts.

A policy is checked as it is made, by the CLI and the configuration file alike: the target is
``catalog.schema.table``, the expression parses (in the source's dialect when the catalog knows the source), reads
no table, subquery, parameter, aggregate or window, and names only columns of the table (checked against the
schema cache when it holds the table) and ``{user.…}`` placeholders. Every change is an audit event written in
the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlglot
from sqlalchemy import func, select
from sqlglot import exp
from sqlglot.errors import SqlglotError

from nexus_flight.catalog.audit import audit
from nexus_flight.catalog.models import PolicyRecord
from nexus_flight.catalog.rules import rule_error
from nexus_flight.catalog.schema_cache import cached_schema
from nexus_flight.catalog.store import CatalogStore
from nexus_flight.catalog.users import _ROLE, _role
from nexus_flight.core.dialects import sql_dialect
from nexus_flight.core.errors import ConfigError, GatewayError, NotFoundError

KINDS = ("row_filter", "column_mask")
#: ``{user.region}``: the placeholder of a user attribute (``{user.name}``: the user's name).
_PLACEHOLDER = re.compile(r"\{\s*user\.([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}")
#: What a placeholder is while the expression is a tree: a column no table has.
_MARK = "__nexus_user_{}__"
_MARKED = re.compile(r"^__nexus_user_([A-Za-z_][A-Za-z0-9_]{0,63})__$")
#: Nodes a policy expression may not hold: they would read beyond the row, or change what a row is.
_FORBIDDEN = (exp.Select, exp.Subquery, exp.Table, exp.Star, exp.Placeholder, exp.Parameter, exp.AggFunc,
              exp.Window, exp.Query, exp.Command)


@dataclass(frozen=True)
class PolicyInfo:
    """One policy as the catalog keeps it."""

    id: str
    name: str
    kind: str
    catalog: str
    db_schema: str
    table: str
    column: str | None
    expression: str | None
    exempt_roles: tuple[str, ...]
    origin: str
    created_by: str | None
    created_at: datetime

    @property
    def target(self) -> str:
        """``catalog.schema.table``."""
        return f"{self.catalog}.{self.db_schema}.{self.table}"

    def shown(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {"id": self.id, "name": self.name, "kind": self.kind, "target": self.target, "column": self.column,
                "expression": self.expression, "exempt_roles": list(self.exempt_roles), "origin": self.origin,
                "created_by": self.created_by, "created_at": self.created_at}


@dataclass(frozen=True)
class PolicySpec:
    """A policy to make: what the CLI and the configuration file hand in, before it is checked."""

    name: str
    kind: str
    target: str
    column: str | None = None
    expression: str | None = None
    exempt_roles: tuple[str, ...] = ()


def placeholder_attributes(tree: exp.Expression) -> list[str]:
    """The attribute names of the ``{user.…}`` placeholders in a parsed policy expression."""
    return [m[1] for c in tree.find_all(exp.Column) if (m := _MARKED.match(c.name)) and not c.table]


def attribute_of(column: exp.Column) -> str | None:
    """The attribute a placeholder column stands for (None: a real column)."""
    match = _MARKED.match(column.name)
    return match[1] if match and not column.table else None


def parse_expression(text: str, dialect: str | None) -> exp.Expression:
    """Parse a policy expression, its ``{user.…}`` placeholders as marked columns.

    Raises:
        ConfigError: AU-007 when it does not parse, or holds what a policy may not.

    """
    if not isinstance(text, str) or not text.strip():
        raise rule_error("AU-007", "the policy expression is empty", field="expression")
    marked = _PLACEHOLDER.sub(lambda m: _MARK.format(m[1]), text)
    if "{" in marked or "}" in marked:
        raise rule_error("AU-007", f"policy expression {text!r}: placeholders are {{user.name}} or "
                                   "{user.<attribute>}", field="expression")
    try:
        trees = [t for t in sqlglot.parse(marked, read=sql_dialect(dialect) if dialect else None) if t is not None]
    except (SqlglotError, RecursionError, ValueError):
        trees = []
    if len(trees) != 1:
        raise rule_error("AU-007", f"policy expression {text!r} is not one SQL expression", field="expression")
    tree = trees[0]
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN):
            raise rule_error("AU-007", f"policy expression {text!r} may not hold {node.key.upper()} "
                                       "(only the row's own columns and {user.…} placeholders)", field="expression")
    if isinstance(tree, exp.Alias):
        raise rule_error("AU-007", f"policy expression {text!r}: no alias (the column keeps its name)",
                         field="expression")
    return tree


def table_columns(store: CatalogStore, catalog: str, db_schema: str, table: str) -> list[str] | None:
    """The columns of a table as the schema cache knows them (None: the cache does not hold it)."""
    try:
        cached = cached_schema(store, catalog)
    except GatewayError:
        return None
    if cached is None:
        return None
    schemas = {k.lower(): v for k, v in cached.content.get("schemas", {}).items()}
    tables = {k.lower(): v for k, v in schemas.get(db_schema.lower(), {}).items()}
    spec = tables.get(table.lower())
    return None if spec is None else [c["name"] for c in spec.get("columns", ())]


def check_policy(spec: PolicySpec, *, dialect: str | None = None,
                 columns: Iterable[str] | None = None) -> tuple[str, str, str]:
    """Check a policy against AU-007; return its target's ``(catalog, schema, table)``.

    Args:
        spec: The policy.
        dialect: The source's SQL dialect (None: sqlglot's own).
        columns: The table's columns, when known; every column the policy names must be among them.

    Raises:
        ConfigError: AU-004 (name) or AU-007 (anything else), naming the field.

    """
    if not isinstance(spec.name, str) or not _ROLE.match(spec.name):
        raise rule_error("AU-004", f"policy name {spec.name!r}: a letter or _, then letters, digits, _, . or -",
                         field="name")
    if spec.kind not in KINDS:
        raise rule_error("AU-007", f"policy kind {spec.kind!r}: one of {', '.join(KINDS)}", field="kind")
    parts = _target(spec)
    known = {c.lower() for c in columns} if columns is not None else None
    if spec.kind == "row_filter":
        if spec.column:
            raise rule_error("AU-007", "a row filter names no column (a column mask does)", field="column")
        if spec.expression is None:
            raise rule_error("AU-007", "a row filter needs its predicate", field="expression")
        tree = parse_expression(spec.expression, dialect)
        if not isinstance(tree.unnest(), exp.Predicate | exp.Connector | exp.Not | exp.Boolean | exp.Func):
            raise rule_error("AU-007", f"row filter {spec.expression!r} is not a predicate", field="expression")
    else:
        if not spec.column:
            raise rule_error("AU-007", "a column mask names its column", field="column")
        if known is not None and spec.column.lower() not in known:
            raise rule_error("AU-007", f"{spec.target} has no column {spec.column!r}", field="column")
        tree = parse_expression(spec.expression, dialect) if spec.expression is not None else None
    for column in tree.find_all(exp.Column) if tree is not None else ():
        if attribute_of(column) is not None:
            continue
        if column.table and column.table.lower() != parts[2].lower():
            raise rule_error("AU-007", f"policy expression {spec.expression!r} names {column.sql()}: only "
                                       f"columns of {spec.target}", field="expression")
        if known is not None and column.name.lower() not in known:
            raise rule_error("AU-007", f"{spec.target} has no column {column.name!r} (policy expression "
                                       f"{spec.expression!r})", field="expression")
    return parts[0], parts[1], parts[2]


def _target(spec: PolicySpec) -> tuple[str, str, str]:
    parts = spec.target.split(".") if isinstance(spec.target, str) else []
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise rule_error("AU-007", f"policy target {spec.target!r}: catalog.schema.table", field="target")
    return parts[0], parts[1], parts[2]


def add_policy(store: CatalogStore, spec: PolicySpec, *, origin: str = "cli", actor: str | None = None,
               replace: bool = False) -> PolicyInfo:
    """Check and store a policy; return it.

    Args:
        store: The catalog.
        spec: The policy.
        origin: ``cli`` or ``config``.
        actor: Who makes it (audit).
        replace: Replace a policy of the same name (the configuration file does, for its own policies).

    Raises:
        ConfigError: AU-002 (the name is taken), AU-005 (an exempt role does not exist), AU-004/AU-007.

    """
    catalog, db_schema, table = _target(spec)
    check_policy(spec, dialect=_dialect(store, catalog), columns=table_columns(store, catalog, db_schema, table))
    with store.session() as session:
        for role in spec.exempt_roles:
            _role(session, role)
        existing = session.scalars(select(PolicyRecord).where(
            func.lower(PolicyRecord.name) == spec.name.lower())).first()
        if existing is not None:
            if not replace or existing.origin != origin:
                raise rule_error("AU-002", f"a policy named {existing.name!r} exists ({existing.origin}); remove "
                                           "it first", field="name")
            session.delete(existing)
            session.flush()
        record = PolicyRecord(name=spec.name, kind=spec.kind, catalog=catalog, db_schema=db_schema,
                              table_name=table, column_name=spec.column or None, expression=spec.expression,
                              exempt_roles=sorted(set(spec.exempt_roles)), origin=origin, created_by=actor)
        session.add(record)
        session.flush()
        info = _info(record)
        audit(session, "policy_added", actor, info.name,
              detail={"kind": info.kind, "target": info.target, "column": info.column,
                      "expression": info.expression, "exempt_roles": list(info.exempt_roles), "origin": origin})
        return info


def list_policies(store: CatalogStore, catalog: str | None = None) -> list[PolicyInfo]:
    """Every policy (or those of one catalog), by target and name."""
    query = select(PolicyRecord).order_by(PolicyRecord.catalog, PolicyRecord.db_schema, PolicyRecord.table_name,
                                          PolicyRecord.name)
    if catalog:
        query = query.where(func.lower(PolicyRecord.catalog) == catalog.lower())
    with store.session() as session:
        return [_info(r) for r in session.scalars(query)]


def get_policy(store: CatalogStore, name: str) -> PolicyInfo:
    """One policy by name.

    Raises:
        NotFoundError: no such policy.

    """
    with store.session() as session:
        return _info(_record(session, name))


def remove_policy(store: CatalogStore, name: str, *, actor: str | None = None) -> PolicyInfo:
    """Delete a policy; return what it was.

    Raises:
        NotFoundError: no such policy.

    """
    with store.session() as session:
        record = _record(session, name)
        info = _info(record)
        session.delete(record)
        audit(session, "policy_removed", actor, info.name, detail={"kind": info.kind, "target": info.target})
        return info


def check_declared_policies(store: CatalogStore, specs: Iterable[PolicySpec], roles: set[str]) -> None:
    """Check the file's policies against the catalog, changing nothing, before any part of the file is applied.

    Args:
        store: The catalog.
        specs: The file's policies.
        roles: The roles the catalog holds once the file is applied (its own declared ones included).

    Raises:
        ConfigError: what ``add_policy`` would refuse: AU-002 (a CLI policy holds the name), AU-005 (an exempt
            role that neither the file nor the catalog has), AU-004/AU-007.

    """
    existing = list_policies(store)
    taken = {p.name.lower() for p in existing if p.origin != "config"}
    unchanged = {p.name.lower() for p in existing if p.origin == "config" and any(
        _same(p, spec) for spec in specs if spec.name.lower() == p.name.lower())}
    for spec in specs:
        if spec.name.lower() in unchanged:  # kept as it is, as sync_policies keeps it
            continue
        catalog, db_schema, table = _target(spec)
        check_policy(spec, dialect=_dialect(store, catalog), columns=table_columns(store, catalog, db_schema, table))
        if spec.name.lower() in taken:
            raise rule_error("AU-002", f"policy {spec.name!r} is declared in the file but was made with the CLI: "
                                       "remove one of them", field="name")
        for role in spec.exempt_roles:
            if role not in roles:
                raise rule_error("AU-005", f"policy {spec.name!r}: exempt role {role!r} is neither declared in "
                                           "the file nor in the catalog", field="exempt_roles")


def sync_policies(store: CatalogStore, specs: Iterable[PolicySpec], *, actor: str = "config") -> dict[str, str]:
    """Make the catalog hold the configuration file's policies; return name -> added/updated/unchanged/removed.

    The file owns the policies it declared (origin ``config``): a changed one is replaced, one no longer in the
    file is removed. Policies made with the CLI are left alone; a file policy may not take a CLI policy's name.

    Raises:
        ConfigError: a policy breaks a rule (nothing after it is applied).

    """
    current = {p.name.lower(): p for p in list_policies(store) if p.origin == "config"}
    actions: dict[str, str] = {}
    for spec in specs:
        before = current.pop(spec.name.lower(), None)
        if before is not None and _same(before, spec):
            actions[spec.name] = "unchanged"
            continue
        add_policy(store, spec, origin="config", actor=actor, replace=True)
        actions[spec.name] = "added" if before is None else "updated"
    for stale in current.values():
        remove_policy(store, stale.name, actor=actor)
        actions[stale.name] = "removed"
    return actions


def _same(info: PolicyInfo, spec: PolicySpec) -> bool:
    return (info.kind, info.target, info.column or None, info.expression, set(info.exempt_roles)) == (
        spec.kind, spec.target, spec.column or None, spec.expression, set(spec.exempt_roles))


def _dialect(store: CatalogStore, catalog: str) -> str | None:
    try:
        return store.get_source(catalog).dialect
    except (GatewayError, ConfigError):
        return None


def _record(session, name: str) -> PolicyRecord:
    record = session.scalars(select(PolicyRecord).where(func.lower(PolicyRecord.name) == name.lower())).first()
    if record is None:
        raise NotFoundError(f"no policy named {name!r}")
    return record


def _info(record: PolicyRecord) -> PolicyInfo:
    return PolicyInfo(record.id, record.name, record.kind, record.catalog, record.db_schema, record.table_name,
                      record.column_name, record.expression, tuple(record.exempt_roles or ()), record.origin,
                      record.created_by, record.created_at)
