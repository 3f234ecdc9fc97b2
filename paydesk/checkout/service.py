"""Initializing, finding and marking hosted-checkout payments.

A payment is created `initiated` with the methods its checkout may offer resolved once, from
the currency, the merchant's `methods`, the country or phone restriction and the mode (the
sandbox's test method only with a sandbox key). Sandbox and live payments never see each
other: every lookup names the mode of the key that asks.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.checkout import events
from paydesk.checkout.connectors import Attempt, AttemptResult, Connector, Outcome
from paydesk.checkout.methods import Method, MethodCatalogue
from paydesk.checkout.models import (
    CANCELLED,
    FAILED,
    FINAL,
    INITIATED,
    PENDING,
    SUCCESS,
    CheckoutCustomer,
    CheckoutPayment,
)
from paydesk.db import dialect_insert, utcnow
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.invoices.service import InvoiceService
from paydesk.invoices.status import InvoiceStatus
from paydesk.ledger import service as ledger
from paydesk.ledger.models import AccountKind

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def public_id(prefix: str = "") -> str:
    """12 lowercase letters and digits (62 bits), after an optional prefix."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def checkout_url(base_url: str, payment_id: str) -> str:
    """The hosted checkout of a payment. The path says `moneroo`: the official Flutter
    widget takes any page whose URL lacks the word for the end of the payment."""
    return f"{base_url}/moneroo/checkout/{payment_id}"


class CheckoutError(Exception):
    pass


class PaymentNotFound(CheckoutError):
    pass


class NoMethodAvailable(CheckoutError):
    """Currency, `methods` and restrictions together leave nothing to pay with."""


class NotPaid(CheckoutError):
    """Marking as processed a payment that did not succeed."""


class NotPayable(CheckoutError):
    """The payment is being paid already, or is over."""


class MethodNotOffered(CheckoutError):
    """A method this payment's checkout does not offer."""


class PhoneRequired(CheckoutError):
    """The method needs the payer's phone number."""


class PhoneNotAllowed(CheckoutError):
    """The payment may only be paid from another phone (`restricted_phone`)."""


class NoConnector(CheckoutError):
    """Nothing can collect this method here (a processor not configured)."""


@dataclass(frozen=True, slots=True)
class CustomerDraft:
    email: str
    first_name: str
    last_name: str
    phone: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    country_code: str | None = None
    zip_code: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentDraft:
    amount: Decimal
    currency: str
    description: str
    return_url: str
    customer: CustomerDraft
    metadata: dict[str, str] = field(default_factory=dict)
    methods: list[str] | None = None
    restrict_country_code: str | None = None
    #: The only phone allowed to pay (digits with country prefix), and its country.
    restricted_phone: str | None = None
    restricted_phone_country: str | None = None


@dataclass(frozen=True, slots=True)
class FoundPayment:
    payment: CheckoutPayment
    customer: CheckoutCustomer


