"""`Idempotency-Key` on create calls, shared by both dialects."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.idempotency import service as idempotency

HEADER = "idempotency-key"


def has_idempotency_key(request: Request) -> bool:
    return HEADER in request.headers


async def run_idempotent(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    request: Request,
    body: bytes,
    produce: Callable[[], Awaitable[Response]],
) -> Response:
    """Run `produce` once per key: a repeat with the same body gets the stored response,
    a repeat with another body a conflict. The key is stored in `session`'s transaction,
    so it exists exactly when what `produce` wrote does."""
    key = request.headers.get(HEADER)
    if key is None:
        return await produce()
    fingerprint = idempotency.fingerprint(request.method, request.url.path, body)
    outcome = await idempotency.claim(session, merchant_id, key, fingerprint)
    if isinstance(outcome, idempotency.Replay):
        return Response(
            outcome.body,
            status_code=outcome.status,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    response = await produce()
    await idempotency.complete(session, outcome, response.status_code, bytes(response.body))
    return response
