"""Claiming an idempotency key, replaying its response, and forgetting old keys.

A key is claimed by inserting its row inside the request's transaction. A concurrent
request with the same key blocks on the unique index until the first commits, then finds
the stored response; if the first rolls back, the key was never used.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import dialect_insert, utcnow
from paydesk.idempotency.models import IdempotencyRecord

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyError(Exception):
    pass


class InvalidIdempotencyKey(IdempotencyError):
    pass


class IdempotencyConflict(IdempotencyError):
    """The key was used before for a different request."""


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    record_id: int


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim(
    session: AsyncSession, merchant_id: uuid.UUID, key: str, request_fingerprint: str
) -> Claim | Replay:
    if not _KEY.match(key):
        raise InvalidIdempotencyKey(key)
    found = await _stored(session, merchant_id, key, request_fingerprint)
    if found is not None:
        return found
    stmt = (
        dialect_insert(session, IdempotencyRecord)
        .values(
            merchant_id=merchant_id, key=key, fingerprint=request_fingerprint, created_at=utcnow()
        )
        .on_conflict_do_nothing(index_elements=["merchant_id", "key"])
        .returning(IdempotencyRecord.id)
    )
    record_id = (await session.execute(stmt)).scalar()
    if record_id is None:  # a concurrent request with this key committed first
        found = await _stored(session, merchant_id, key, request_fingerprint)
        if found is None:  # pragma: no cover - the conflicting row must be visible now
            raise IdempotencyConflict(key)
        return found
    return Claim(record_id)


async def complete(session: AsyncSession, claimed: Claim, status: int, body: bytes) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == claimed.record_id)
        .values(response_status=status, response_body=body)
    )


async def purge(session: AsyncSession, older_than: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < older_than)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _stored(
    session: AsyncSession, merchant_id: uuid.UUID, key: str, request_fingerprint: str
) -> Replay | None:
    row = (
        await session.execute(
            select(
                IdempotencyRecord.fingerprint,
                IdempotencyRecord.response_status,
                IdempotencyRecord.response_body,
            ).where(IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key)
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != request_fingerprint or row.response_body is None:
        raise IdempotencyConflict(key)
    return Replay(int(row.response_status or 200), bytes(row.response_body))
