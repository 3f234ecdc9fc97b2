"""Accepting, approving, settling and failing payouts, and what each does to the ledger.

A payout's money moves in three journal transactions at most, each in the same database
transaction as the status change it belongs to (and that change's webhook event):

* accepted: the amount and its fee leave the merchant's balance for the payout reserve, so
  the balance shown is what is left to spend and two payouts cannot both spend it;
* paid (the transaction has its confirmations): the reserve pays the coins that left the
  hot wallet and the fee, which is the platform's income; the network fee the transaction
  really cost is the platform's expense;
* failed or cancelled: the reserve goes back where it came from.

Two rails share this core. On the `chain` rail the hot wallet sends coins (the payout
worker) and the Cryptomus dialect shows the payout. On the `processor` rail a payout
connector has a processor pay a recipient in fiat (the Moneroo dialect): no fee, and the
paid reserve settles against what the processor holds for the platform instead of the
coins on chain; its events are Moneroo's `payout.*`, fanned out to the merchant's
endpoints of the payout's environment.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.catalogue.models import Service
from paydesk.catalogue.service import Catalogue
from paydesk.chains.registry import normalize_address
from paydesk.checkout.methods import Method
from paydesk.checkout.models import CheckoutCustomer, timestamp
from paydesk.db import dialect_insert, utcnow
from paydesk.invoices import pricing
from paydesk.ledger import service as ledger
from paydesk.ledger.models import Account, AccountKind
from paydesk.merchants.models import Merchant
from paydesk.money import MONEY, percent_of, quantum, round_half_up, round_up
from paydesk.pagination import Cursor, HistoryFilter, Page, history_page
from paydesk.payouts.connectors import PayoutConnector, PayoutResult
from paydesk.payouts.models import Payout, PayoutAddress
from paydesk.rates.service import RatesService
from paydesk.webhooks import service as webhooks

# Statuses of the API (spec 7.5).
PROCESS, CHECK, PAID, FAIL, CANCEL, SYSTEM_FAIL = (
    "process", "check", "paid", "fail", "cancel", "system_fail"
)  # fmt: skip
FINAL_STATUSES = frozenset({PAID, FAIL, CANCEL, SYSTEM_FAIL})

# Stages of sending: approval → queued → signed → sent → done | failed.
APPROVAL, QUEUED, SIGNED, SENT, DONE, FAILED = (
    "approval", "queued", "signed", "sent", "done", "failed"
)  # fmt: skip

#: Stages whose reserve was paid out or given back.
SETTLED_STAGES = frozenset({DONE, FAILED})
#: How a payout leaves: coins from the hot wallet, or a processor paying in fiat.
CHAIN, PROCESSOR = "chain", "processor"
#: The Moneroo event a processor payout entering a stage announces (none for `pending`).
PROCESSOR_EVENTS = {QUEUED: "payout.initiated", DONE: "payout.success", FAILED: "payout.failed"}
PRIORITIES = ("recommended", "economy", "high", "highest")
#: The only balance a payout in another coin may be paid from (spec 7).
CONVERTIBLE_FROM = "USDT"
#: Places of the amounts taken from a balance (what the APIs print).
BALANCE_PLACES = 8


class PayoutError(Exception):
    """A payout request refused; dialects turn each kind into their message."""


class PayoutNotFound(PayoutError):
    pass


class PayoutsForbidden(PayoutError):
    """Payouts are blocked for the merchant, or held after a payout key change."""


class PayoutCurrencyNotFound(PayoutError):
    pass


class PayoutServiceNotFound(PayoutError):
    """No open payout service for the coin and network."""


class NetworkRequired(PayoutError):
    """The coin is on several networks and none was named."""


class ToCurrencyNotFound(PayoutError):
    pass


class ConversionFailed(PayoutError):
    """No rate to convert the amount with."""


class AmountTooSmall(PayoutError):
    pass


class AmountTooLarge(PayoutError):
    def __init__(self, limit: Decimal, currency: str) -> None:
        super().__init__(f"{limit} {currency}")
        self.limit = limit
        self.currency = currency


class InvalidAddress(PayoutError):
    pass


class AddressNotAllowed(PayoutError):
    """The merchant keeps an allowlist and the address is not on it."""


class NotEnoughToConvert(PayoutError):
    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"{source} → {target}")
        self.source = source
        self.target = target


class NotPending(PayoutError):
    """Approving or rejecting a payout that is not waiting for it."""


class NoPayoutConnector(PayoutError):
    """Nothing can pay this method in this mode (a processor not configured)."""


@dataclass(frozen=True, slots=True)
class PayoutDraft:
    """A payout request, already validated for shape by a dialect."""

    amount: Decimal
    currency: str
    address: str
    is_subtract: bool
    order_id: str | None = None
    network: str | None = None
    url_callback: str | None = None
    to_currency: str | None = None
    from_currency: str | None = None
    course_source: str | None = None
    priority: str = "recommended"
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class ProcessorPayoutDraft:
    """A payout a processor pays, already validated by a dialect (the currency is the
    method's, the recipient has the method's fields as digits)."""

    amount: Decimal
    currency: str
    method: Method
    recipient: dict[str, str]
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CreateResult:
    payout: Payout
    created: bool


@dataclass(frozen=True, slots=True)
class _Terms:
    """What a payout sends, costs and is paid from."""

    service: Service
    payer_amount: Decimal
    fee: Decimal
    source_currency: str
    merchant_amount: Decimal
    commission: Decimal
    rate: Decimal | None


def payout_fee(service: Service, amount: Decimal, places: int) -> Decimal:
    """The fee of sending `amount`: the service's percent plus its fixed network fee,
    rounded up so the platform never pays a fraction of it."""
    fee = MONEY.add(percent_of(amount, service.payout_percent), service.payout_fee_amount)
    return round_up(fee, places)


class PayoutService:
    def __init__(
        self,
        catalogue: Catalogue,
        rates: RatesService,
        *,
        approval_usd: Decimal | None = None,
        connectors: Sequence[PayoutConnector] = (),
    ) -> None:
        self.catalogue = catalogue
        self.rates = rates
        self.approval_usd = approval_usd
        self.connectors = list(connectors)

    # ---------------------------------------------------------------- accepting
    async def create(
        self, session: AsyncSession, merchant_id: uuid.UUID, draft: PayoutDraft
    ) -> CreateResult:
        """Accept a payout and reserve its money, or raise without writing anything. An
        order_id the merchant used before returns that payout unchanged."""
        if draft.order_id is not None:
            existing = await self._by_order(session, merchant_id, draft.order_id)
            if existing is not None:
                return CreateResult(existing, created=False)
        now = utcnow()
        merchant = await self._refuse_if_held(session, merchant_id)
        terms = await self._terms(draft)
        network = self.catalogue.network(terms.service.network)
        assert network is not None
        address = normalize_address(network, draft.address)
        if address is None:
            raise InvalidAddress(draft.address)
        if merchant.payout_allowlist and not await self._allowed(
            session, merchant_id, network.code, address
        ):
            raise AddressNotAllowed(address)
        book = ledger.ledger_book(network.code)
        source = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, terms.source_currency, owner=merchant_id,
            network=book,
        )  # fmt: skip
        needs_approval = await self._needs_approval(terms)
        payout = Payout(
            uuid=uuid.uuid4(),
            merchant_id=merchant_id,
            order_id=draft.order_id,
            purpose="payout",
            rail=CHAIN,
            amount=draft.amount,
            currency=self.catalogue.currency(draft.currency).code,  # type: ignore[union-attr]
            network=network.code,
            network_shown=draft.network or network.code,
            address=address,
            is_subtract=draft.is_subtract,
            url_callback=draft.url_callback,
            to_currency=draft.to_currency,
            from_currency=draft.from_currency,
            course_source=draft.course_source,
            priority=draft.priority,
            memo=draft.memo,
            payer_currency=terms.service.currency,
            payer_amount=terms.payer_amount,
            source_currency=terms.source_currency,
            source_account_id=source.id,
            merchant_amount=terms.merchant_amount,
            commission=terms.commission,
            fee=terms.fee,
            rate=terms.rate,
            balance_after=Decimal(0),
            book=book,
            status=CHECK if needs_approval else PROCESS,
            stage=APPROVAL if needs_approval else QUEUED,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            attempts=0,
        )
        inserted = await self._insert(session, payout)
        if inserted is None:  # a concurrent request with the same order_id won
            assert draft.order_id is not None
            existing = await self._by_order(session, merchant_id, draft.order_id)
            assert existing is not None
            return CreateResult(existing, created=False)
        payout = inserted
        # The event first, the reservation last: the balance stays locked only for the
        # booking itself, until the commit.
        await self.announce(session, payout)
        try:
            await self._reserve(session, payout, source)
        except ledger.InsufficientFunds:
            if terms.source_currency != terms.service.currency:
                raise NotEnoughToConvert(terms.source_currency, terms.service.currency) from None
            raise
        return CreateResult(payout, created=True)

    async def _refuse_if_held(self, session: AsyncSession, merchant_id: uuid.UUID) -> Merchant:
        """The merchant, unless its payouts are blocked or held after a key change."""
        merchant = await session.get_one(Merchant, merchant_id)
        if merchant.payouts_blocked or (
            merchant.payouts_held_until is not None and merchant.payouts_held_until > utcnow()
        ):
            raise PayoutsForbidden()
        return merchant

    # ---------------------------------------------------------------- processor rail
    def connector_for(self, method: Method, environment: str) -> PayoutConnector | None:
        return next((c for c in self.connectors if c.handles(method, environment)), None)

    def connector_named(self, short_code: str) -> PayoutConnector | None:
        return next((c for c in self.connectors if c.short_code == short_code), None)

    async def create_processor(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        environment: str,
        draft: ProcessorPayoutDraft,
        customer: CheckoutCustomer,
    ) -> Payout:
        """Accept a payout a processor pays and reserve its amount from the merchant's
        balance in that currency (sandbox money in its own book), or raise without writing
        anything (ledger.InsufficientFunds: the balance does not cover it). The gateway
        is chosen now, so what cannot be paid is never accepted."""
        # Imported here: the checkout service reaches this module through the deposits.
        from paydesk.checkout.service import public_id

        connector = self.connector_for(draft.method, environment)
        if connector is None:
            raise NoPayoutConnector(draft.method.short_code)
        await self._refuse_if_held(session, merchant_id)
        book = "" if environment == "live" else environment
        source = await ledger.account(
            session, AccountKind.MERCHANT_BUSINESS, draft.currency, owner=merchant_id,
            network=book,
        )  # fmt: skip
        now = utcnow()
        payout = Payout(
            uuid=uuid.uuid4(),
            merchant_id=merchant_id,
            purpose="payout",
            rail=PROCESSOR,
            amount=draft.amount,
            currency=draft.currency,
            network=connector.short_code,
            network_shown=connector.short_code,
            address=next(iter(draft.recipient.values()), ""),
            is_subtract=False,
            priority="recommended",
            payer_currency=draft.currency,
            payer_amount=draft.amount,
            source_currency=draft.currency,
            source_account_id=source.id,
            merchant_amount=draft.amount,
            commission=Decimal(0),
            fee=Decimal(0),
            balance_after=Decimal(0),
            book=book,
            status=PROCESS,
            stage=QUEUED,
            public_id=public_id("po_"),
            environment=environment,
            method=draft.method.short_code,
            recipient=dict(draft.recipient),
            description=draft.description,
            extra=dict(draft.metadata),
            customer_id=customer.id,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            attempts=0,
        )
        session.add(payout)
        await session.flush()
        await self.announce(session, payout)
        await self._reserve(session, payout, source)
        return payout

    async def hand_to_processor(self, session: AsyncSession, payout: Payout) -> None:
        """Queued → sent (`pending` for the merchant), written before the processor is
        asked, so a worker that dies meanwhile asks about it rather than starting it
        again. Pending announces nothing (Moneroo has no such event)."""
        now = utcnow()
        payout.stage = SENT
        payout.sent_at = payout.updated_at = now
        payout.attempts += 1
        await session.flush()

    async def apply_processor_result(
        self, session: AsyncSession, payout: Payout, result: PayoutResult
    ) -> None:
        """What the processor says about a sent payout: paid (the reserve pays the
        processor's holdings), failed (the reserve goes back) or still pending."""
        if result.gateway_transaction_id is not None:
            payout.txid = result.gateway_transaction_id
        payout.gateway_status = result.gateway_status
        payout.failure_message = result.failure_message
        payout.failure_error_code = result.failure_error_code
        payout.failure_error_type = result.failure_error_type
        payout.last_error = None
        payout.updated_at = utcnow()
        if result.outcome == "success":
            await self.mark_paid(session, payout)
        elif result.outcome == "failed":
            await self.mark_failed(session, payout, (result.failure_error_code or "declined")[:32])
        else:
            await session.flush()

    async def find_processor(
        self, session: AsyncSession, merchant_id: uuid.UUID, environment: str, payout_id: str
    ) -> tuple[Payout, CheckoutCustomer]:
        """The merchant's processor payout in this mode, or PayoutNotFound (another
        merchant's, or the other mode's, does not exist for the caller)."""
        row = (
            await session.execute(
                select(Payout, CheckoutCustomer)
                .join(CheckoutCustomer, CheckoutCustomer.id == Payout.customer_id)
                .where(
                    Payout.public_id == payout_id,
                    Payout.merchant_id == merchant_id,
                    Payout.environment == environment,
                    Payout.rail == PROCESSOR,
                )
            )
        ).first()
        if row is None:
            raise PayoutNotFound(payout_id)
        return row[0], row[1]

    async def refund_held(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        held: Account,
        network: str,
        address: str,
        *,
        wallet_id: int,
        amount: Decimal | None = None,
    ) -> Payout:
        """Send a blocked static wallet's held deposits (all, or `amount`) to `address`,
        the fee taken from what is sent. Raises AmountTooSmall when the fee would eat it."""
        service = self.catalogue.service(held.currency, network)
        if service is None:
            raise PayoutServiceNotFound(f"{held.currency} {network}")
        net = self.catalogue.network(network)
        assert net is not None
        normalized = normalize_address(net, address)
        if normalized is None:
            raise InvalidAddress(address)
        available = await ledger.balance(session, held)
        total = available if amount is None else amount
        # All of it, to the chain's last unit (nothing the API cannot print is left behind).
        total = total.quantize(quantum(service.decimals), rounding=ROUND_DOWN)
        places = pricing.payer_places(self.catalogue.precision(held.currency), service)
        fee = payout_fee(service, total, places)
        if total <= 0:
            raise AmountTooSmall()
        if total - fee <= 0:
            raise AmountTooSmall()
        now = utcnow()
        payout = Payout(
            uuid=uuid.uuid4(),
            merchant_id=merchant_id,
            order_id=None,
            purpose="wallet_refund",
            wallet_id=wallet_id,
            amount=total,
            currency=held.currency,
            network=network,
            network_shown=network,
            address=normalized,
            is_subtract=False,
            payer_currency=held.currency,
            payer_amount=MONEY.subtract(total, fee),
            source_currency=held.currency,
            source_account_id=held.id,
            merchant_amount=total,
            commission=fee,
            fee=fee,
            balance_after=Decimal(0),
            book=ledger.ledger_book(network),
            status=PROCESS,
            stage=QUEUED,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            attempts=0,
        )
        session.add(payout)
        await session.flush()
        await self.announce(session, payout)
        await self._reserve(session, payout, held)
        return payout

    async def _terms(self, draft: PayoutDraft) -> _Terms:
        currency = self.catalogue.currency(draft.currency)
        if currency is None:
            raise PayoutCurrencyNotFound(draft.currency)
        coin = currency.code
        if draft.to_currency is not None:
            target = self.catalogue.currency(draft.to_currency)
            if target is None or target.is_fiat or not self.catalogue.services_for(target.code):
                raise ToCurrencyNotFound(draft.to_currency)
            coin = target.code
        elif currency.is_fiat:
            raise ToCurrencyNotFound("to_currency is required with a fiat currency")
        service = self._service(coin, draft.network)
        places = pricing.payer_places(self.catalogue.precision(coin), service)
        book = None
        if coin == currency.code:
            amount = draft.amount
        else:
            book = await self.rates.book()
            rate = book.convert(currency.code, coin, draft.course_source)
            if rate is None:
                raise ConversionFailed(f"{currency.code} → {coin}")
            amount = round_half_up(MONEY.multiply(draft.amount, rate.value), places)
        if amount != amount.quantize(quantum(places), context=MONEY):
            raise AmountTooSmall()  # finer than the coin can send
        if amount < service.payout_min_amount or amount <= 0:
            raise AmountTooSmall()
        if amount > service.payout_max_amount:
            raise AmountTooLarge(service.payout_max_amount, coin)
        fee = payout_fee(service, amount, places)
        if draft.is_subtract:
            payer_amount, cost = amount, MONEY.add(amount, fee)
        else:
            payer_amount, cost = MONEY.subtract(amount, fee), amount
            if payer_amount <= 0:
                raise AmountTooSmall()
        source_currency = coin
        merchant_amount, commission, source_rate = cost, fee, None
        if draft.from_currency is not None and draft.from_currency.upper() != coin:
            source_currency = draft.from_currency.upper()
            book = book or await self.rates.book()
            rate = book.convert(coin, source_currency, draft.course_source)
            if rate is None:
                raise ConversionFailed(f"{coin} → {source_currency}")
            source_rate = rate.value
            merchant_amount = round_up(MONEY.multiply(cost, rate.value), BALANCE_PLACES)
            commission = round_up(MONEY.multiply(fee, rate.value), BALANCE_PLACES)
        return _Terms(service, payer_amount, fee, source_currency, merchant_amount, commission,
                      source_rate)  # fmt: skip

    def _service(self, coin: str, network: str | None) -> Service:
        if network is None:
            offered = [s for s in self.catalogue.services_for(coin) if s.available]
            if len(offered) != 1:
                raise NetworkRequired(coin)
            return offered[0]
        service = self.catalogue.service(coin, network.lower())
        if service is None or not service.available:
            raise PayoutServiceNotFound(f"{coin} {network}")
        return service

    async def _needs_approval(self, terms: _Terms) -> bool:
        if self.approval_usd is None:
            return False
        rate = (await self.rates.book()).convert(terms.service.currency, "USD")
        if rate is None:
            return True  # cannot be valued: a person decides
        return MONEY.multiply(terms.payer_amount, rate.value) > self.approval_usd

    async def _allowed(
        self, session: AsyncSession, merchant_id: uuid.UUID, network: str, address: str
    ) -> bool:
        found = await session.scalar(
            select(PayoutAddress.id).where(
                PayoutAddress.merchant_id == merchant_id,
                PayoutAddress.network == network,
                PayoutAddress.address == address,
            )
        )
        return found is not None

    @staticmethod
    async def _insert(session: AsyncSession, payout: Payout) -> Payout | None:
        # By attribute: a column's name may differ from it (`extra` is `metadata`).
        values = {
            attr.columns[0].key: getattr(payout, attr.key)
            for attr in inspect(Payout).column_attrs
            if attr.key != "id"
        }
        inserted = await session.execute(
            dialect_insert(session, Payout)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["merchant_id", "order_id"])
            .returning(Payout.id)
        )
        payout_id = inserted.scalar()
        if payout_id is None:
            return None
        return await session.get_one(Payout, payout_id)

    # ---------------------------------------------------------------- the ledger
    async def _reserve(self, session: AsyncSession, payout: Payout, source: Account) -> None:
        reserve = await self._reserve_account(session, payout)
        booked = await ledger.post(
            session,
            "payout_reserve",
            f"payout:{payout.uuid}:reserve",
            [
                ledger.Leg(source, -payout.merchant_amount),
                ledger.Leg(reserve, payout.merchant_amount),
            ],
            memo=f"payout {payout.uuid}",
        )
        # Written with the commit: no round trip more while the balance is locked.
        payout.balance_after = source.sign * booked.posting_of(source).balance_after

    async def _reserve_account(self, session: AsyncSession, payout: Payout) -> Account:
        return await ledger.account(
            session, AccountKind.PAYOUT_RESERVE, payout.source_currency,
            owner=payout.merchant_id, network=payout.book,
        )  # fmt: skip

    async def _release(self, session: AsyncSession, payout: Payout) -> None:
        reserve = await self._reserve_account(session, payout)
        source = await session.get_one(Account, payout.source_account_id)
        await ledger.post(
            session,
            "payout_release",
            f"payout:{payout.uuid}:release",
            [
                ledger.Leg(reserve, -payout.merchant_amount),
                ledger.Leg(source, payout.merchant_amount),
            ],
            memo=f"payout {payout.uuid}",
        )

    async def _book_network_fee(
        self, session: AsyncSession, payout: Payout, native: str, fee: Decimal
    ) -> None:
        if fee <= 0:
            return
        holdings = await ledger.account(
            session, AccountKind.ONCHAIN_HOLDINGS, native, network=payout.network
        )
        expense = await ledger.account(
            session, AccountKind.NETWORK_FEE_EXPENSE, native, network=payout.book
        )
        await ledger.post(
            session,
            "payout_network_fee",
            f"payout:{payout.uuid}:network_fee",
            [ledger.Leg(holdings, fee), ledger.Leg(expense, -fee)],
            memo=f"payout {payout.uuid} {payout.txid}",
        )

    async def _settle(self, session: AsyncSession, payout: Payout) -> None:
        """The money left: the reserve pays it and the fee."""
        reserve = await self._reserve_account(session, payout)
        coin = payout.payer_currency
        # What paid it: the coins on chain, or what the processor (network: the gateway's
        # code) holds for the platform.
        kind = AccountKind.PROCESSOR_HOLDINGS if payout.rail == PROCESSOR else (
            AccountKind.ONCHAIN_HOLDINGS
        )  # fmt: skip
        holdings = await ledger.account(session, kind, coin, network=payout.network)
        income = await ledger.account(
            session, AccountKind.PLATFORM_COMMISSION, coin, network=payout.book
        )
        legs = [
            ledger.Leg(reserve, -payout.merchant_amount),
            ledger.Leg(holdings, payout.payer_amount),
            ledger.Leg(income, payout.fee),
        ]
        if payout.source_currency != coin:
            # Paid from another coin's balance: the platform takes that coin and gives
            # the one sent.
            desk_source = await ledger.account(
                session, AccountKind.EXCHANGE, payout.source_currency, network=payout.book
            )
            desk_coin = await ledger.account(
                session, AccountKind.EXCHANGE, coin, network=payout.book
            )
            legs += [
                ledger.Leg(desk_source, payout.merchant_amount),
                ledger.Leg(desk_coin, -MONEY.add(payout.payer_amount, payout.fee)),
            ]
        await ledger.post(
            session, "payout", f"payout:{payout.uuid}:paid", legs,
            memo=f"payout {payout.uuid} {payout.txid}",
        )  # fmt: skip

    # ---------------------------------------------------------------- moving on
    async def mark_paid(
        self,
        session: AsyncSession,
        payout: Payout,
        native: str | None = None,
        network_fee: Decimal = Decimal(0),
    ) -> None:
        """Settle the reserve (and book the network fee a chain transaction cost)."""
        await self._settle(session, payout)
        if native is not None:
            await self._book_network_fee(session, payout, native, network_fee)
            payout.network_fee = network_fee
        await self._finish(session, payout, PAID, DONE)

    async def mark_failed(
        self,
        session: AsyncSession,
        payout: Payout,
        reason: str,
        *,
        status: str = FAIL,
        native: str | None = None,
        network_fee: Decimal = Decimal(0),
    ) -> None:
        """Give the reserve back (and book the network fee a failed transaction still
        cost)."""
        await self._release(session, payout)
        if native is not None:
            await self._book_network_fee(session, payout, native, network_fee)
            payout.network_fee = network_fee
        payout.fail_reason = reason
        await self._finish(session, payout, status, FAILED)

    async def _finish(self, session: AsyncSession, payout: Payout, status: str, stage: str) -> None:
        now = utcnow()
        payout.status = status
        payout.stage = stage
        payout.finished_at = now
        payout.updated_at = now
        await session.flush()
        await self.announce(session, payout)

    async def approve(self, session: AsyncSession, payout_uuid: uuid.UUID, by: str) -> Payout:
        payout = await self._pending_approval(session, payout_uuid)
        now = utcnow()
        payout.status = PROCESS
        payout.stage = QUEUED
        payout.approved_at = now
        payout.approved_by = by
        payout.next_attempt_at = now
        payout.updated_at = now
        await session.flush()
        await self.announce(session, payout)
        return payout

    async def reject(self, session: AsyncSession, payout_uuid: uuid.UUID, by: str) -> Payout:
        payout = await self._pending_approval(session, payout_uuid)
        payout.approved_by = by
        await self.mark_failed(session, payout, "rejected", status=CANCEL)
        return payout

    async def _pending_approval(self, session: AsyncSession, payout_uuid: uuid.UUID) -> Payout:
        payout = await session.scalar(
            select(Payout).where(Payout.uuid == payout_uuid).with_for_update()
        )
        if payout is None:
            raise PayoutNotFound(str(payout_uuid))
        if payout.stage != APPROVAL:
            raise NotPending(f"payout {payout_uuid} is {payout.status}, not waiting for approval")
        return payout

    async def announce(self, session: AsyncSession, payout: Payout) -> None:
        """Record the payout's state as a webhook event, in the caller's transaction."""
        if payout.rail == PROCESSOR:
            await self._announce_processor(session, payout)
            return
        await webhooks.record(
            session,
            merchant_id=payout.merchant_id,
            topic=webhooks.PAYOUT_STATUS,
            subject_uuid=payout.uuid,
            url=payout.url_callback,
            payload=snapshot(payout),
        )

    async def _announce_processor(self, session: AsyncSession, payout: Payout) -> None:
        """Moneroo's event of the stage entered, to the merchant's endpoints of the
        payout's environment."""
        event = PROCESSOR_EVENTS.get(payout.stage)
        if event is None:
            return
        assert payout.customer_id is not None
        customer = await session.get_one(CheckoutCustomer, payout.customer_id)
        await webhooks.record(
            session,
            merchant_id=payout.merchant_id,
            topic=f"checkout.{event}",
            subject_uuid=payout.uuid,
            url=None,
            payload={
                "event": event,
                "environment": payout.environment,
                "data": processor_snapshot(payout, customer),
            },
        )

    # ---------------------------------------------------------------- reading
    async def find(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        *,
        payout_uuid: uuid.UUID | None = None,
        order_id: str | None = None,
    ) -> Payout:
        """By order_id when given (it wins, as the spec says), else by uuid."""
        if order_id is not None:
            found = await self._by_order(session, merchant_id, order_id)
        else:
            found = await session.scalar(
                select(Payout).where(
                    Payout.merchant_id == merchant_id,
                    Payout.uuid == payout_uuid,
                    Payout.rail == CHAIN,
                )
            )
        if found is None:
            raise PayoutNotFound(str(order_id or payout_uuid))
        return found

    async def history(
        self,
        session: AsyncSession,
        merchant_id: uuid.UUID,
        filters: HistoryFilter,
        cursor: Cursor | None,
        per_page: int,
    ) -> Page[Payout]:
        stmt = select(Payout).where(Payout.merchant_id == merchant_id, Payout.rail == CHAIN)
        return await history_page(session, stmt, Payout.id, Payout.created_at, filters,
                                  cursor, per_page)  # fmt: skip

    @staticmethod
    async def _by_order(
        session: AsyncSession, merchant_id: uuid.UUID, order_id: str
    ) -> Payout | None:
        return await session.scalar(
            select(Payout).where(Payout.merchant_id == merchant_id, Payout.order_id == order_id)
        )

    # ---------------------------------------------------------------- allowlist
    @staticmethod
    async def allow(
        session: AsyncSession,
        merchant_id: uuid.UUID,
        network: str,
        address: str,
        label: str | None = None,
    ) -> None:
        await session.execute(
            dialect_insert(session, PayoutAddress)
            .values(
                merchant_id=merchant_id,
                network=network,
                address=address,
                label=label,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["merchant_id", "network", "address"])
        )