class CheckoutService:
    def __init__(
        self,
        methods: MethodCatalogue,
        connectors: Sequence[Connector] = (),
        *,
        invoices: InvoiceService | None = None,
        base_url: str = "",
        abandon_after: timedelta = timedelta(minutes=10),
    ) -> None:
        self.methods = methods
        self.connectors = list(connectors)
        self.invoices = invoices
        self.base_url = base_url
        self.abandon_after = abandon_after

    async def initialize(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, draft: PaymentDraft
    ) -> FoundPayment:
        country = draft.restrict_country_code or draft.restricted_phone_country
        offered = self.methods.eligible(
            draft.currency, environment=environment, codes=draft.methods, country=country
        )
        if not offered:
            raise NoMethodAvailable(draft.currency)
        now = utcnow()
        customer = await self._customer(session, merchant_id, environment, draft.customer)
        payment = CheckoutPayment(
            public_id=public_id("py_"),
            merchant_id=merchant_id,
            environment=environment,
            customer_id=customer.id,
            status=INITIATED,
            amount=draft.amount,
            currency=draft.currency,
            description=draft.description,
            return_url=draft.return_url,
            extra=dict(draft.metadata),
            methods=[method.short_code for method in offered],
            restrict_country_code=draft.restrict_country_code,
            restricted_phone=draft.restricted_phone,
            is_processed=False,
            initiated_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(payment)
        await session.flush()
        await events.announce(session, payment, customer)
        return FoundPayment(payment, customer)

    async def _customer(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, draft: CustomerDraft
    ) -> CheckoutCustomer:
        """The customer of this email, created or brought up to date with what was sent
        (details left out keep their earlier value). A returning customer whose details
        did not change is only read: its row is not locked, so its payments do not wait
        for each other."""
        now = utcnow()
        key = {"merchant_id": merchant_id, "environment": environment, "email": draft.email}
        customer = await session.scalar(select(CheckoutCustomer).filter_by(**key))
        if customer is None:
            await session.execute(
                dialect_insert(session, CheckoutCustomer)
                .values(
                    **key,
                    public_id=public_id(),
                    first_name=draft.first_name,
                    last_name=draft.last_name,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=list(key))
            )
            customer = await session.scalar(select(CheckoutCustomer).filter_by(**key))
            assert customer is not None
        changes: dict[str, Any] = {}
        if (customer.first_name, customer.last_name) != (draft.first_name, draft.last_name):
            changes.update(first_name=draft.first_name, last_name=draft.last_name)
        for name in ("phone", "address", "city", "state", "country_code", "zip_code"):
            value = getattr(draft, name)
            if value is not None and getattr(customer, name) != value:
                changes[name] = value
        if changes:
            for name, value in changes.items():
                setattr(customer, name, value)
            customer.updated_at = now
            await session.flush()
        return customer

    async def customer(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, draft: CustomerDraft
    ) -> CheckoutCustomer:
        """The same customer record for other flows: a payout's beneficiary is a customer
        of the merchant too."""
        return await self._customer(session, merchant_id, environment, draft)

    async def find(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, payment_id: str
    ) -> FoundPayment:
        """The merchant's payment in this mode, or PaymentNotFound (another merchant's, or
        the other mode's, does not exist for the caller)."""
        return await self._select(
            session,
            payment_id,
            CheckoutPayment.merchant_id == merchant_id,
            CheckoutPayment.environment == environment,
        )

    async def mark_processed(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, payment_id: str
    ) -> FoundPayment:
        """The merchant delivered the order: idempotent, and only for a paid payment."""
        found = await self.find(session, merchant_id, environment, payment_id)
        payment = found.payment
        if payment.status != SUCCESS:
            raise NotPaid(payment_id)
        if not payment.is_processed:
            payment.is_processed = True
            payment.processed_at = payment.updated_at = utcnow()
            await session.flush()
        return found

    # ---------------------------------------------------------------- paying
    def connector_for(self, method: Method, environment: str) -> Connector | None:
        return next((c for c in self.connectors if c.handles(method, environment)), None)

    def payable_methods(self, payment: CheckoutPayment) -> list[Method]:
        """The payment's methods that something here can collect (crypto through an
        invoice, the rest through their connector)."""
        usable = []
        for code in payment.methods:
            method = self.methods.payment_method(code)
            if method is None:
                continue
            if method.kind == "crypto" or self.connector_for(method, payment.environment):
                usable.append(method)
        return usable

    async def find_public(self, session: AsyncSession, payment_id: str) -> FoundPayment:
        """A payment by its id alone: the checkout page is opened without any key."""
        return await self._select(session, payment_id)

    async def begin_attempt(
        self,
        session: AsyncSession,
        payment_id: str,
        method_code: str,
        phone: str | None,
        context: dict[str, Any] | None = None,
    ) -> tuple[FoundPayment, Attempt | None]:
        """Start paying: the payment becomes `pending` with the chosen method, in the
        caller's transaction. Returns the attempt to hand to the method's connector, or
        None for crypto, which opened an invoice instead."""
        found = await self._locked(session, payment_id)
        payment = found.payment
        if payment.status != INITIATED:
            raise NotPayable(payment_id)
        method = self.methods.payment_method(method_code)
        if method is None or method.short_code not in payment.methods:
            raise MethodNotOffered(method_code)
        needs_phone = any(field.name == "msisdn" for field in method.fields)
        if payment.restricted_phone is not None:
            if phone is not None and phone != payment.restricted_phone:
                raise PhoneNotAllowed(payment_id)
            phone = payment.restricted_phone
        if needs_phone and not phone:
            raise PhoneRequired(method.short_code)
        connector = None
        if method.kind != "crypto":
            connector = self.connector_for(method, payment.environment)
            if connector is None:
                raise NoConnector(method.short_code)
        now = utcnow()
        payment.status = PENDING
        payment.method = method.short_code
        payment.capture_id = uuid.uuid4()
        payment.phone_number = phone if needs_phone else None
        payment.context = context
        payment.updated_at = now
        if phone and found.customer.phone is None and needs_phone:
            found.customer.phone = phone
        if method.kind == "crypto":
            await self._open_invoice(session, payment)
            await session.flush()
            return found, None
        await session.flush()
        attempt = Attempt(
            payment_id=payment.public_id,
            environment=payment.environment,
            method=method,
            amount=payment.amount,
            currency=payment.currency,
            description=payment.description,
            phone=phone,
            callback_url=f"{self.base_url}/moneroo/callbacks/{connector.short_code}"
            if connector
            else "",
        )
        return found, attempt

    async def undo_attempt(
        self, session: AsyncSession, payment_id: str, capture_id: uuid.UUID
    ) -> FoundPayment:
        """The connector could not be reached: the payer may try again."""
        found = await self._locked(session, payment_id)
        payment = found.payment
        if payment.status == PENDING and payment.capture_id == capture_id:
            payment.status = INITIATED
            payment.method = payment.capture_id = payment.phone_number = None
            payment.updated_at = utcnow()
            await session.flush()
        return found

    async def apply(
        self,
        session: AsyncSession,
        payment_id: str,
        result: AttemptResult,
        *,
        capture_id: uuid.UUID | None = None,
    ) -> FoundPayment:
        """Bring a pending payment to what its processor says, announcing a final status
        (and nothing for a payment already final, or attempted again meanwhile)."""
        found = await self._locked(session, payment_id)
        payment = found.payment
        if payment.status != PENDING:
            return found
        if capture_id is not None and payment.capture_id != capture_id:
            return found
        payment.gateway_transaction_id = result.gateway_transaction_id
        payment.gateway_status = result.gateway_status
        payment.failure_message = result.failure_message
        payment.failure_error_code = result.failure_error_code
        payment.failure_error_type = result.failure_error_type
        if result.outcome != "pending":
            payment.status = SUCCESS if result.outcome == "success" else FAILED
        payment.updated_at = utcnow()
        await session.flush()
        if payment.status == SUCCESS and payment.invoice_id is None:
            await self._book(session, payment)
        await events.announce(session, payment, found.customer)
        return found

    async def _book(self, session: AsyncSession, payment: CheckoutPayment) -> None:
        """A collected payment becomes the merchant's balance in its currency: the
        processor holds the money for the platform, the platform owes it to the merchant.
        Sandbox money is kept in its own book, apart from live balances. (Crypto is booked
        by its invoice's deposits, in the coin that arrived.)"""
        method = self.methods.payment_method(payment.method or "")
        connector = self.connector_for(method, payment.environment) if method else None
        gateway = connector.short_code if connector else (payment.method or "unknown")
        book = payment.environment if payment.environment != "live" else ""
        holdings = await ledger.account(
            session, AccountKind.PROCESSOR_HOLDINGS, payment.currency, network=gateway
        )
        business = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, payment.currency,
            owner=payment.merchant_id, network=book,
        )  # fmt: skip
        await ledger.post(
            session,
            "checkout_payment",
            f"checkout:{payment.public_id}",
            [ledger.Leg(holdings, -payment.amount), ledger.Leg(business, payment.amount)],
            memo=f"{payment.method} {payment.gateway_transaction_id or ''}".strip(),
        )

    async def by_gateway_transaction(
        self, session: AsyncSession, gateway_transaction_id: str
    ) -> str | None:
        """The payment a processor's transaction id belongs to."""
        return await session.scalar(
            select(CheckoutPayment.public_id).where(
                CheckoutPayment.gateway_transaction_id == gateway_transaction_id
            )
        )

    async def cancel(self, session: AsyncSession, payment_id: str) -> FoundPayment:
        """The payer gives up (or the checkout was abandoned): `cancelled`, announced.
        Only before paying started: a payment under way (a push on the payer's phone, an
        open crypto invoice) may still arrive, so it ends the way its processor says."""
        found = await self._locked(session, payment_id)
        payment = found.payment
        if payment.status != INITIATED:
            return found
        payment.status = CANCELLED
        payment.updated_at = utcnow()
        await session.flush()
        await events.announce(session, payment, found.customer)
        return found

    async def cancel_abandoned(self, session: AsyncSession, now: datetime, limit: int = 200) -> int:
        """Payments nobody started paying within the abandonment time become `cancelled`."""
        stale = await session.scalars(
            select(CheckoutPayment.public_id)
            .where(
                CheckoutPayment.status == INITIATED,
                CheckoutPayment.initiated_at <= now - self.abandon_after,
            )
            .order_by(CheckoutPayment.id)
            .limit(limit)
        )
        cancelled = 0
        for payment_id in list(stale):
            found = await self.cancel(session, payment_id)
            cancelled += found.payment.status == CANCELLED
        return cancelled

    def return_url(self, payment: CheckoutPayment) -> str:
        """The shop's `return_url` with the outcome set in its query (added or replaced;
        the shop's own parameters and fragment kept), under both names clients read."""
        parts = urlsplit(payment.return_url)
        ours = {
            "paymentId": payment.public_id,
            "paymentStatus": payment.status,
            "monerooPaymentId": payment.public_id,
            "monerooPaymentStatus": payment.status,
        }
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
        query = urlencode([*kept, *ours.items()])
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

    async def send_back(self, session: AsyncSession, payment_id: str) -> str | None:
        """Where to send the payer once the payment is over (None while it is not), kept on
        the payment as the spec shows it."""
        found = await self._locked(session, payment_id)
        payment = found.payment
        if payment.invoice_id is not None and payment.status == PENDING:
            await self._follow_invoice(session, found)
        if payment.status not in FINAL:
            return None
        url = self.return_url(payment)
        if payment.return_url != url:
            payment.return_url = url
            await session.flush()
        return url

    async def _locked(self, session: AsyncSession, payment_id: str) -> FoundPayment:
        return await self._select(session, payment_id, lock=True)

    @staticmethod
    async def _select(
        session: AsyncSession, payment_id: str, *conditions: Any, lock: bool = False
    ) -> FoundPayment:
        """The payment and its customer, or PaymentNotFound."""
        query = (
            select(CheckoutPayment, CheckoutCustomer)
            .join(CheckoutCustomer, CheckoutCustomer.id == CheckoutPayment.customer_id)
            .where(CheckoutPayment.public_id == payment_id, *conditions)
        )
        if lock:
            query = query.with_for_update(of=CheckoutPayment)
        row = (await session.execute(query)).first()
        if row is None:
            raise PaymentNotFound(payment_id)
        return FoundPayment(row[0], row[1])

    # ---------------------------------------------------------------- crypto
    async def _open_invoice(self, session: AsyncSession, payment: CheckoutPayment) -> None:
        """A crypto method pays through a Paydesk invoice for the same amount: the payer
        picks coin and network on its payment page, which sends them back here."""
        assert self.invoices is not None
        back = checkout_url(self.base_url, payment.public_id) + "/return"
        draft = InvoiceDraft(
            amount=payment.amount,
            currency=payment.currency,
            order_id=f"moneroo-{payment.public_id}",
            url_success=back,
            url_return=back,
            additional_data=payment.description[:255] or None,
        )
        created = await self.invoices.create(session, payment.merchant_id, draft)
        payment.invoice_id = created.invoice.id

    async def invoice_changed(self, session: AsyncSession, invoice: Invoice) -> None:
        """The invoice behind a crypto payment changed status: follow it (in the
        transaction that changed it, so the payment's event commits with it)."""
        payment_id = await session.scalar(
            select(CheckoutPayment.public_id).where(CheckoutPayment.invoice_id == invoice.id)
        )
        if payment_id is not None:
            await self._follow_invoice(session, await self._locked(session, payment_id), invoice)

    async def _follow_invoice(
        self, session: AsyncSession, found: FoundPayment, invoice: Invoice | None = None
    ) -> None:
        payment = found.payment
        if payment.status != PENDING or payment.invoice_id is None:
            return
        invoice = invoice or await session.get_one(Invoice, payment.invoice_id)
        outcome = INVOICE_OUTCOMES.get(invoice.status)
        if outcome is None:
            return
        await self.apply(
            session,
            payment.public_id,
            AttemptResult(
                outcome,
                gateway_transaction_id=str(invoice.uuid),
                gateway_status=invoice.status,
                failure_message=None if outcome == "success" else INVOICE_FAILURES.get(outcome),
            ),
        )


#: What an invoice's final status means for the crypto payment it pays.
INVOICE_OUTCOMES: dict[str, Outcome] = {
    InvoiceStatus.PAID.value: "success",
    InvoiceStatus.PAID_OVER.value: "success",
    InvoiceStatus.WRONG_AMOUNT.value: "failed",
    InvoiceStatus.CANCEL.value: "failed",
    InvoiceStatus.FAIL.value: "failed",
    InvoiceStatus.SYSTEM_FAIL.value: "failed",
}
INVOICE_FAILURES = {"failed": "The crypto payment did not arrive in full before the invoice ended."}
