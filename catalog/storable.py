"""Text every catalog database can store: what clients send is recorded even when a column could not hold it as is.

History rows and sign-in failures carry text the client chose (the SQL, a catalog name, a user name in Basic
credentials). PostgreSQL refuses a NUL character in any text column and a value longer than a ``VARCHAR(n)``; a
lone surrogate cannot be encoded at all. Such a value, written as is, fails its whole batch — and with it the
rows of everyone else's queries written alongside. So those characters become U+FFFD and a long value is cut
(ending ``...``), the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, Table

_REPLACEMENT = "\ufffd"


def storable_text(text: str | None, length: int | None = None) -> str | None:
    """``text`` without NUL or unencodable characters, cut to ``length`` characters (None: any length)."""
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: its bytes are not UTF-8, and each becomes U+FFFD
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if length is not None and len(text) > length:
        text = text[: length - 3] + "..."
    return text


def storable_row(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` of a row of ``table`` with every text made storable in its column (``storable_text``)."""
    row = dict(values)
    for name, value in values.items():
        if isinstance(value, str):
            column_type = table.columns[name].type
            row[name] = storable_text(value, column_type.length if isinstance(column_type, String) else None)
    return row
