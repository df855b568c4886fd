"""An oracle over DuckDB's full parse tree (``json_serialize_sql``), written without the validator's code."""

from __future__ import annotations

import json

#: Names DuckDB's serializer gives to operators and syntax (``+``, ``count_star``, ``~~``): not calls.
DUCKDB_SYNTAX = {"count_star", "~~", "!~~", "~~*", "!~~*", "~~~", "list_value", "struct_pack", "row",
                 "array_extract", "array_slice", "map", "try_strptime", "date_part", "list_pack", "unnest"}


def duckdb_reads(con, sql: str) -> tuple[set[str], set[str]] | None:
    """Function names and base-table names in DuckDB's own parse tree; None when DuckDB serializes nothing.

    DuckDB serializes SELECT statements only: None also means "not one query".
    """
    found = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    tree = json.loads(found)
    if tree.get("error"):
        return None
    names, tables, stack = set(), set(), [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = node.get("function_name")
            if isinstance(name, str) and node.get("class") in ("FUNCTION", "AGGREGATE", "WINDOW"):
                names.add(name.lower())
            if node.get("type") == "TABLE_FUNCTION":
                inner = node.get("function", {})
                if isinstance(inner.get("function_name"), str):
                    names.add(inner["function_name"].lower())
            if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
                tables.add(node["table_name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names, tables


def duckdb_functions(con, sql: str) -> set[str] | None:
    """Every function name in DuckDB's own serialized parse tree; None when DuckDB serializes nothing."""
    reads = duckdb_reads(con, sql)
    return None if reads is None else reads[0]
