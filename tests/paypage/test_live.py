"""The live-status poller: one batch read per tick for every open page, waiters woken on
a change, nothing kept once nobody listens."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from paydesk.paypage.live import LiveStatus
from paydesk.paypage.service import PaymentPages
from tests.chains.test_testmode import follow


class CountingPages(PaymentPages):
    """The real service, counting its batch reads (and failing the first `fail` ones)."""

    def __init__(self, pages: PaymentPages, fail: int = 0) -> None:
        super().__init__(pages.db, pages.catalogue, pages.invoices, renewable=False)
        self.batches: list[int] = []
        self.fail = fail

    async def views(self, invoice_uuids):
        wanted = list(invoice_uuids)
        self.batches.append(len(wanted))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database away")
        return await super().views(wanted)


async def devnet_invoice(api, order_id):
    return await api.result(
        "/v1/payment",
        {"amount": "20", "currency": "USDT", "network": "devnet", "order_id": order_id},
    )


async def test_many_pages_are_read_in_one_batch(api, context):
    invoices = [await devnet_invoice(api, f"many-{n}") for n in range(30)]
    pages = CountingPages(context.payment_pages)
    live = LiveStatus(pages, poll_seconds=0.05)
    try:
        views = await asyncio.gather(
            *(live.next_view(uuid.UUID(i["uuid"]), None, 5) for i in invoices)
        )
        assert [str(v.invoice.uuid) for v in views] == [i["uuid"] for i in invoices]
        assert pages.batches[0] == 30 and len(pages.batches) <= 2
    finally:
        await live.close()


async def test_a_payment_wakes_every_waiter_of_its_invoice(api, context):
    invoice = await devnet_invoice(api, "wake")
    key = uuid.UUID(invoice["uuid"])
    live = LiveStatus(context.payment_pages, poll_seconds=0.05)
    try:
        first = await live.next_view(key, None, 5)
        waiting = [asyncio.create_task(live.next_view(key, first.version, 10)) for _ in range(5)]
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in waiting)  # nothing changed yet
        await api.result("/v1/devnet/pay", {"uuid": invoice["uuid"]})
        await follow(context)
        woken = await asyncio.gather(*waiting)
        assert {view.state.value for view in woken} == {"confirming"}
        assert len({view.version for view in woken}) == 1
    finally:
        await live.close()


async def test_a_quiet_invoice_times_out_and_the_poller_stops(api, context):
    invoice = await devnet_invoice(api, "quiet")
    key = uuid.UUID(invoice["uuid"])
    live = LiveStatus(context.payment_pages, poll_seconds=0.02)
    first = await live.next_view(key, None, 5)
    assert await live.next_view(key, first.version, 0.2) is None
    for _ in range(100):
        if live._poller is None or live._poller.done():
            break
        await asyncio.sleep(0.02)
    assert live._poller.done() and live._watches == {}


async def test_the_poller_outlives_a_database_outage(api, context):
    invoice = await devnet_invoice(api, "outage")
    pages = CountingPages(context.payment_pages, fail=3)
    live = LiveStatus(pages, poll_seconds=0.02)
    try:
        view = await live.next_view(uuid.UUID(invoice["uuid"]), None, 5)
        assert view is not None and len(pages.batches) >= 4
    finally:
        await live.close()


@pytest.mark.parametrize("settings_overrides", [{"page_poll_seconds": 0.02}])
async def test_an_unknown_invoice_never_wakes_anyone(context):
    live = LiveStatus(context.payment_pages, poll_seconds=0.02)
    try:
        assert await live.next_view(uuid.uuid4(), None, 0.2) is None
    finally:
        await live.close()


async def test_a_newer_page_is_never_sent_an_older_view(api, context):
    """A view the poller read before a page was rendered is older than that page: the
    page rendered after the payer's choice must not be sent back to the coin list."""
    invoice = await api.result(
        "/v1/payment", {"amount": "15", "currency": "USD", "order_id": "stale"}
    )
    key = uuid.UUID(invoice["uuid"])
    live = LiveStatus(context.payment_pages, poll_seconds=5)  # no second read in this test
    try:
        before = await live.next_view(key, None, 5)
        assert before.state.value == "choose"
        keeper = asyncio.create_task(live.next_view(key, before.version, 10))
        await context.payment_pages.choose(key, "USDT", "devnet")
        rendered = await context.payment_pages.view(key)  # the page the browser now has
        assert rendered.version != before.version
        assert await live.next_view(key, rendered.version, 0.5) is None
        keeper.cancel()
    finally:
        await live.close()
