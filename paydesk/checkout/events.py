"""Checkout payment events, written to the outbox in the transaction of the change that
causes them (created → `payment.initiated`, then `payment.success`, `payment.failed`,
`payment.cancelled`; a payment that becomes pending announces nothing, as Moneroo's)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.checkout.models import (
    CANCELLED,
    FAILED,
    INITIATED,
    SUCCESS,
    CheckoutCustomer,
    CheckoutPayment,
    timestamp,
)
from paydesk.notifications import checkout as emails
from paydesk.webhooks import service as webhooks

#: The event a payment entering a status announces.
EVENT_OF_STATUS = {
    INITIATED: "payment.initiated",
    SUCCESS: "payment.success",
    FAILED: "payment.failed",
    CANCELLED: "payment.cancelled",
}


def snapshot(payment: CheckoutPayment, customer: CheckoutCustomer) -> dict[str, Any]:
    """The payment as its event records it, amounts as exact text."""
    return {
        "id": payment.public_id,
        "status": payment.status,
        "amount": f"{payment.amount:f}",
        "currency": payment.currency,
        "description": payment.description,
        "environment": payment.environment,
        "metadata": dict(payment.extra or {}),
        "is_processed": payment.is_processed,
        "customer": {
            "id": customer.public_id,
            "email": customer.email,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "phone": customer.phone,
        },
        "method": payment.method,
        "created_at": timestamp(payment.created_at),
    }


async def announce(
    session: AsyncSession, payment: CheckoutPayment, customer: CheckoutCustomer
) -> None:
    """Record the event of the payment's current status (if that status has one), and on
    success the receipt and merchant notice emails (in the same transaction)."""
    event = EVENT_OF_STATUS.get(payment.status)
    if event is None:
        return
    await webhooks.record(
        session,
        merchant_id=payment.merchant_id,
        topic=f"checkout.{event}",
        subject_uuid=payment_subject(payment),
        url=None,
        payload={
            "event": event,
            "environment": payment.environment,
            "data": snapshot(payment, customer),
        },
    )
    if payment.status == SUCCESS:
        await emails.payment_succeeded(session, payment, customer)


def payment_subject(payment: CheckoutPayment) -> uuid.UUID:
    """Events of one payment share a subject, so they are delivered in order."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"paydesk:checkout:{payment.public_id}")
