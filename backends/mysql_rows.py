"""Rows of an unbuffered MariaDB Connector/Python cursor, and the error a server sends in place of a row.

A statement over the binary protocol sends its columns first and computes rows as they are fetched, so an error
can come where a row was expected: the statement killed (``KILL QUERY``) or past ``max_statement_time`` while it
computes, or failing on a value ("Subquery returns more than 1 row"). MariaDB Connector/Python 1.1 takes that
error for one more row (``fetchmany``: any ``mysql_stmt_fetch`` result but "no data" is a row). The row it
builds holds the values of the row before it, whose references it does not own, or NULL pointers when no row came
before: reading it crashes the process (SIGSEGV), freeing it frees the previous row's values a second time. The
error itself is never raised; the result just ends.

The driver counts the rows the server really sent (``rowcount``, Connector/C's ``mysql_stmt_num_rows``), so a batch
with more rows than that ends with the stand-in. Its slots are emptied before it is dropped, so that it releases
nothing, and the server's error is read from the session's diagnostics (``SHOW WARNINGS``) and raised.
"""

from __future__ import annotations

import ctypes
from typing import Any

import mariadb

#: Where a tuple's item pointers begin in CPython's ``PyTupleObject``.
_TUPLE_ITEMS = tuple.__basicsize__


class RowFetcher:
    """Fetches the rows of one executed unbuffered cursor; raises the server's error instead of a stand-in row."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self._fetched = 0

    def fetch(self, size: int) -> list[tuple]:
        """Up to ``size`` rows; an empty list at the end of the result.

        Raises:
            mariadb.Error: the server ended the result with an error (its own number and text).

        """
        rows = self._cursor.fetchmany(size)
        sent = self._cursor.rowcount - self._fetched  # -1 for a closed cursor: nothing to compare
        if 0 <= sent < len(rows):
            while len(rows) > sent:
                _empty(rows.pop())
            raise server_error(self._cursor.connection)
        self._fetched += len(rows)
        return rows


def _empty(row: tuple) -> None:
    """Set every slot of a stand-in row to NULL without reading it: freeing it then releases nothing."""
    ctypes.memset(id(row) + _TUPLE_ITEMS, 0, len(row) * ctypes.sizeof(ctypes.c_void_p))


def server_error(connection: Any) -> mariadb.Error:
    """The error that ended the last statement of ``connection``'s session, as the driver would have raised it."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW WARNINGS")
            errors = [(code, text) for level, code, text in cursor.fetchall() if level == "Error"]
    except mariadb.Error as exc:
        return exc  # the session itself is gone (the connection was lost): that is the error
    code, text = errors[-1] if errors else (None, "the server ended the result with an error it did not name")
    error = mariadb.DatabaseError(text)
    error.errno, error.errmsg = code, text
    return error
