"""Reading a log-like table (history, audit events) newest first, filtered the way the CLI and system tables ask."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select

from nexus_flight.catalog.store import CatalogStore

Row = TypeVar("Row")


def newest_rows(
    store: CatalogStore,
    model: Any,
    *,
    equal: Mapping[Any, Any],
    since: datetime | None,
    limit: int | None,
    to_row: Callable[[Any], Row],
) -> list[Row]:
    """Rows of ``model`` newest first; ``equal`` maps a column to the value it must have (a falsy value: any)."""
    query = select(model).order_by(model.created_at.desc(), model.id)
    for column, value in equal.items():
        if value:
            query = query.where(column == value)
    if since:
        query = query.where(model.created_at >= since)
    if limit:
        query = query.limit(limit)
    with store.session() as session:
        return [to_row(row) for row in session.scalars(query)]
