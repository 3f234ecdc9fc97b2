"""Leases: one holder at a time for a piece of work across processes (a network's watcher,
a network's payout signer), held by a row with `lease_owner` and `lease_expires_at`.

A holder that dies loses its lease when it expires; one that lives renews it with every
write it makes, in the same transaction, so it writes only while it still holds it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import dialect_insert, utcnow


async def take_lease(
    session: AsyncSession,
    model: Any,
    key: dict[str, Any],
    owner: str,
    duration: timedelta,
    *,
    seed: dict[str, Any] | None = None,
) -> bool:
    """Take (or renew) the lease of the row `key`, creating it with `seed` on first use.
    False when another owner holds it."""
    now = utcnow()
    await session.execute(
        dialect_insert(session, model)
        .values(**key, **(seed or {}), updated_at=now)
        .on_conflict_do_nothing(index_elements=list(key))
    )
    taken = await session.execute(
        update(model)
        .where(
            *(getattr(model, name) == value for name, value in key.items()),
            or_(
                model.lease_owner == owner,
                model.lease_owner.is_(None),
                model.lease_expires_at < now,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + duration, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount == 1)


async def release_lease(session: AsyncSession, model: Any, key: dict[str, Any], owner: str) -> None:
    """Give the lease up (if still held), so another holder need not wait for it to expire."""
    await session.execute(
        update(model)
        .where(
            *(getattr(model, name) == value for name, value in key.items()),
            model.lease_owner == owner,
        )
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
