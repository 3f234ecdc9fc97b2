"""Initializing, finding and marking hosted-checkout payments.

A payment is created `initiated` with the methods its checkout may offer resolved once, from
the currency, the merchant's `methods`, the country or phone restriction and the mode (the
sandbox's test method only with a sandbox key). Sandbox and live payments never see each
other: every lookup names the mode of the key that asks.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.checkout import events
from paydesk.checkout.methods import MethodCatalogue
from paydesk.checkout.models import INITIATED, SUCCESS, CheckoutCustomer, CheckoutPayment
from paydesk.db import dialect_insert, utcnow

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def public_id(prefix: str = "") -> str:
    """12 lowercase letters and digits (62 bits), after an optional prefix."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class CheckoutError(Exception):
    pass


class PaymentNotFound(CheckoutError):
    pass


class NoMethodAvailable(CheckoutError):
    """Currency, `methods` and restrictions together leave nothing to pay with."""


class NotPaid(CheckoutError):
    """Marking as processed a payment that did not succeed."""


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
    def __init__(self, methods: MethodCatalogue) -> None:
        self.methods = methods

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
        (details left out keep their earlier value)."""
        now = utcnow()
        key = {"merchant_id": merchant_id, "environment": environment, "email": draft.email}
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
        customer = await session.scalar(select(CheckoutCustomer).filter_by(**key).with_for_update())
        assert customer is not None
        customer.first_name, customer.last_name = draft.first_name, draft.last_name
        for name in ("phone", "address", "city", "state", "country_code", "zip_code"):
            value = getattr(draft, name)
            if value is not None:
                setattr(customer, name, value)
        customer.updated_at = now
        await session.flush()
        return customer

    async def find(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, payment_id: str
    ) -> FoundPayment:
        """The merchant's payment in this mode, or PaymentNotFound (another merchant's, or
        the other mode's, does not exist for the caller)."""
        row = (
            await session.execute(
                select(CheckoutPayment, CheckoutCustomer)
                .join(CheckoutCustomer, CheckoutCustomer.id == CheckoutPayment.customer_id)
                .where(
                    CheckoutPayment.public_id == payment_id,
                    CheckoutPayment.merchant_id == merchant_id,
                    CheckoutPayment.environment == environment,
                )
            )
        ).first()
        if row is None:
            raise PaymentNotFound(payment_id)
        return FoundPayment(row[0], row[1])

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
