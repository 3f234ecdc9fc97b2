"""Litecoin through the Cryptomus dialect, against a real node in regtest: an invoice paid
and announced by a signed webhook, then a payout sent by the payout worker from the hot
wallet, mined and confirmed, with the ledger balanced at every step."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook

from paydesk.chains.utxo_sender import UtxoPayoutSender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.ledger.check import check_ledger
from paydesk.payouts.worker import PayoutWorker
from tests.devnet import deliver_webhooks
from tests.evm import chain_watcher, follow, hot_wallet_of
from tests.litecoin import REGTEST_CATALOGUE, Litecoind, litecoind

#: Each test starts a real node: seconds each.
pytestmark = pytest.mark.slow

CONFIRMATIONS = 3


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Litecoind]:
    with litecoind(tmp_path / "litecoind") as started:
        yield started


@pytest.fixture
def settings_overrides(node: Litecoind, tmp_path: Path) -> dict[str, Any]:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(REGTEST_CATALOGUE)
    return {
        "networks": ["ltc"],
        "chain_nodes": {"ltc": node.url},
        "catalogue_file": catalogue,
        "callback_allowlist": ["127.0.0.0/8"],
    }


@pytest.fixture
async def watcher(context: Context) -> AsyncIterator[Watcher]:
    async with chain_watcher(context, "ltc") as watching:
        yield watching


@pytest.fixture
async def hot_wallet(context: Context) -> AsyncIterator[UtxoPayoutSender]:
    async with hot_wallet_of(context, "ltc") as sender:
        assert isinstance(sender, UtxoPayoutSender)
        yield sender


async def ledger_ok(context: Context) -> None:
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def test_an_ltc_invoice_paid_announced_and_a_payout_sent(
    node, context, api, merchant, receiver, watcher, hot_wallet
):
    invoice = await api.result("/v1/payment", {
        "amount": "0.5", "currency": "LTC", "network": "ltc", "order_id": "ltc-1",
        "url_callback": receiver.url,
    })  # fmt: skip
    assert invoice["address"].startswith("rltc1") and invoice["payer_currency"] == "LTC"
    txid = node.send(invoice["address"], invoice["payer_amount"])
    await follow(watcher)
    node.mine(CONFIRMATIONS)
    await follow(watcher)
    info = await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})
    assert (info["payment_status"], info["txid"]) == ("paid", txid)
    assert await deliver_webhooks(context) >= 2
    # Signed with the payment key, as the real gateway's SDK checks them.
    bodies = [process_payment_webhook(d.body, merchant.payment_key) for d in receiver.received]
    assert [body.status for body in bodies] == ["confirm_check", "paid"]
    assert bodies[-1].txid == txid
    await ledger_ok(context)

    # The operator funds the hot wallet (deposits stay on their own addresses).
    await hot_wallet.balance("LTC")
    node.send(hot_wallet.hot_address, "1")
    node.mine(1)
    payee = node.rpc("getnewaddress", "", "bech32")
    payout = await api.result("/v1/payout", {
        "amount": "0.2", "currency": "LTC", "network": "ltc", "order_id": "p-1",
        "address": payee, "is_subtract": "1", "url_callback": receiver.url,
    }, key=merchant.payout_key)  # fmt: skip
    assert payout["status"] == "process"

    worker = PayoutWorker(context, context.catalogue.network("ltc"), hot_wallet, owner="tests")
    assert (await worker.step()).busy  # signed and broadcast
    node.mine(CONFIRMATIONS)
    for _ in range(10):
        if not (await worker.step()).busy:
            break
    done = await api.result("/v1/payout/info", {"uuid": payout["uuid"]},
                            key=merchant.payout_key)  # fmt: skip
    assert done["status"] == "paid", done
    # A JSON number, as documented (the test client reads it as a float).
    assert node.rpc("getreceivedbyaddress", payee) == Decimal(str(done["payer_amount"]))
    await deliver_webhooks(context)
    assert json.loads(receiver.received[-1].body)["status"] == "paid"
    await ledger_ok(context)
