"""Keyset pagination over a sequential id, newest first, in both directions.

Dialects encode `Cursor` in their own format; the query side is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position between items: `forward` reads older items after `id`, otherwise newer
    items before it."""

    id: int
    forward: bool


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next: Cursor | None
    previous: Cursor | None
    per_page: int
    on_first_page: bool

    @property
    def has_pages(self) -> bool:
        return not self.on_first_page or self.next is not None


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """A history's date bounds (inclusive), as the dialects' `date_from`/`date_to`."""

    created_from: datetime | None = None
    created_to: datetime | None = None


async def history_page(
    session: AsyncSession,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[int],
    created_column: InstrumentedAttribute[datetime],
    filters: HistoryFilter,
    cursor: Cursor | None,
    per_page: int,
) -> Page[Any]:
    """A page of `stmt` within the filter's dates, newest first."""
    if filters.created_from is not None:
        stmt = stmt.where(created_column >= filters.created_from)
    if filters.created_to is not None:
        stmt = stmt.where(created_column <= filters.created_to)
    return await keyset_page(session, stmt, id_column, cursor, per_page)


async def keyset_page(
    session: AsyncSession,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[int],
    cursor: Cursor | None,
    per_page: int,
) -> Page[Any]:
    if cursor is None or cursor.forward:
        if cursor is not None:
            stmt = stmt.where(id_column < cursor.id)
        rows = list(await session.scalars(stmt.order_by(id_column.desc()).limit(per_page + 1)))
        has_more = len(rows) > per_page
        rows = rows[:per_page]
        next_cursor = Cursor(rows[-1].id, True) if has_more else None
        previous = Cursor(rows[0].id, False) if cursor is not None and rows else None
    else:
        stmt = stmt.where(id_column > cursor.id).order_by(id_column.asc()).limit(per_page + 1)
        rows = list(await session.scalars(stmt))
        has_more = len(rows) > per_page
        rows = rows[:per_page]
        rows.reverse()
        previous = Cursor(rows[0].id, False) if has_more else None
        next_cursor = Cursor(rows[-1].id, True) if rows else None
    return Page(rows, next_cursor, previous, per_page, on_first_page=cursor is None)
