"""The hosted checkout's emails on a successful payment: a receipt to the customer, in
the checkout page's language, and a notice to the merchant's owner, in English. Either can
be turned off per merchant (`paydesk merchant emails`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from babel.dates import format_datetime
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.checkout.methods import load_method_catalogue
from paydesk.checkout.models import CheckoutCustomer, CheckoutPayment
from paydesk.merchants.models import Merchant, User
from paydesk.notifications import service
from paydesk.notifications.rendering import email_templates
from paydesk.paypage.presenting import price_text
from paydesk.web.i18n import DEFAULT_LANGUAGE, Language

RECEIPT, NOTICE = "checkout.receipt", "checkout.notice"


def _(message: str) -> str:
    """Marks a message for the catalogues; it is translated when the email is drawn."""
    return message


RECEIPT_SUBJECT = _("Your receipt from %(merchant)s")


async def payment_succeeded(
    session: AsyncSession, payment: CheckoutPayment, customer: CheckoutCustomer
) -> None:
    """Record the emails of a payment that just succeeded, in the caller's transaction."""
    row = (
        await session.execute(
            select(
                Merchant.name,
                Merchant.checkout_customer_receipts,
                Merchant.checkout_merchant_notices,
                User.email,
            )
            .join(User, User.id == Merchant.user_id)
            .where(Merchant.id == payment.merchant_id)
        )
    ).first()
    if row is None:
        return
    merchant_name, receipts, notices, owner_email = row
    if receipts and customer.email:
        await _receipt(session, payment, customer, merchant_name)
    if notices and owner_email:
        await _notice(session, payment, customer, merchant_name, owner_email)


async def _receipt(
    session: AsyncSession,
    payment: CheckoutPayment,
    customer: CheckoutCustomer,
    merchant_name: str,
) -> None:
    templates = email_templates()
    language = templates.language((payment.context or {}).get("local"))
    subject = language.translations.gettext(RECEIPT_SUBJECT) % {"merchant": merchant_name}
    rendered = templates.render(
        "receipt",
        language,
        subject,
        **_facts(payment, customer, merchant_name, language),
    )
    await service.record(
        session,
        kind=RECEIPT,
        to_address=customer.email,
        language=language.code,
        rendered=rendered,
        reference=payment.public_id,
    )


async def _notice(
    session: AsyncSession,
    payment: CheckoutPayment,
    customer: CheckoutCustomer,
    merchant_name: str,
    owner_email: str,
) -> None:
    templates = email_templates()
    english = templates.language(DEFAULT_LANGUAGE)
    facts = _facts(payment, customer, merchant_name, english)
    mode = "[sandbox] " if facts["sandbox"] else ""
    subject = f"{mode}Payment received: {facts['price']} from {facts['customer_name']}"
    rendered = templates.render("notice", english, subject, **facts)
    await service.record(
        session,
        kind=NOTICE,
        to_address=owner_email,
        language=english.code,
        rendered=rendered,
        reference=payment.public_id,
    )


def _facts(
    payment: CheckoutPayment, customer: CheckoutCustomer, merchant_name: str, language: Language
) -> dict[str, Any]:
    """What both emails say about the payment, written for `language`."""
    method = load_method_catalogue().payment_method(payment.method) if payment.method else None
    name = " ".join(part for part in (customer.first_name, customer.last_name) if part)
    return {
        "merchant_name": merchant_name,
        "customer_name": name or customer.email,
        "customer_email": customer.email,
        "price": price_text(payment.amount, payment.currency, language),
        "description": payment.description,
        "payment_id": payment.public_id,
        "method_name": method.name if method else (payment.method or ""),
        "paid_at": format_datetime(payment.updated_at, "long", tzinfo=UTC, locale=language.locale),
        "environment": payment.environment,
        "sandbox": payment.environment == "sandbox",
    }


@dataclass(frozen=True, slots=True)
class EmailChoices:
    """Which of the checkout's emails a merchant sends."""

    receipts: bool
    notices: bool


async def choose_emails(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    *,
    receipts: bool | None = None,
    notices: bool | None = None,
) -> EmailChoices:
    """Turn the receipts and/or notices on or off (None: leave as is); the choices now.
    LookupError for an unknown merchant."""
    merchant = await session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise LookupError(f"no merchant {merchant_id}")
    if receipts is not None:
        merchant.checkout_customer_receipts = receipts
    if notices is not None:
        merchant.checkout_merchant_notices = notices
    await session.flush()
    return EmailChoices(merchant.checkout_customer_receipts, merchant.checkout_merchant_notices)
