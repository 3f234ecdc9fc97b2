"""Recording events. Delivery reads them later; recording never talks to the network."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import utcnow
from paydesk.webhooks.models import WebhookEvent

INVOICE_STATUS = "invoice.status"


async def record(
    session: AsyncSession,
    *,
    merchant_id: uuid.UUID,
    topic: str,
    subject_uuid: uuid.UUID,
    url: str | None,
    payload: dict[str, Any],
) -> WebhookEvent:
    """Add the event to the caller's transaction: it exists exactly when the change does."""
    event = WebhookEvent(
        uuid=uuid.uuid4(),
        merchant_id=merchant_id,
        topic=topic,
        subject_uuid=subject_uuid,
        url=url,
        payload=payload,
        created_at=utcnow(),
    )
    session.add(event)
    await session.flush()
    return event
