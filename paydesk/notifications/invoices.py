"""The email a merchant asked for in the dashboard's settings: a note to its notification
addresses when an invoice is paid. Written in the transaction that marks it paid, so it is
sent exactly when the payment is recorded."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.invoices.models import Invoice
from paydesk.invoices.status import InvoiceStatus
from paydesk.merchants.models import Merchant
from paydesk.money import plain
from paydesk.notifications import service
from paydesk.notifications.rendering import email_templates

INVOICE_PAID = "invoice.paid"
PAID = frozenset({InvoiceStatus.PAID.value, InvoiceStatus.PAID_OVER.value})


class InvoicePaidNotices:
    """An invoice listener (`InvoiceService.listeners`)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def __call__(self, session: AsyncSession, invoice: Invoice) -> None:
        if invoice.status not in PAID:
            return
        row = (
            await session.execute(
                select(Merchant.name, Merchant.notification_emails).where(
                    Merchant.id == invoice.merchant_id
                )
            )
        ).first()
        if row is None or not row.notification_emails:
            return
        templates = email_templates()
        english = templates.language("en")
        test = " (test)" if invoice.network == "devnet" else ""
        price = f"{plain(invoice.amount)} {invoice.currency}"
        paid = (
            f"{plain(invoice.payment_amount)} {invoice.payer_currency} on {invoice.network}"
            if invoice.payment_amount is not None
            else ""
        )
        rendered = templates.render(
            "invoice_paid", english, f"Invoice paid{test}: {price} for {row.name}",
            merchant_name=row.name, price=price, paid=paid, order_id=invoice.order_id,
            invoice_id=str(invoice.uuid), status=invoice.status, test=bool(test),
            link=f"{self.base_url}/dashboard/projects/{invoice.merchant_id}/invoices/{invoice.uuid}",
        )  # fmt: skip
        for address in row.notification_emails.split(","):
            await service.record(
                session, kind=INVOICE_PAID, to_address=address.strip(), language=english.code,
                rendered=rendered, reference=str(invoice.uuid),
            )  # fmt: skip