def is_final_status(status: str) -> bool:
    return status in FINAL_STATUSES


def snapshot(payout: Payout) -> dict[str, Any]:
    """The payout as a webhook event records it: dialect-neutral, amounts as exact text."""
    return {
        "uuid": str(payout.uuid),
        "order_id": payout.order_id,
        "status": payout.status,
        "is_final": is_final_status(payout.status),
        "fail_reason": payout.fail_reason,
        "amount": f"{payout.amount:f}",
        "currency": payout.currency,
        "network": payout.network,
        "address": payout.address,
        "merchant_amount": f"{payout.merchant_amount:f}",
        "commission": f"{payout.commission:f}",
        "source_currency": payout.source_currency,
        "payer_currency": payout.payer_currency,
        "payer_amount": f"{payout.payer_amount:f}",
        "txid": payout.txid,
    }


def processor_status(payout: Payout) -> str:
    """A processor payout's status as Moneroo names it: `initiated` while queued,
    `pending` once handed to the processor, then `success` or `failed`."""
    if payout.stage == DONE:
        return "success"
    if payout.stage == FAILED:
        return "failed"
    if payout.stage in (SIGNED, SENT):
        return "pending"
    return "initiated"


def processor_snapshot(payout: Payout, customer: CheckoutCustomer) -> dict[str, Any]:
    """A processor payout as its Moneroo event records it, the amount as exact text."""
    return {
        "id": payout.public_id,
        "status": processor_status(payout),
        "amount": f"{payout.amount:f}",
        "currency": payout.currency,
        "description": payout.description or "",
        "environment": payout.environment,
        "metadata": dict(payout.extra or {}),
        "customer": {
            "id": customer.public_id,
            "email": customer.email,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "phone": customer.phone,
        },
        "method": payout.method,
        "created_at": timestamp(payout.created_at),
    }
