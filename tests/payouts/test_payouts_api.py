"""Payouts on the devnet through the Cryptomus API: reservation, execution by the worker,
webhooks, the documented errors (with nothing reserved), approval and the allowlist."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pyCryptomusAPI.webhooks import process_payout_webhook
from sqlalchemy import func, select

from paydesk.chains.models import DevnetTransaction
from paydesk.db import utcnow
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from paydesk.merchants.models import Merchant
from paydesk.payouts.models import Payout
from paydesk.webhooks.models import WebhookEvent
from tests.devnet import deliver_webhooks, mine, run_payouts
from tests.payouts.conftest import DESTINATION, account_balance, balance, send


async def fund(api, context, amount: str = "100") -> Decimal:
    """Give the merchant a devnet USDT balance through a static wallet deposit."""
    wallet = await api.result(
        "/v1/wallet", {"currency": "USDT", "network": "devnet", "order_id": "funding"}
    )
    await send(context, wallet["address"], amount)
    await mine(context)
    return await balance(context, api.merchant.merchant_id)


async def payout(api, order_id="po-1", amount="10", is_subtract=True, **extra):
    body = {"amount": amount, "currency": "USDT", "network": "devnet", "order_id": order_id,
            "address": DESTINATION, "is_subtract": is_subtract, **extra}  # fmt: skip
    return await api.post("/v1/payout", body, key=api.merchant.payout_key)


async def payout_rows(context) -> list[Payout]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Payout).order_by(Payout.id)))


async def reserve_of(context, merchant_id) -> Decimal:
    return await account_balance(context, AccountKind.PAYOUT_RESERVE, owner=str(merchant_id),
                                 network="devnet")  # fmt: skip


async def devnet_received(context, address: str = DESTINATION) -> list[Decimal]:
    async with context.db.reader() as session:
        return list(
            await session.scalars(
                select(DevnetTransaction.amount).where(DevnetTransaction.to_address == address)
            )
        )


async def test_payout_is_reserved_sent_confirmed_and_announced(api, context, receiver):
    merchant_id = api.merchant.merchant_id
    assert await fund(api, context) == Decimal("99")
    response = await payout(api, url_callback=receiver.url)
    assert response.status_code == 200
    # balance and payer_amount are JSON numbers, as the spec's examples show them.
    assert b'"balance":88.85,' in response.content and b'"payer_amount":10}' in response.content
    created = response.json()["result"]
    assert list(created) == ["uuid", "amount", "currency", "network", "address", "txid", "status",
                             "is_final", "balance", "payer_currency", "payer_amount"]  # fmt: skip
    # 10 sent, fee 0.5 % of 10 + 0.1 = 0.15 from the balance: 99 - 10.15.
    assert (created["status"], created["is_final"], created["txid"]) == ("process", False, None)
    assert (created["amount"], created["network"], created["address"]) == (
        "10.00000000", "devnet", DESTINATION
    )  # fmt: skip
    assert await balance(context, merchant_id) == Decimal("88.85")
    assert await reserve_of(context, merchant_id) == Decimal("10.15")

    await run_payouts(context)  # signed and handed to the chain: in the mempool
    sent = await api.result("/v1/payout/info", {"uuid": created["uuid"]},
                            key=api.merchant.payout_key)  # fmt: skip
    assert sent["status"] == "process" and sent["txid"].startswith("0x")
    assert await devnet_received(context) == [Decimal("10")]
    await mine(context)
    await run_payouts(context)
    paid = await api.result("/v1/payout/info", {"order_id": "po-1"}, key=api.merchant.payout_key)
    assert (paid["status"], paid["is_final"], paid["txid"]) == ("paid", True, sent["txid"])
    assert await reserve_of(context, merchant_id) == 0
    assert await balance(context, merchant_id) == Decimal("88.85")
    # The fee is the platform's income; the devnet transfer cost nothing.
    assert await account_balance(context, AccountKind.PLATFORM_COMMISSION, network="devnet") == (
        Decimal("1") + Decimal("0.15")  # the funding deposit's 1 %, then the payout's fee
    )

    await deliver_webhooks(context)
    bodies = [r.body for r in receiver.received]
    assert [json.loads(b)["status"] for b in bodies] == ["process", "paid"]
    verified = process_payout_webhook(bodies[-1], api.merchant.payout_key)
    assert (verified.status, verified.is_final, verified.txid) == ("paid", True, sent["txid"])
    last = json.loads(bodies[-1])
    assert list(last) == ["type", "uuid", "order_id", "amount", "merchant_amount", "commission",
                          "is_final", "status", "txid", "currency", "network", "payer_currency",
                          "payer_amount", "sign"]  # fmt: skip
    assert (last["amount"], last["merchant_amount"], last["commission"], last["payer_amount"]) == (
        "10.00000000", "10.15000000", "0.15000000", "10.00000000"
    )  # fmt: skip
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def test_fee_from_the_amount_when_not_subtracted(api, context):
    await fund(api, context)
    created = (await payout(api, is_subtract="0")).json()["result"]
    # 10 from the balance, 9.85 arrives.
    assert (created["balance"], created["payer_amount"]) == (89, 9.85)
    await run_payouts(context)
    assert await devnet_received(context) == [Decimal("9.85")]


async def test_same_order_id_returns_the_same_payout_and_reserves_once(api, context):
    await fund(api, context)
    first = (await payout(api)).json()["result"]
    second = (await payout(api, amount="50")).json()["result"]
    assert second == first
    assert len(await payout_rows(context)) == 1
    assert await balance(context, api.merchant.merchant_id) == Decimal("88.85")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"amount": "98.60"}, {"state": 1, "message": "Not enough funds"}),
        ({"address": "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"},
         {"state": 1, "errors": {"address": ["validation.invalid_address"]}}),
        ({"address": DESTINATION[:-1] + ("q" if DESTINATION[-1] != "q" else "p")},
         {"state": 1, "errors": {"address": ["validation.invalid_address"]}}),
        ({"amount": "0.99"}, {"state": 1, "message": "The withdrawal amount is too small"}),
        ({"amount": "0.0000001"}, {"state": 1, "message": "The withdrawal amount is too small"}),
        ({"amount": "5000.01"}, {"state": 1, "message": "Maximum amount 5000 USDT"}),
        ({"amount": "0.1", "is_subtract": False},
         {"state": 1, "message": "The withdrawal amount is too small"}),
        ({"currency": "XYZ"}, {"state": 1, "message": "The currency was not found"}),
        ({"network": "eth"}, {"state": 1, "message": "The service was not found"}),
        ({"currency": "USD"}, {"state": 1, "message": "Not found service to_currency"}),
        ({"amount": None}, {"state": 1, "errors": {"amount": ["validation.required"]}}),
        ({"is_subtract": "maybe"}, {"state": 1, "errors": {"is_subtract": ["validation.boolean"]}}),
        ({"priority": "fastest"}, {"state": 1, "errors": {"priority": ["validation.in"]}}),
        ({"from_currency": "BTC"}, {"state": 1, "errors": {"from_currency": ["validation.in"]}}),
    ],
)  # fmt: skip
async def test_refused_payouts_reserve_nothing(api, context, change, expected):
    await fund(api, context)
    response = await payout(api, **change)
    assert (response.status_code, response.json()) == (422, expected)
    assert await payout_rows(context) == []
    assert await balance(context, api.merchant.merchant_id) == Decimal("99")
    assert await reserve_of(context, api.merchant.merchant_id) == 0


async def test_only_the_payout_key_moves_money(api, context):
    await fund(api, context)
    body = {"amount": "10", "currency": "USDT", "network": "devnet", "order_id": "k",
            "address": DESTINATION, "is_subtract": True}  # fmt: skip
    with_payment_key = await api.post("/v1/payout", body)
    assert (with_payment_key.status_code, with_payment_key.json()) == (
        401, {"state": 1, "message": "Invalid Sign."}
    )  # fmt: skip
    # Reading is allowed with either key (some clients sign it with the payment key).
    assert await api.result("/v1/payout/list") is not None
    assert await payout_rows(context) == []


async def test_blocked_or_held_payouts_are_forbidden(api, context):
    await fund(api, context)
    async with context.db.transaction() as session:
        merchant = await session.get_one(Merchant, api.merchant.merchant_id)
        merchant.payouts_held_until = utcnow().replace(year=utcnow().year + 1)
    held = await payout(api)
    assert held.json() == {"state": 1, "message": "You are forbidden"}
    assert await payout_rows(context) == []


async def test_fiat_amount_is_converted_to_the_coin(api, context):
    await fund(api, context)
    created = (await payout(api, amount="20", currency="USD", to_currency="USDT")).json()["result"]
    # USDT/USD is pegged at 1 by default: 20 USDT sent, 0.5 % + 0.1 = 0.2 fee.
    assert (created["amount"], created["currency"]) == ("20.00", "USD")
    assert (created["payer_currency"], created["payer_amount"], created["balance"]) == (
        "USDT", 20, 78.8
    )  # fmt: skip


async def test_payout_above_the_threshold_waits_for_approval(api, context, tmp_path):
    context.payouts.approval_usd = Decimal("15")
    await fund(api, context)
    small = (await payout(api, order_id="small", amount="10")).json()["result"]
    large = (await payout(api, order_id="large", amount="20")).json()["result"]
    rejected = (await payout(api, order_id="rejected", amount="30")).json()["result"]
    assert (small["status"], large["status"], rejected["status"]) == ("process", "check", "check")
    await run_payouts(context)
    assert await devnet_received(context) == [Decimal("10")]  # only the small one left

    async with context.db.transaction() as session:
        await context.payouts.approve(session, uuid_of(large), "ops")
        await context.payouts.reject(session, uuid_of(rejected), "ops")
    await run_payouts(context)
    assert sorted(await devnet_received(context)) == [Decimal("10"), Decimal("20")]
    await mine(context)
    await run_payouts(context)
    statuses = {p.order_id: p.status for p in await payout_rows(context)}
    assert statuses == {"small": "paid", "large": "paid", "rejected": "cancel"}
    # 99 - 10.15 - 20.2; the rejected 30.25 came back.
    assert await balance(context, api.merchant.merchant_id) == Decimal("68.65")
    async with context.db.reader() as session:
        events = await session.scalars(
            select(WebhookEvent.payload).where(WebhookEvent.topic == "payout.status")
        )
        rejected_events = [e["status"] for e in events if e["order_id"] == "rejected"]
    assert rejected_events == ["check", "cancel"]


async def test_allowlist_limits_destinations(api, context):
    await fund(api, context)
    async with context.db.transaction() as session:
        merchant = await session.get_one(Merchant, api.merchant.merchant_id)
        merchant.payout_allowlist = True
    refused = await payout(api)
    assert refused.json() == {
        "state": 1, "message": "The address is not on the merchant's payout allowlist"
    }  # fmt: skip
    async with context.db.transaction() as session:
        await context.payouts.allow(session, api.merchant.merchant_id, "devnet", DESTINATION)
    assert (await payout(api)).json()["result"]["status"] == "process"


async def test_history_and_services(api, context):
    await fund(api, context)
    for n in range(17):
        assert (await payout(api, order_id=f"h{n}", amount="1")).status_code == 200
    key = api.merchant.payout_key
    response = await api.post("/v1/payout/list", key=key)
    page = response.json()["result"]
    assert page["merchant_uuid"] == str(api.merchant.merchant_id)
    assert len(page["items"]) == 15 and page["paginate"]["hasPages"]
    item = page["items"][0]
    assert list(item) == ["uuid", "amount", "currency", "network", "address", "txid", "order_id",
                          "payment_status", "status", "is_final", "balance", "created_at",
                          "updated_at"]  # fmt: skip
    # Each costs 1 + 0.005 + 0.1: 99 - 17 × 1.105.
    assert (item["order_id"], item["payment_status"], item["balance"]) == (
        "h16", None, "80.21500000"
    )  # fmt: skip
    rest = await api.result("/v1/payout/list", key=key,
                            params={"cursor": page["paginate"]["nextCursor"]})  # fmt: skip
    assert [i["order_id"] for i in rest["items"]] == ["h1", "h0"]

    services = await api.result("/v1/payout/services", key=key)
    [usdt] = [s for s in services if (s["network"], s["currency"]) == ("DEVNET", "USDT")]
    assert usdt["limit"] == {"min_amount": "1.00000000", "max_amount": "5000.00000000"}
    assert usdt["commission"] == {"fee_amount": "0.10000000", "percent": "0.50"}


async def test_failed_send_gives_the_money_back(api, context):
    """A transfer the chain refuses for good: the payout fails and its reserve returns."""
    await fund(api, context)
    created = (await payout(api)).json()["result"]
    async with context.db.transaction() as session:  # the coin left the devnet meanwhile
        row = await session.scalar(select(Payout).where(Payout.uuid == uuid_of(created)))
        row.payer_currency = "DOGE"
    await run_payouts(context)
    [row] = await payout_rows(context)
    assert (row.status, row.stage, row.fail_reason) == ("system_fail", "failed", "address_error")
    assert await balance(context, api.merchant.merchant_id) == Decimal("99")
    assert await reserve_of(context, api.merchant.merchant_id) == 0
    async with context.db.reader() as session:
        kinds = list(await session.scalars(
            select(JournalTransaction.kind).order_by(JournalTransaction.id)
        ))  # fmt: skip
        count = await session.scalar(select(func.count()).select_from(DevnetTransaction))
    assert kinds == ["deposit", "payout_reserve", "payout_release"]
    assert count == 1  # only the funding deposit


def uuid_of(result: dict):
    import uuid

    return uuid.UUID(result["uuid"])


async def test_a_coin_paid_from_the_usdt_balance(api, context):
    """`from_currency: USDT`: ETH sent, its price and fee taken from the USDT balance; the
    platform's exchange desk takes the USDT and gives the ETH."""
    await fund(api, context)
    response = await payout(api, amount="0.01", currency="ETH", from_currency="USDT")
    created = response.json()["result"]
    # 0.01 ETH + the devnet ETH fee 0.0001 = 0.0101 ETH at 2000 USDT: 20.2 USDT.
    assert (created["payer_currency"], created["payer_amount"], created["balance"]) == (
        "ETH", 0.01, 78.8
    )  # fmt: skip
    poor = await payout(api, order_id="poor", amount="1", currency="ETH", from_currency="USDT")
    assert poor.json() == {"state": 1, "message": "Not enough balance for convert USDT to ETH"}
    await run_payouts(context)
    await mine(context)
    await run_payouts(context)
    [row] = await payout_rows(context)
    assert row.status == "paid"
    desk = {
        currency: await account_balance(context, AccountKind.EXCHANGE, currency, network="devnet")
        for currency in ("USDT", "ETH")
    }
    assert desk == {"USDT": Decimal("20.2"), "ETH": Decimal("-0.0101")}  # took USDT, gave ETH
    assert await account_balance(context, AccountKind.PLATFORM_COMMISSION, "ETH",
                                 network="devnet") == Decimal("0.0001")  # fmt: skip
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def test_ledger_check_finds_a_reserve_that_open_payouts_do_not_explain(api, context):
    await fund(api, context)
    await payout(api)
    async with context.db.reader() as session:
        assert (await check_ledger(session)).ok
    async with context.db.transaction() as session:  # marked done, never settled
        row = await session.scalar(select(Payout))
        row.stage = "done"
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert [v.rule for v in report.violations] == ["payout reserve"]
    assert "holds 10.15" in report.violations[0].detail


async def test_concurrent_payouts_from_one_balance(api, context):
    """Many payouts at once from one balance: each reserved exactly once, none refused by a
    deadlock between the row that references the balance and the balance's lock."""
    await fund(api, context)
    import asyncio

    responses = await asyncio.gather(
        *(payout(api, order_id=f"c{n}", amount="1") for n in range(24))
    )
    assert [r.status_code for r in responses] == [200] * 24
    # 24 × (1 + 0.005 + 0.1) from 99.
    assert await balance(context, api.merchant.merchant_id) == Decimal("72.48")
    assert await reserve_of(context, api.merchant.merchant_id) == Decimal("26.52")
    balances = sorted(Decimal(str(r.json()["result"]["balance"])) for r in responses)
    assert balances == [Decimal("72.48") + Decimal("1.105") * n for n in range(24)]
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations
