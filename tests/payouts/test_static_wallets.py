"""Static wallets on the devnet through the Cryptomus API: every deposit credited once and
announced, blocking, holding and refunding."""

from __future__ import annotations

import base64
import io
import json
from decimal import Decimal

import zxingcpp
from PIL import Image
from pyCryptomusAPI.webhooks import process_payment_webhook
from sqlalchemy import select

from paydesk.chains.devnet import FAUCET_ADDRESS
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind
from paydesk.payouts.models import Payout
from paydesk.webhooks.models import WebhookEvent
from tests.devnet import deliver_webhooks, mine, run_payouts
from tests.payouts.conftest import DESTINATION, account_balance, balance, send


async def new_wallet(api, receiver=None, order_id="customer-1", **extra):
    body = {"currency": "USDT", "network": "devnet", "order_id": order_id}
    if receiver is not None:
        body["url_callback"] = receiver.url
    return await api.result("/v1/wallet", {**body, **extra})


async def wallet_events(context) -> list[dict]:
    async with context.db.reader() as session:
        events = await session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.topic == "wallet.payment")
            .order_by(WebhookEvent.id)
        )
        return [event.payload for event in events]


async def test_create_returns_a_permanent_address_per_order_id(api, context):
    wallet = await new_wallet(api)
    assert list(wallet) == ["wallet_uuid", "uuid", "address", "network", "currency", "url"]
    assert (wallet["network"], wallet["currency"]) == ("devnet", "USDT")
    assert wallet["address"].startswith("pdev1")
    assert wallet["url"].endswith(f"/wallet/{wallet['uuid']}")
    assert await new_wallet(api) == wallet  # the same order_id: the same wallet
    other = await new_wallet(api, order_id="customer-2")
    assert other["address"] != wallet["address"] and other["uuid"] != wallet["uuid"]
    # One balance per coin: both wallets credit the same one.
    assert other["wallet_uuid"] == wallet["wallet_uuid"]


async def test_create_refuses_bad_input_with_the_dialect_errors(api, context):
    response = await api.post("/v1/wallet", {"network": "devnet", "order_id": "x"})
    assert (response.status_code, response.json()) == (
        422, {"state": 1, "errors": {"currency": ["validation.required"]}}
    )  # fmt: skip
    long = await api.post("/v1/wallet", {"currency": "USDT", "network": "devnet",
                                         "order_id": "x" * 101})  # fmt: skip
    assert long.json()["errors"] == {"order_id": ["validation.max.string"]}
    missing = await api.post("/v1/wallet", {"currency": "DOGE", "network": "devnet",
                                            "order_id": "x"})  # fmt: skip
    assert missing.json() == {"state": 1, "message": "The service was not found"}
    await api.result("/v1/payment", {"amount": "5", "currency": "USDT", "network": "devnet",
                                     "order_id": "shared"})  # fmt: skip
    taken = await api.post("/v1/wallet", {"currency": "USDT", "network": "devnet",
                                          "order_id": "shared"})  # fmt: skip
    assert taken.json() == {"state": 1, "message": "The order_id is already used by an invoice"}
    wrong_key = await api.post(
        "/v1/wallet", {"currency": "USDT", "network": "devnet", "order_id": "k"},
        key="not-the-key",
    )  # fmt: skip
    assert wrong_key.status_code == 401


async def test_every_deposit_is_credited_once_and_announced(api, context, merchant, receiver):
    wallet = await new_wallet(api, receiver)
    first = await send(context, wallet["address"], "10")
    second = await send(context, wallet["address"], "0.000001")  # any amount counts
    seen = await wallet_events(context)
    assert [(e["status"], e["is_final"]) for e in seen] == [("confirm_check", False)] * 2
    assert await balance(context, merchant.merchant_id) == 0
    await mine(context)
    third = await send(context, wallet["address"], "25.5")
    await mine(context)
    await mine(context)  # mined again: nothing is credited twice

    events = [e for e in await wallet_events(context) if e["status"] == "paid"]
    assert [e["txid"] for e in events] == [first, second, third]
    # 1 % commission, rounded half up to the coin's 6 decimals (0.00000001 → 0).
    amounts = [
        tuple(Decimal(e[field]) for field in ("payment_amount", "commission", "merchant_amount"))
        for e in events
    ]
    assert amounts == [
        (Decimal("10"), Decimal("0.1"), Decimal("9.9")),
        (Decimal("0.000001"), 0, Decimal("0.000001")),
        (Decimal("25.5"), Decimal("0.255"), Decimal("25.245")),
    ]
    assert {e["wallet_address_uuid"] for e in events} == {wallet["uuid"]}
    assert {e["order_id"] for e in events} == {"customer-1"}
    assert await balance(context, merchant.merchant_id) == Decimal("35.145001")
    async with context.db.reader() as session:  # `wallet_uuid` names the balance credited
        credited = await ledger.find_account(
            session, AccountKind.MERCHANT_BUSINESS, "USDT", owner=merchant.merchant_id,
            network="devnet",
        )  # fmt: skip
    assert str(credited.uuid) == wallet["wallet_uuid"]

    await deliver_webhooks(context)
    bodies = [json.loads(r.body) for r in receiver.received]
    per_deposit: dict[str, list[str]] = {}
    for body in bodies:  # in order for each deposit (deposits are independent)
        per_deposit.setdefault(body["txid"], []).append(body["status"])
    assert per_deposit == {txid: ["confirm_check", "paid"] for txid in (first, second, third)}
    for received in receiver.received:  # a real client verifies each one
        verified = process_payment_webhook(received.body, merchant.payment_key)
        assert verified.type == "wallet"
    [paid] = [b for b in bodies if b["txid"] == first and b["status"] == "paid"]
    assert list(paid)[:3] == ["type", "uuid", "order_id"] and list(paid)[-1] == "sign"
    assert (paid["type"], paid["amount"], paid["merchant_amount"], paid["from"]) == (
        "wallet", "10.00000000", "9.90000000", FAUCET_ADDRESS
    )  # fmt: skip
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def test_a_reorganisation_takes_a_credited_deposit_back(api, context, merchant):
    wallet = await new_wallet(api)
    await mine(context)  # the genesis block, which a reorganisation keeps
    await send(context, wallet["address"], "10")
    await mine(context)
    assert await balance(context, merchant.merchant_id) == Decimal("9.9")
    async with context.db.transaction() as session:
        await context.devnet.reorganize(session, 1, drop=True)
    await mine(context, 0)
    assert await balance(context, merchant.merchant_id) == 0
    assert [e["status"] for e in await wallet_events(context)] == [
        "confirm_check", "paid", "cancel"
    ]  # fmt: skip


async def test_qr_code_carries_the_address(api, context):
    wallet = await new_wallet(api)
    qr = await api.result("/v1/wallet/qr", {"wallet_address_uuid": wallet["uuid"]})
    png = base64.b64decode(qr["image"].removeprefix("data:image/png;base64,"))
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert decoded.text == f"devnet:{wallet['address']}?currency=USDT"
    unknown = await api.post(
        "/v1/wallet/qr", {"wallet_address_uuid": "00000000-0000-4000-8000-000000000000"}
    )
    assert unknown.json() == {"state": 1, "message": "Not found"}
    bad = await api.post("/v1/wallet/qr", {"wallet_address_uuid": "nope"})
    assert bad.json()["errors"] == {"wallet_address_uuid": ["validation.uuid"]}


async def test_blocked_wallet_holds_deposits_and_refunds_them_once(api, context, merchant):
    wallet = await new_wallet(api)
    await send(context, wallet["address"], "10")
    await mine(context)
    missing = await api.post("/v1/wallet/block-address", {})
    assert missing.json()["errors"] == {
        "uuid": ["validation.required_without"], "order_id": ["validation.required_without"]
    }  # fmt: skip
    not_blocked = await api.post(
        "/v1/wallet/blocked-address-refund", {"uuid": wallet["uuid"], "address": DESTINATION}
    )
    assert not_blocked.json() == {"state": 1, "message": "You are forbidden"}
    blocked = await api.result("/v1/wallet/block-address", {"order_id": "customer-1"})
    assert blocked == {"uuid": wallet["uuid"], "status": "blocked"}
    nothing = await api.post(
        "/v1/wallet/blocked-address-refund", {"uuid": wallet["uuid"], "address": DESTINATION}
    )
    assert nothing.json() == {"state": 1, "message": "Nothing to withdraw"}

    await send(context, wallet["address"], "20")
    await send(context, wallet["address"], "5")
    await mine(context)
    # Not credited to the merchant, not announced: held apart for the wallet.
    assert await balance(context, merchant.merchant_id) == Decimal("9.9")
    assert [e["status"] for e in await wallet_events(context)] == ["confirm_check", "paid"]
    assert await account_balance(context, AccountKind.HELD_DEPOSITS, owner=wallet["uuid"],
                                 network="devnet") == 25  # fmt: skip

    refund = await api.result(
        "/v1/wallet/blocked-address-refund", {"order_id": "customer-1", "address": DESTINATION}
    )
    # 0.5 % of 25 plus 0.1: 0.225, taken from what is sent.
    assert refund == {"commission": "0.22500000", "amount": "24.77500000"}
    again = {"uuid": wallet["uuid"], "address": DESTINATION}
    pending = await api.post("/v1/wallet/blocked-address-refund", again)
    assert pending.json() == {"state": 1, "message": "Refund is in process"}

    await run_payouts(context)
    await mine(context)
    await run_payouts(context)
    done = await api.post("/v1/wallet/blocked-address-refund", again)
    assert done.json() == {"state": 1, "message": "You can withdraw only once"}
    async with context.db.reader() as session:
        [payout] = await session.scalars(select(Payout))
    assert (payout.status, payout.purpose, payout.address) == ("paid", "wallet_refund", DESTINATION)
    assert await received_on_devnet(context, DESTINATION) == [Decimal("24.775")]
    assert await account_balance(context, AccountKind.HELD_DEPOSITS, owner=wallet["uuid"],
                                 network="devnet") == 0  # fmt: skip
    assert await balance(context, merchant.merchant_id) == Decimal("9.9")
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def test_force_refund_sends_each_deposit_back_to_its_sender(api, context, merchant):
    wallet = await new_wallet(api)
    await api.result("/v1/wallet/block-address", {"uuid": wallet["uuid"], "is_force_refund": "1"})
    customer = DESTINATION
    await send(context, wallet["address"], "7", sender=customer)
    await mine(context)
    await run_payouts(context)
    await mine(context)
    await run_payouts(context)
    # 7 less 0.5 % and 0.1: 6.865 back where it came from.
    assert await received_on_devnet(context, customer) == [Decimal("6.865")]
    assert await balance(context, merchant.merchant_id) == 0
    refused = await api.post(
        "/v1/wallet/blocked-address-refund", {"uuid": wallet["uuid"], "address": DESTINATION}
    )
    assert refused.json() == {"state": 1, "message": "You can withdraw only once"}


async def received_on_devnet(context, address: str) -> list[Decimal]:
    from paydesk.chains.models import DevnetTransaction

    async with context.db.reader() as session:
        return list(
            await session.scalars(
                select(DevnetTransaction.amount)
                .where(DevnetTransaction.to_address == address)
                .order_by(DevnetTransaction.id)
            )
        )


async def test_wallet_page_shows_the_address_in_the_payers_language(api, context, http):
    wallet = await new_wallet(api)
    path = wallet["url"].split("://", 1)[1].split("/", 1)[1]
    page = await http.get(f"/{path}", params={"lang": "fr"})
    assert page.status_code == 200
    assert "Votre adresse de dépôt USDT" in page.text
    assert wallet["address"] in page.text and "<svg" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    await api.result("/v1/wallet/block-address", {"uuid": wallet["uuid"]})
    blocked = await http.get(f"/{path}", params={"lang": "en"})
    assert "no longer in use" in blocked.text and "<svg" not in blocked.text
    for unknown in ("/wallet/00000000-0000-4000-8000-000000000000", "/wallet/nope"):
        missing = await http.get(unknown, params={"lang": "en"})
        assert (missing.status_code, "Deposit address not found" in missing.text) == (404, True)


async def test_a_refund_leaves_nothing_the_chain_could_send(api, context):
    """ETH has 18 decimals on chain, 8 in the API: the refund still takes every wei."""
    wallet = await new_wallet(api, order_id="eth-customer", currency="ETH")
    await api.result("/v1/wallet/block-address", {"uuid": wallet["uuid"]})
    await send(context, wallet["address"], "0.123456789012345678", currency="ETH")
    await mine(context)
    refund = await api.result(
        "/v1/wallet/blocked-address-refund", {"uuid": wallet["uuid"], "address": DESTINATION}
    )
    assert refund["commission"] == "0.00010000"  # the devnet ETH payout fee
    await run_payouts(context)
    assert await received_on_devnet(context, DESTINATION) == [Decimal("0.123356789012345678")]
    assert await account_balance(context, AccountKind.HELD_DEPOSITS, "ETH", owner=wallet["uuid"],
                                 network="devnet") == 0  # fmt: skip
