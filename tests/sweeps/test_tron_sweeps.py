"""Sweeps on TRON against the TRON HTTP API served on 127.0.0.1 (tests/tron_api.py): an
invoice paid in USDT (TRC-20) on its own address, then the hot wallet sends the address
the TRX its transfer burns in energy and bandwidth, and the address sends the tokens to
the hot wallet; what the chain burned for both is booked as the platform's fee."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tronpy.keys import PrivateKey

from paydesk.chains.registry import build_adapter, build_sender
from paydesk.chains.tron_sender import TronPayoutSender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.deposits.models import Deposit
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind
from paydesk.sweeps.models import Sweep
from paydesk.sweeps.worker import SweepStep, SweepWorker
from tests.evm import follow
from tests.tron_api import (
    CHAIN_PARAMETERS,
    ENERGY_TO_NEW_HOLDER,
    USDT,
    TronApi,
    key_address,
)

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
        # TRX's dollar value decides whether a TRX deposit is worth sweeping.
        "static_rates": {"TRX/USD": Decimal("0.25")},
    }


@pytest.fixture
async def watcher(context: Context) -> AsyncIterator[Watcher]:
    network = context.catalogue.network("tron")
    assert network is not None
    adapter = build_adapter(network, context.catalogue, context.settings, context.db)
    watching = Watcher(context, network, adapter, owner="test")
    await follow(watching)
    yield watching
    await adapter.close()


@pytest.fixture
async def hot_wallet(context: Context) -> AsyncIterator[TronPayoutSender]:
    async with context.db.transaction() as session:
        await context.addresses.keys.load(session)
    network = context.catalogue.network("tron")
    assert network is not None
    sender = build_sender(network, context.catalogue, context.settings, context.db,
                          context.addresses.keys)  # fmt: skip
    assert isinstance(sender, TronPayoutSender)
    yield sender
    await sender.close()


async def confirm(node: TronApi, watcher: Watcher) -> None:
    node.chain.mine(CONFIRMATIONS)
    await follow(watcher)


def receipt_fee(node: TronApi, txid: str) -> Decimal:
    """What the chain burned for a transaction (its receipt's fee, in TRX)."""
    found = node.chain._find(txid)
    assert found is not None, txid
    return Decimal(int(found[2].get("fee", 0))).scaleb(-6)


async def platform_balance(context: Context, kind: AccountKind, network: str = "") -> Decimal:
    async with context.db.reader() as session:
        account = await ledger.find_account(session, kind, "TRX", network=network)
        return await ledger.balance(session, account) if account else Decimal(0)


async def test_a_trc20_deposit_is_swept_with_trx_sent_for_its_energy(
    node, context, api, merchant, watcher, hot_wallet
):
    invoice = await api.result("/v1/payment", {
        "amount": "25", "currency": "USDT", "network": "tron", "order_id": "trc-sweep",
    })  # fmt: skip
    address = invoice["address"]
    payer = PrivateKey.random()
    node.chain.fund(key_address(payer), 100 * TRX)
    node.chain.mint(USDT, key_address(payer), 1_000 * TRX)
    paid_units = int(Decimal(invoice["payer_amount"]).scaleb(6))
    sent = node.chain.submit(node.chain.token_transfer_tx(payer, USDT, address, paid_units))
    assert sent.get("result") is True, sent
    await follow(watcher)
    await confirm(node, watcher)
    info = await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})
    assert info["payment_status"] == "paid", info
    assert node.chain.sun(address) == 0  # tokens, and no TRX to move them with

    hot = hot_wallet.hot_address
    node.chain.fund(hot, 200 * TRX)
    network = context.catalogue.network("tron")
    assert network is not None
    sweeper = SweepWorker(context, network, hot_wallet, owner="tests", discover_every=0)

    first = await sweeper.step()
    assert (first.found, first.funded) == (1, 1)
    [sweep] = await _sweeps(context)
    assert (sweep.stage, sweep.native) == ("funding", "TRX")
    # The energy the transfer simulates to (the hot wallet holds no USDT yet: a new
    # holder's storage) plus 20 %, at the chain's price, and its bandwidth: the address
    # has no account, so no free bandwidth to count on.
    energy = -(-ENERGY_TO_NEW_HOLDER * 6 // 5)
    burn = energy * CHAIN_PARAMETERS["getEnergyFee"] + 400 * CHAIN_PARAMETERS["getTransactionFee"]
    assert sweep.funding_amount == Decimal(burn).scaleb(-6)
    assert node.chain.sun(address) == burn

    await confirm(node, watcher)  # the top-up is seen by the watcher: not a payment
    assert (await sweeper.step()).signed == 1
    await confirm(node, watcher)
    assert (await sweeper.step()).done == 1

    [done] = await _sweeps(context)
    assert (done.stage, done.amount, done.to_address) == (
        "done", Decimal(invoice["payer_amount"]), hot
    )  # fmt: skip
    assert node.chain.token_balance(USDT, address) == 0
    assert node.chain.token_balance(USDT, hot) == paid_units
    assert done.funding_txid is not None and done.txid is not None
    # The top-up created the address's account (the hot wallet paid for that); the
    # transfer burned its energy, its bandwidth was the new account's free allowance.
    top_up_fee, transfer_fee = receipt_fee(node, done.funding_txid), receipt_fee(node, done.txid)
    create_fee = (
        CHAIN_PARAMETERS["getCreateAccountFee"]
        + CHAIN_PARAMETERS["getCreateNewAccountFeeInSystemContract"]
    )
    assert top_up_fee == Decimal(create_fee).scaleb(-6)
    assert transfer_fee == Decimal(ENERGY_TO_NEW_HOLDER * CHAIN_PARAMETERS["getEnergyFee"]).scaleb(
        -6
    )
    assert (done.funding_fee, done.transfer_fee) == (top_up_fee, transfer_fee)
    assert await platform_balance(context, AccountKind.NETWORK_FEE_EXPENSE) == (
        top_up_fee + transfer_fee
    )
    assert await platform_balance(context, AccountKind.ONCHAIN_HOLDINGS, "tron") == -(
        top_up_fee + transfer_fee
    )
    assert Decimal(node.chain.sun(address)).scaleb(-6) == done.funded - transfer_fee
    async with context.db.reader() as session:
        deposits = list(await session.scalars(select(Deposit)))
        report = await check_ledger(session)
    assert [d.currency for d in deposits] == ["USDT"]
    assert report.ok, report.violations
    assert await sweeper.step() == SweepStep()


async def test_a_trx_deposit_is_swept_paying_its_own_bandwidth(
    node, context, api, merchant, watcher, hot_wallet
):
    """The coin itself: no top-up. The payer's transfer created the address's account, so
    its free daily bandwidth carries the sweep, which sends every sun and burns none."""
    invoice = await api.result("/v1/payment", {
        "amount": "100", "currency": "TRX", "network": "tron", "order_id": "trx-sweep",
    })  # fmt: skip
    address = invoice["address"]
    payer = PrivateKey.random()
    node.chain.fund(key_address(payer), 1_000 * TRX)
    paid = int(Decimal(invoice["payer_amount"]).scaleb(6))
    sent = node.chain.submit(node.chain.transfer_tx(payer, address, paid))
    assert sent.get("result") is True, sent
    await follow(watcher)
    await confirm(node, watcher)
    hot = hot_wallet.hot_address
    node.chain.fund(hot, 10 * TRX)  # the hot wallet's account exists
    network = context.catalogue.network("tron")
    assert network is not None
    sweeper = SweepWorker(context, network, hot_wallet, owner="tests", discover_every=0)

    first = await sweeper.step()
    assert (first.found, first.funded, first.signed) == (1, 0, 1)
    await confirm(node, watcher)
    assert (await sweeper.step()).done == 1
    [done] = await _sweeps(context)
    assert (done.currency, done.amount, done.funded) == ("TRX", Decimal(paid).scaleb(-6), 0)
    assert done.txid is not None and receipt_fee(node, done.txid) == 0 == done.transfer_fee
    assert node.chain.sun(address) == 0
    assert node.chain.sun(hot) == 10 * TRX + paid
    async with context.db.reader() as session:
        deposits = list(await session.scalars(select(Deposit)))
        report = await check_ledger(session)
    assert [(d.currency, d.status) for d in deposits] == [("TRX", "credited")]
    assert report.ok, report.violations

    # Once the day's free bandwidth is spent, the next sweep keeps back what its bytes
    # burn, and the chain burns exactly that.
    again = await api.result("/v1/payment", {
        "amount": "100", "currency": "TRX", "network": "tron", "order_id": "trx-sweep-2",
    })  # fmt: skip
    node.chain.spend_free_bandwidth(again["address"])
    second_paid = int(Decimal(again["payer_amount"]).scaleb(6))
    node.chain.submit(node.chain.transfer_tx(payer, again["address"], second_paid))
    await follow(watcher)
    await confirm(node, watcher)
    assert (await sweeper.step()).signed == 1
    await confirm(node, watcher)
    assert (await sweeper.step()).done == 1
    second = (await _sweeps(context))[-1]
    burn = 300 * CHAIN_PARAMETERS["getTransactionFee"]
    assert second.amount == Decimal(second_paid - burn).scaleb(-6)
    assert second.txid is not None and receipt_fee(node, second.txid) <= Decimal(burn).scaleb(-6)
    assert second.transfer_fee == receipt_fee(node, second.txid)


async def _sweeps(context: Context) -> list[Sweep]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Sweep).order_by(Sweep.id)))
