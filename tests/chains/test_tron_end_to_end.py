"""USDT on TRON through the Cryptomus dialect, against the TRON HTTP API served on
127.0.0.1 (no TRON node runs here): an invoice paid by a TRC-20 transfer and announced by
signed webhooks, then a USDT payout signed offline by the payout worker, mined and
confirmed, with the ledger balanced."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook
from tronpy.keys import PrivateKey

from paydesk.chains.tron_sender import TronPayoutSender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.ledger.check import check_ledger
from paydesk.payouts.worker import PayoutWorker
from tests.devnet import deliver_webhooks
from tests.evm import chain_watcher, follow, hot_wallet_of
from tests.tron_api import USDT, TronApi, key_address

CONFIRMATIONS = 3
TRX = 10**6


@pytest.fixture
def node() -> Iterator[TronApi]:
    with TronApi() as api:
        yield api


@pytest.fixture
def settings_overrides(node: TronApi, tmp_path: Path) -> dict[str, Any]:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(f"[networks.tron]\nconfirmations = {CONFIRMATIONS}\n")
    return {
        "networks": ["tron"],
        "chain_nodes": {"tron": node.url},
        "catalogue_file": catalogue,
        "callback_allowlist": ["127.0.0.0/8"],
    }


@pytest.fixture
async def watcher(context: Context) -> AsyncIterator[Watcher]:
    async with chain_watcher(context, "tron") as watching:
        yield watching


@pytest.fixture
async def hot_wallet(context: Context) -> AsyncIterator[TronPayoutSender]:
    async with hot_wallet_of(context, "tron") as sender:
        assert isinstance(sender, TronPayoutSender)
        yield sender


async def test_usdt_on_tron_paid_announced_and_paid_out(
    node, context, api, merchant, receiver, watcher, hot_wallet
):
    invoice = await api.result("/v1/payment", {
        "amount": "25", "currency": "USDT", "network": "tron", "order_id": "trc-1",
        "url_callback": receiver.url,
    })  # fmt: skip
    assert invoice["address"].startswith("T")
    payer = PrivateKey.random()
    node.chain.fund(key_address(payer), 100 * TRX)
    node.chain.mint(USDT, key_address(payer), 1_000 * TRX)
    units = int(Decimal(invoice["payer_amount"]) * 10**6)
    answer = node.chain.submit(node.chain.token_transfer_tx(payer, USDT, invoice["address"], units))
    assert answer.get("result") is True, answer
    await follow(watcher)
    node.chain.mine(CONFIRMATIONS)
    await follow(watcher)
    info = await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})
    assert info["payment_status"] == "paid", info
    await deliver_webhooks(context)
    bodies = [process_payment_webhook(d.body, merchant.payment_key) for d in receiver.received]
    assert bodies[-1].status == "paid" and bodies[-1].network == "tron"

    # The hot wallet, funded by the operator (TRX for the energy, USDT to pay out).
    node.chain.fund(hot_wallet.hot_address, 200 * TRX)
    node.chain.mint(USDT, hot_wallet.hot_address, 100 * TRX)
    payee = key_address(PrivateKey.random())
    payout = await api.result("/v1/payout", {
        "amount": "10", "currency": "USDT", "network": "tron", "order_id": "tp-1",
        "address": payee, "is_subtract": "1", "url_callback": receiver.url,
    }, key=merchant.payout_key)  # fmt: skip
    worker = PayoutWorker(context, context.catalogue.network("tron"), hot_wallet, owner="tests")
    assert (await worker.step()).busy
    node.chain.mine(CONFIRMATIONS)
    for _ in range(10):
        if not (await worker.step()).busy:
            break
    done = await api.result("/v1/payout/info", {"uuid": payout["uuid"]},
                            key=merchant.payout_key)  # fmt: skip
    assert done["status"] == "paid", done
    sent = Decimal(str(done["payer_amount"]))
    assert node.chain.token_balance(USDT, payee) == int(sent * 10**6)
    await deliver_webhooks(context)
    assert json.loads(receiver.received[-1].body)["status"] == "paid"
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations
