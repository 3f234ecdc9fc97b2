"""The dashboard's invoice list and invoice page, on real databases: invoices made by the
invoice service, paid over the devnet (and, for explorer links, credited as the eth watcher
would), their webhooks delivered to a real receiver on 127.0.0.1."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from paydesk.chains.devnet import FAUCET_ADDRESS
from paydesk.dashboard.invoices import (
    MAX_PER_PAGE,
    InvoiceFilter,
    InvoicePage,
    invoice_detail,
    resend_invoice_webhook,
    search_invoices,
)
from paydesk.db import utcnow
from paydesk.deposits.service import ObservedTransfer
from paydesk.invoices.models import Invoice
from paydesk.invoices.schemas import InvoiceDraft
from paydesk.merchants.service import create_merchant
from paydesk.webhooks import service as webhooks
from paydesk.webhooks.models import WebhookEvent
from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.service import INVOICE_STATUS, MAX_RESENDS, TooManyResends
from paydesk.webhooks.worker import deliver_due
from tests.devnet import follow_devnet, mine

ETH_PAYER = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # eth for a network with a public explorer; its node is never called (transfers are
    # credited the way its watcher would).
    return {
        "networks": ["devnet", "eth"],
        "chain_nodes": {"eth": "http://127.0.0.1:9"},
        "callback_allowlist": ["127.0.0.0/8"],
    }


@pytest.fixture
async def other(context):
    async with context.db.transaction() as session:
        return await create_merchant(session, context.vault, name="Other", email="o@other.test")


async def new_invoice(
    context, merchant_id, order_id, amount="10", currency="USDT", network="devnet", **fields
) -> Invoice:
    draft = InvoiceDraft(
        amount=Decimal(amount), currency=currency, order_id=order_id, network=network, **fields
    )
    async with context.db.transaction() as session:
        return (await context.invoices.create(session, merchant_id, draft)).invoice


async def created_at(context, invoice: Invoice, when: datetime) -> None:
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice).where(Invoice.id == invoice.id).values(created_at=when)
        )


async def search(context, merchant_id, page=1, per_page=25, **filters) -> InvoicePage:
    async with context.db.reader() as session:
        return await search_invoices(
            session, merchant_id, InvoiceFilter(**filters), page=page, per_page=per_page
        )


async def orders(context, merchant_id, **filters) -> list[str]:
    return [invoice.order_id for invoice in (await search(context, merchant_id, **filters)).items]


async def detail(context, merchant_id, invoice_uuid):
    async with context.db.reader() as session:
        return await invoice_detail(session, merchant_id, invoice_uuid, context.catalogue)


async def send(context, address: str, amount: str) -> str:
    """A devnet transfer, in the mempool; the watcher sees it there."""
    async with context.db.transaction() as session:
        sent = await context.devnet.send(session, address, Decimal(amount), "USDT")
    await follow_devnet(context)
    return sent.txid


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=UTC)


# --------------------------------------------------------------------------- the list
async def test_filters_by_status_currency_and_days(context, merchant):
    me = merchant.merchant_id
    a = await new_invoice(context, me, "a", lifetime=7200)
    # USD priced in USDT (the static peg): USDT is its payer currency only.
    b = await new_invoice(context, me, "b", currency="USD", to_currency="USDT", lifetime=7200)
    c = await new_invoice(context, me, "c", currency="USD", network=None, lifetime=300)
    await new_invoice(context, me, "d", amount="0.5", currency="ETH", network="eth")
    assert (b.currency, b.payer_currency, c.payer_currency) == ("USD", "USDT", None)
    await created_at(context, a, at("2024-03-01", "00:00:00"))
    await created_at(context, b, at("2024-03-02", "23:59:59.999999"))
    await created_at(context, c, at("2024-03-03", "00:00:00"))
    async with context.db.transaction() as session:  # c's lifetime ends
        assert await context.invoices.expire_due(session, utcnow() + timedelta(minutes=10)) == 1

    assert await orders(context, me) == ["d", "c", "b", "a"]  # newest first
    assert await orders(context, me, status="cancel") == ["c"]
    assert await orders(context, me, status="check") == ["d", "b", "a"]
    assert await orders(context, me, status="paid") == []
    assert await orders(context, me, currency="USDT") == ["b", "a"]  # own or payer's
    assert await orders(context, me, currency="usd") == ["c", "b"]
    assert await orders(context, me, currency="ETH") == ["d"]
    assert await orders(context, me, since=date(2024, 3, 2)) == ["d", "c", "b"]
    assert await orders(context, me, until=date(2024, 3, 2)) == ["b", "a"]
    day = date(2024, 3, 2)
    assert await orders(context, me, since=day, until=day) == ["b"]  # its last microsecond
    day = date(2024, 3, 3)
    assert await orders(context, me, since=day, until=day) == ["c"]  # its first one
    assert await orders(context, me, since=date.min, until=date.max) == ["d", "c", "b", "a"]
    assert await orders(context, me, since=date(2024, 3, 4), until=date(2024, 3, 1)) == []
    assert await orders(context, me, status="check", currency="USDT", until=day) == ["b", "a"]


async def test_search_by_uuid_order_id_address_and_txid(context, merchant, other):
    me = merchant.merchant_id
    first = await new_invoice(context, me, "shop-1001")
    second = await new_invoice(context, me, "shop-1002")
    await new_invoice(context, me, "SHOP-9")
    await new_invoice(context, me, "50%_off")
    theirs = await new_invoice(context, other.merchant_id, "shop-1003")
    await mine(context)  # the devnet's genesis block
    txid = await send(context, second.address, "4")
    their_txid = await send(context, theirs.address, "4")

    async def found(query: str) -> list[str]:
        return await orders(context, me, query=query)

    assert await found("shop-100") == ["shop-1002", "shop-1001"]  # a prefix
    assert await found("shop-1001") == ["shop-1001"]  # exact
    assert await found("shop") == ["shop-1002", "shop-1001"]  # case counts, on both engines
    assert await found("50%") == ["50%_off"]
    assert await found("5_%") == []  # no wildcards
    assert await found("hop-1001") == []  # a beginning, not any part
    assert await found(str(first.uuid)) == ["shop-1001"]
    assert await found(str(first.uuid).upper()) == ["shop-1001"]
    assert await found(first.address) == ["shop-1001"]
    assert await found(txid) == ["shop-1002"]  # a transfer that paid it
    # Another merchant's invoice is never found, however it is named.
    for query in (str(theirs.uuid), "shop-1003", theirs.address, their_txid):
        assert await found(query) == []
    assert await orders(context, other.merchant_id) == ["shop-1003"]
    assert await found("nothing-like-it") == []


async def test_pages_and_their_boundary(context, merchant):
    me = merchant.merchant_id
    invoices = [await new_invoice(context, me, f"o{n}", network=None) for n in range(4)]
    # Two created at the same instant: the later id is the newer.
    same = utcnow()
    await created_at(context, invoices[1], same)
    await created_at(context, invoices[2], same)
    await created_at(context, invoices[3], same - timedelta(seconds=1))
    await created_at(context, invoices[0], same - timedelta(seconds=2))

    first = await search(context, me, page=1, per_page=2)
    assert [i.order_id for i in first.items] == ["o2", "o1"]
    assert (first.page, first.per_page, first.has_next, first.has_previous) == (1, 2, True, False)
    second = await search(context, me, page=2, per_page=2)
    assert [i.order_id for i in second.items] == ["o3", "o0"]
    assert (second.has_next, second.has_previous) == (False, True)  # exactly full: no next
    past = await search(context, me, page=3, per_page=2)
    assert (past.items, past.has_next) == ([], False)
    three = await search(context, me, page=1, per_page=3)
    assert len(three.items) == 3 and three.has_next
    # Out-of-range numbers are brought into range, never an error.
    assert (await search(context, me, page=0, per_page=0)).per_page == 1
    assert (await search(context, me, page=-5, per_page=2)).page == 1
    assert (await search(context, me, per_page=10**9)).per_page == MAX_PER_PAGE
    huge = await search(context, me, page=10**30, per_page=MAX_PER_PAGE)
    assert (huge.items, huge.has_next) == ([], False)


async def test_another_merchants_invoice_is_never_shown(context, merchant, other, receiver):
    theirs = await new_invoice(context, other.merchant_id, "theirs", url_callback=receiver.url)
    await mine(context)
    await send(context, theirs.address, "10")
    await mine(context)
    assert (await detail(context, other.merchant_id, theirs.uuid)) is not None
    assert (await search(context, merchant.merchant_id)).items == []
    assert await detail(context, merchant.merchant_id, theirs.uuid) is None
    assert await detail(context, merchant.merchant_id, str(theirs.uuid)) is None
    assert await detail(context, merchant.merchant_id, "not-a-uuid") is None
    assert await detail(context, merchant.merchant_id, uuid.uuid4()) is None
    async with context.db.transaction() as session:
        assert not await resend_invoice_webhook(session, merchant.merchant_id, theirs.uuid)
        assert not await resend_invoice_webhook(session, merchant.merchant_id, "junk")


# --------------------------------------------------------------------------- one invoice
async def test_a_devnet_payment_timeline_transfers_and_deliveries(context, merchant, receiver):
    me = merchant.merchant_id
    invoice = await new_invoice(context, me, "paid-1", url_callback=receiver.url)
    await mine(context)  # genesis
    first = await send(context, invoice.address, "10")  # in the mempool: confirm_check
    await mine(context)  # credited: paid
    await send(context, invoice.address, "1")
    await mine(context)  # paid_over
    await send(context, invoice.address, "1")
    await mine(context)  # paid_over again: a late credit is announced with the same status

    async with context.db.reader() as session:
        events = list(
            await session.scalars(
                select(WebhookEvent.payload)
                .where(WebhookEvent.subject_uuid == invoice.uuid)
                .order_by(WebhookEvent.id)
            )
        )
    assert [e["status"] for e in events] == ["confirm_check", "paid", "paid_over", "paid_over"]

    # The first delivery fails once and succeeds a minute later; the others wait for it.
    receiver.answers = [500]
    clock = Clock()
    sender = build_sender(context.settings)
    try:
        assert await deliver_due(context, sender, clock=clock) == 1
        clock.now += timedelta(minutes=1)
        while await deliver_due(context, sender, clock=clock):
            pass
    finally:
        await sender.close()
    assert len(receiver.received) == 5

    shown = await detail(context, me, invoice.uuid)
    assert shown is not None and shown.invoice.status == "paid_over"
    timeline = shown.timeline
    assert [entry.status for entry in timeline] == ["check", "confirm_check", "paid", "paid_over"]
    assert timeline[0].at == shown.invoice.created_at
    assert all(a.at <= b.at for a, b in itertools.pairwise(timeline))

    transfers = shown.transfers
    assert [(t.amount, t.status) for t in transfers] == [
        (Decimal(10), "credited"), (Decimal(1), "credited"), (Decimal(1), "credited"),
    ]  # fmt: skip
    head = transfers[0]
    assert (head.network, head.txid, head.currency, head.from_address) == (
        "devnet", first, "USDT", FAUCET_ADDRESS,
    )  # fmt: skip
    assert head.explorer_url is None  # the devnet has no public explorer
    assert [t.block_height for t in transfers] == [1, 2, 3]
    assert [t.confirmations for t in transfers] == [3, 2, 1]  # the watcher read to block 3
    assert {t.confirmations_required for t in transfers} == {1}
    assert head.credited_at is not None and head.credited_at >= head.created_at
    assert head.reversed_at is None

    deliveries = shown.deliveries
    assert [d.event_status for d in deliveries] == [
        "paid_over", "paid_over", "paid", "confirm_check",
    ]  # newest first  # fmt: skip
    assert {(d.status, d.reason, d.url) for d in deliveries} == {
        ("delivered", "event", receiver.url)
    }
    oldest = deliveries[-1]
    assert oldest.attempt_count == 2 and oldest.last_error is None
    assert [a.status_code for a in oldest.attempts] == [500, 200]  # oldest first
    assert oldest.attempts[0].attempted_at < oldest.attempts[1].attempted_at
    assert oldest.delivered_at == oldest.attempts[1].attempted_at
    assert all(a.latency_ms >= 0 and a.error is None for a in oldest.attempts)
    assert [len(d.attempts) for d in deliveries[:-1]] == [1, 1, 1]

    # Resending queues the latest event again.
    async with context.db.transaction() as session:
        assert await resend_invoice_webhook(session, me, invoice.uuid)
    resent = (await detail(context, me, str(invoice.uuid))).deliveries
    assert len(resent) == 5
    newest = resent[0]
    assert (newest.reason, newest.status, newest.event_status) == ("resend", "pending", "paid_over")
    assert (newest.attempt_count, newest.attempts, newest.delivered_at) == (0, [], None)
    # The API's per-invoice limit holds here too.
    async with context.db.transaction() as session:
        for _ in range(MAX_RESENDS - 1):
            assert await resend_invoice_webhook(session, me, invoice.uuid)
    with pytest.raises(TooManyResends):
        async with context.db.transaction() as session:
            await resend_invoice_webhook(session, me, invoice.uuid)
    assert len((await detail(context, me, invoice.uuid)).deliveries) == 4 + MAX_RESENDS
    # The operator's retries add more (no limit): the page shows the newest 20.
    async with context.db.transaction() as session:
        for _ in range(21 - 4 - MAX_RESENDS):
            retried = await webhooks.retry_dead(session, oldest.id, utcnow())
    capped = (await detail(context, me, invoice.uuid)).deliveries
    assert len(capped) == 20
    assert capped[0].id == retried.id and capped[0].reason == "retry"
    assert oldest.id not in {d.id for d in capped}  # the oldest fell off
    assert capped[-1].id == deliveries[-2].id


async def test_an_expired_invoice_timeline(context, merchant):
    invoice = await new_invoice(context, merchant.merchant_id, "late", lifetime=300)
    async with context.db.transaction() as session:
        assert await context.invoices.expire_due(session, utcnow() + timedelta(minutes=10)) == 1
    shown = await detail(context, merchant.merchant_id, invoice.uuid)
    assert [entry.status for entry in shown.timeline] == ["check", "cancel"]
    assert shown.transfers == [] and shown.deliveries == []  # no callback URL: no delivery
    async with context.db.reader() as session:
        [topic] = await session.scalars(
            select(WebhookEvent.topic).where(WebhookEvent.subject_uuid == invoice.uuid)
        )
    assert topic == INVOICE_STATUS


async def test_a_real_network_transfer_links_to_its_explorer(context, merchant):
    invoice = await new_invoice(context, merchant.merchant_id, "eth-1", network="eth")
    txid = "0x" + "ab" * 32
    async with context.db.transaction() as session:
        await context.deposits.credit(
            session,
            ObservedTransfer("eth", txid, 0, invoice.address, "USDT", Decimal(10),
                             from_address=ETH_PAYER, block_height=10, block_hash="00" * 32),
        )  # fmt: skip
    shown = await detail(context, merchant.merchant_id, invoice.uuid)
    [transfer] = shown.transfers
    assert transfer.explorer_url == f"https://etherscan.io/tx/{txid}"
    assert (transfer.network, transfer.block_height, transfer.from_address) == (
        "eth", 10, ETH_PAYER,
    )  # fmt: skip
    # No eth watcher has run here: how deep the block is, is unknown.
    assert (transfer.confirmations, transfer.confirmations_required) == (None, 12)
    assert [entry.status for entry in shown.timeline] == ["check", "paid"]


async def test_resend_needs_a_callback_url_and_an_event(context, merchant, receiver):
    me = merchant.merchant_id
    silent = await new_invoice(context, me, "silent")  # no callback URL
    waiting = await new_invoice(context, me, "waiting", url_callback=receiver.url)  # no event
    await mine(context)
    await send(context, silent.address, "10")
    async with context.db.transaction() as session:
        assert not await resend_invoice_webhook(session, me, silent.uuid)
        assert not await resend_invoice_webhook(session, me, waiting.uuid)
    assert (await detail(context, me, waiting.uuid)).deliveries == []


# --------------------------------------------------------------------------- the query
def test_from_query_keeps_what_parses():
    parsed = InvoiceFilter.from_query(
        {"status": " PAID ", "currency": " usdt ", "since": "2024-03-01", "until": "2024-03-31",
         "q": "  shop-1\x00001  ", "page": "2"}
    )  # fmt: skip
    assert parsed == InvoiceFilter(
        status="paid", currency="USDT", since=date(2024, 3, 1), until=date(2024, 3, 31),
        query="shop-1001",
    )  # fmt: skip
    assert parsed.active and not InvoiceFilter().active
    assert InvoiceFilter.from_query({"query": "o-1"}).query == "o-1"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "paid'; DROP TABLE invoices; --", "currency": "US DT"},
        {"status": "refunded", "currency": "", "q": "   \t "},
        {"since": "yesterday", "until": "2024-02-30"},
        {"since": "2024-03-01T00:00", "until": "20240301"},
        {"since": "9" * 10_000, "until": "-1"},
        {"currency": "A" * 17, "status": "paid" + " " * 40 + "x"},
        {"currency": "ÜSDT", "q": "\x00\x01\x7f"},
    ],
)
def test_from_query_ignores_junk(params):
    assert InvoiceFilter.from_query(params) == InvoiceFilter()


async def test_an_overlong_query_is_capped_and_searched_safely(context, merchant):
    parsed = InvoiceFilter.from_query({"q": "x" * 100_000 + "\x00"})
    assert parsed.query == "x" * 128
    async with context.db.reader() as session:
        assert (await search_invoices(session, merchant.merchant_id, parsed)).items == []
