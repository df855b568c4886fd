"""An oracle over PostgreSQL's parse tree (libpg_query through pglast), written without the validator's code."""

from __future__ import annotations

import json

from pglast import parser as pg_parser

_PG_DML = {"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"}


def postgres_reading(sql: str) -> tuple[list[str], set[str], bool] | None:
    """Statement kinds, called function names and whether DML appears, as libpg_query reads ``sql``."""
    try:
        tree = json.loads(pg_parser.parse_sql_json(sql))
    except pg_parser.ParseError:
        return None
    kinds = [next(iter(s["stmt"])) for s in tree.get("stmts", [])]
    names, dml, stack = set(), False, [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "FuncCall":
                    parts = [p["String"]["sval"] for p in value.get("funcname", []) if "String" in p]
                    names.add(parts[-1] if len(parts) == 1 or parts[0] == "pg_catalog" else ".".join(parts))
                dml |= key in _PG_DML
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return kinds, names, dml
