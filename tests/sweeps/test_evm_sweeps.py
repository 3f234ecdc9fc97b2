"""Sweeps on Ethereum against a real node (anvil): an invoice paid in a 6-decimal ERC-20 on
its own address, then the sweeper tops that address up with exactly the gas its transfer
may burn and moves the tokens to the hot wallet, booking both fees as the platform's; a
crash between storing and broadcasting either transaction; an address worth too little;
and the hot wallet's nonces shared with the payout worker."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address
from sqlalchemy import select

from paydesk.chains.evm_sender import EvmPayoutSender
from paydesk.chains.registry import build_sender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.deposits.models import Deposit
from paydesk.leases import take_lease
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from paydesk.merchants.service import IssuedMerchant
from paydesk.payouts.models import Payout, PayoutLane
from paydesk.payouts.worker import PayoutWorker, payouts_loop
from paydesk.sweeps import worker as sweeps_worker
from paydesk.sweeps.models import Sweep
from paydesk.sweeps.worker import SweepStep, SweepWorker, sweeps_loop
from tests.chains.anvil import Anvil
from tests.conftest import CryptomusClient
from tests.evm import ETH_DECIMALS, USDT_DECIMALS, eth_watcher, follow, start_anvil, units

#: Blocks a transaction needs here (the catalogue's 12 would only be slower).
CONFIRMATIONS = 3


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    yield from start_anvil()


@pytest.fixture(scope="module")
def usdt(anvil: Anvil) -> str:
    """A 6-decimal token on the module's node, standing in for Tether's contract."""
    return anvil.deploy_token("USDT", USDT_DECIMALS)


@pytest.fixture
def settings_overrides(anvil: Anvil, usdt: str, tmp_path: Path) -> dict[str, Any]:
    """ETH and USDT on eth, 1 % deposit commission, payouts of USDT from 5."""
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(
        f"[networks.eth]\nconfirmations = {CONFIRMATIONS}\n\n"
        '[[services]]\nnetwork = "eth"\ncurrency = "ETH"\npercent = "1"\n\n'
        f'[[services]]\nnetwork = "eth"\ncurrency = "USDT"\ncontract = "{usdt}"\n'
        'percent = "1"\npayout_percent = "0.5"\npayout_fee_amount = "1"\n'
        'payout_min_amount = "5"\n'
    )
    return {
        "networks": ["eth"],
        "chain_nodes": {"eth": anvil.url},
        "catalogue_file": catalogue,
        "callback_allowlist": ["127.0.0.0/8"],
        # ETH's dollar value decides whether an ETH deposit is worth sweeping.
        "static_rates": {"ETH/USD": Decimal(3000)},
    }


@pytest.fixture
async def watcher(context: Context) -> AsyncIterator[Watcher]:
    async with eth_watcher(context, CONFIRMATIONS) as watching:
        yield watching


@pytest.fixture
async def hot_wallet(context: Context) -> AsyncIterator[EvmPayoutSender]:
    """The eth hot wallet of this test's master seed (a fresh seed: an empty wallet)."""
    async with context.db.transaction() as session:
        await context.addresses.keys.load(session)
    sender = build_sender(
        eth(context), context.catalogue, context.settings, context.db, context.addresses.keys
    )
    assert isinstance(sender, EvmPayoutSender)
    try:
        yield sender
    finally:
        await sender.close()


@pytest.fixture
def sweeper(context: Context, hot_wallet: EvmPayoutSender) -> SweepWorker:
    return SweepWorker(context, eth(context), hot_wallet, owner="tests", discover_every=0)


# --------------------------------------------------------------------------- helpers
def eth(context: Context) -> Any:
    network = context.catalogue.network("eth")
    assert network is not None
    return network


async def confirm(anvil: Anvil, watcher: Watcher) -> None:
    """Mine the confirmations everything so far needs and let the watcher read them."""
    anvil.mine(CONFIRMATIONS)
    await follow(watcher)


async def paid_invoice(
    api: CryptomusClient, anvil: Anvil, usdt: str, watcher: Watcher, amount: str, order_id: str
) -> dict[str, Any]:
    """An invoice in USDT on eth, paid in full on its own address and confirmed."""
    invoice = await api.result(
        "/v1/payment",
        {"amount": amount, "currency": "USDT", "network": "eth", "order_id": order_id},
    )
    anvil.send_token(usdt, invoice["address"], units(invoice["payer_amount"], USDT_DECIMALS))
    await follow(watcher)
    await confirm(anvil, watcher)
    info = await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})
    assert info["payment_status"] == "paid", info
    return dict(invoice)


async def sweeps(context: Context) -> list[Sweep]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Sweep).order_by(Sweep.id)))


async def account_balance(
    context: Context, kind: AccountKind, currency: str, *, owner: Any = "", network: str = ""
) -> Decimal:
    async with context.db.reader() as session:
        account = await ledger.find_account(session, kind, currency, owner=str(owner),
                                            network=network)  # fmt: skip
        return await ledger.balance(session, account) if account else Decimal(0)


async def merchant_balance(context: Context, merchant: IssuedMerchant, currency: str) -> Decimal:
    return await account_balance(
        context, AccountKind.MERCHANT_BUSINESS, currency, owner=merchant.merchant_id
    )


async def journal(context: Context, kind: str) -> list[str]:
    async with context.db.reader() as session:
        return list(
            await session.scalars(
                select(JournalTransaction.reference)
                .where(JournalTransaction.kind == kind)
                .order_by(JournalTransaction.id)
            )
        )


async def assert_ledger_ok(context: Context) -> None:
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


def transactions_from(anvil: Anvil, sender: str, since: int) -> list[Any]:
    """Every mined transaction `sender` signed in blocks `since`..tip, once anvil has
    mined what it was sent (automine runs just after the send returns)."""
    deadline = time.monotonic() + 10
    while int(anvil.rpc("txpool_status")["pending"], 16) and time.monotonic() < deadline:
        time.sleep(0.01)
    found = []
    for height in range(since, anvil.block_number() + 1):
        block = anvil.w3.eth.get_block(height, full_transactions=True)
        found += [tx for tx in block["transactions"] if tx["from"] == sender]
    return found


def fee_wei(anvil: Anvil, tx: Any) -> int:
    receipt = anvil.w3.eth.get_transaction_receipt(tx["hash"])
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def wei(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-ETH_DECIMALS)


def fund_hot_wallet(
    anvil: Anvil, usdt: str, hot: str, eth: str = "1", usdt_amount: str = "0"
) -> None:
    """Coins for the hot wallet straight from anvil's dev account."""
    anvil.send_native(hot, units(eth, ETH_DECIMALS))
    if Decimal(usdt_amount):
        anvil.send_token(usdt, hot, units(usdt_amount, USDT_DECIMALS))


class Crash(Exception):
    """The worker process dying."""


def crash_on_broadcast(
    monkeypatch: pytest.MonkeyPatch, sender: EvmPayoutSender, *, node_has_it: bool
) -> None:
    """The next broadcasts die: after the node got the transaction, or before."""
    real = sender.broadcast

    async def broadcast(transfer: Any) -> None:
        if node_has_it:
            await real(transfer)
        raise Crash(transfer.txid)

    monkeypatch.setattr(sender, "broadcast", broadcast)


# --------------------------------------------------------------------------- the sweep
async def test_a_usdt_deposit_is_swept_to_the_hot_wallet_with_its_gas_topped_up(
    anvil, usdt, api, context, merchant, watcher, hot_wallet, sweeper
):
    invoice = await paid_invoice(api, anvil, usdt, watcher, "25", "sweep-1")
    address = invoice["address"]
    paid_units = units(invoice["payer_amount"], USDT_DECIMALS)
    merchant_usdt = await merchant_balance(context, merchant, "USDT")
    holdings_usdt = await account_balance(
        context, AccountKind.ONCHAIN_HOLDINGS, "USDT", network="eth"
    )
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot)
    since = anvil.block_number() + 1
    base_fee = int(anvil.w3.eth.get_block("latest")["baseFeePerGas"])
    tip = int(anvil.rpc("eth_maxPriorityFeePerGas"), 16)

    first = await sweeper.step()
    assert (first.found, first.funded, first.signed) == (1, 1, 0)
    [sweep] = await sweeps(context)
    assert (sweep.stage, sweep.address, sweep.currency, sweep.native) == (
        "funding", address, "USDT", "ETH"
    )  # fmt: skip
    [top_up] = transactions_from(anvil, hot, since)
    assert top_up["hash"].to_0x_hex() == sweep.funding_txid and top_up["to"] == address
    assert wei(top_up["value"]) == sweep.funding_amount

    assert not (await sweeper.step()).busy  # the top-up waits for its confirmations
    await confirm(anvil, watcher)  # the watcher reads it too: no payment, no deposit
    second = await sweeper.step()
    assert (second.funded, second.signed) == (0, 1)
    [transfer] = transactions_from(anvil, address, since)
    sent = (await sweeps(context))[0]
    assert (sent.stage, sent.txid) == ("sent", transfer["hash"].to_0x_hex())
    assert transfer["to"] == usdt
    # Exactly what the transfer may burn at the fees of the top-up's time: its gas limit
    # times twice the base fee plus the tip. It was signed with what the address held.
    assert top_up["value"] == transfer["gas"] * (2 * base_fee + tip)
    assert top_up["value"] >= transfer["gas"] * transfer["maxFeePerGas"]

    await confirm(anvil, watcher)
    third = await sweeper.step()
    assert third.done == 1
    [done] = await sweeps(context)
    assert (done.stage, done.amount, done.to_address, done.attempts, done.last_error) == (
        "done", Decimal(invoice["payer_amount"]), hot, 2, None
    )  # fmt: skip
    assert done.finished_at is not None and done.funded == wei(top_up["value"])
    assert anvil.token_balance(usdt, address) == 0
    assert anvil.token_balance(usdt, hot) == paid_units

    # The fees are the platform's: booked out of its ETH holdings on eth, as paid.
    top_up_fee, transfer_fee = wei(fee_wei(anvil, top_up)), wei(fee_wei(anvil, transfer))
    assert (done.funding_fee, done.transfer_fee) == (top_up_fee, transfer_fee)
    assert await account_balance(context, AccountKind.NETWORK_FEE_EXPENSE, "ETH") == (
        top_up_fee + transfer_fee
    )
    assert await account_balance(context, AccountKind.ONCHAIN_HOLDINGS, "ETH", network="eth") == -(
        top_up_fee + transfer_fee
    )
    assert await journal(context, "sweep_network_fee") == [
        f"sweep:{done.uuid}:funding:{done.funding_txid}",
        f"sweep:{done.uuid}:transfer:{done.txid}",
    ]
    # What the transfer did not burn stays on the address (still the platform's).
    assert anvil.w3.eth.get_balance(address) == top_up["value"] - fee_wei(anvil, transfer)
    # Tokens moved between the platform's own addresses: no balance changed.
    assert await merchant_balance(context, merchant, "USDT") == merchant_usdt
    assert await merchant_balance(context, merchant, "ETH") == 0
    assert (
        await account_balance(context, AccountKind.ONCHAIN_HOLDINGS, "USDT", network="eth")
        == holdings_usdt
    )
    async with context.db.reader() as session:
        deposits = list(await session.scalars(select(Deposit)))
    assert [(d.currency, d.status) for d in deposits] == [("USDT", "credited")]
    await assert_ledger_ok(context)

    assert await sweeper.step() == SweepStep()  # nothing new arrived: nothing to do


async def test_an_eth_deposit_is_swept_paying_its_own_gas(
    anvil, api, context, merchant, watcher, hot_wallet, sweeper
):
    """The coin itself: the address sends all it holds less what the transfer may burn
    (21000 gas at the payouts' fee cap), so there is no top-up; the fee burned is booked
    and the unburned rest of the cap stays on the address."""
    invoice = await api.result(
        "/v1/payment", {"amount": "0.02", "currency": "ETH", "network": "eth", "order_id": "e-1"}
    )
    address = invoice["address"]
    paid = units(invoice["payer_amount"], ETH_DECIMALS)
    anvil.send_native(address, paid)
    await follow(watcher)
    await confirm(anvil, watcher)
    hot = hot_wallet.hot_address
    since = anvil.block_number() + 1
    base_fee = int(anvil.w3.eth.get_block("latest")["baseFeePerGas"])
    tip = int(anvil.rpc("eth_maxPriorityFeePerGas"), 16)

    first = await sweeper.step()
    assert (first.found, first.funded, first.signed) == (1, 0, 1)
    [transfer] = transactions_from(anvil, address, since)
    assert transfer["to"] == hot and transfer["gas"] == 21_000
    cap = 21_000 * (2 * base_fee + tip)
    assert transfer["value"] == paid - cap and transfer["maxFeePerGas"] == 2 * base_fee + tip
    [sweep] = await sweeps(context)
    assert (sweep.currency, sweep.stage, sweep.amount) == ("ETH", "sent", wei(paid - cap))

    await confirm(anvil, watcher)  # the watcher reads it too: the hot wallet is no invoice's
    assert (await sweeper.step()).done == 1
    [done] = await sweeps(context)
    fee = fee_wei(anvil, transfer)
    assert (done.stage, done.funded, done.transfer_fee) == ("done", 0, wei(fee))
    assert anvil.w3.eth.get_balance(hot) == paid - cap
    assert anvil.w3.eth.get_balance(address) == cap - fee
    assert await account_balance(context, AccountKind.NETWORK_FEE_EXPENSE, "ETH") == wei(fee)
    assert await journal(context, "sweep_network_fee") == [
        f"sweep:{done.uuid}:transfer:{done.txid}"
    ]
    async with context.db.reader() as session:
        deposits = list(await session.scalars(select(Deposit)))
    assert [(d.currency, d.status) for d in deposits] == [("ETH", "credited")]
    await assert_ledger_ok(context)
    assert await sweeper.step() == SweepStep()


@pytest.mark.parametrize("node_has_it", [False, True], ids=["before-the-node", "after-broadcast"])
async def test_a_crash_between_storing_and_broadcasting_sends_each_transaction_once(
    node_has_it, anvil, usdt, api, context, watcher, hot_wallet, sweeper, monkeypatch
):
    invoice = await paid_invoice(api, anvil, usdt, watcher, "30", "sweep-crash")
    address = invoice["address"]
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot)
    nonce_before = anvil.w3.eth.get_transaction_count(hot)
    since = anvil.block_number() + 1

    with monkeypatch.context() as patch:
        crash_on_broadcast(patch, hot_wallet, node_has_it=node_has_it)
        with pytest.raises(Crash):
            await sweeper.step()
    [stored] = await sweeps(context)
    assert stored.stage == "funding" and stored.funding_tx is not None  # stored first
    assert anvil.w3.eth.get_transaction_count(hot, "pending") == nonce_before + node_has_it

    restarted = SweepWorker(context, eth(context), hot_wallet, owner="tests", discover_every=0)
    await restarted.step()  # the same bytes again, or followed where the node has them
    await confirm(anvil, watcher)
    with monkeypatch.context() as patch:
        crash_on_broadcast(patch, hot_wallet, node_has_it=node_has_it)
        with pytest.raises(Crash):
            await restarted.step()  # topped up: the transfer is signed, stored, then death
    [signed] = await sweeps(context)
    assert signed.stage == "signed" and signed.signed_tx is not None
    assert signed.funding_txid == stored.funding_txid

    again = SweepWorker(context, eth(context), hot_wallet, owner="tests", discover_every=0)
    await again.step()
    await confirm(anvil, watcher)
    assert (await again.step()).done == 1

    [done] = await sweeps(context)
    assert (done.stage, done.txid, done.attempts) == ("done", signed.txid, 2)
    [top_up] = transactions_from(anvil, hot, since)
    assert top_up["hash"].to_0x_hex() == stored.funding_txid
    assert anvil.w3.eth.get_transaction_count(hot) == nonce_before + 1
    [transfer] = transactions_from(anvil, address, since)
    assert transfer["hash"].to_0x_hex() == signed.txid
    assert anvil.token_balance(usdt, address) == 0
    assert anvil.token_balance(usdt, hot) == units(invoice["payer_amount"], USDT_DECIMALS)
    assert await journal(context, "sweep_network_fee") == [
        f"sweep:{done.uuid}:funding:{done.funding_txid}",
        f"sweep:{done.uuid}:transfer:{done.txid}",
    ]
    await assert_ledger_ok(context)


async def test_an_address_worth_less_than_the_minimum_is_left_alone_until_more_arrives(
    anvil, usdt, api, context, watcher, hot_wallet, sweeper
):
    invoice = await paid_invoice(api, anvil, usdt, watcher, "5", "sweep-small")
    address = invoice["address"]
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot)
    since = anvil.block_number() + 1

    left = await sweeper.step()
    assert (left.found, left.skipped, left.funded) == (1, 1, 0)
    [skipped] = await sweeps(context)
    assert skipped.stage == "skipped" and skipped.finished_at is not None
    assert "below the 10 USD" in (skipped.last_error or "")
    assert await sweeper.step() == SweepStep()  # not looked at again
    assert transactions_from(anvil, hot, since) == []
    assert anvil.token_balance(usdt, address) == units("5", USDT_DECIMALS)

    # A late payment to the same address: 11 USDT there now, worth sweeping.
    anvil.send_token(usdt, address, units("6", USDT_DECIMALS))
    await follow(watcher)
    await confirm(anvil, watcher)
    assert (await sweeper.step()).funded == 1
    await confirm(anvil, watcher)
    assert (await sweeper.step()).signed == 1
    await confirm(anvil, watcher)
    assert (await sweeper.step()).done == 1
    first, second = await sweeps(context)
    assert first.stage == "skipped" and second.last_deposit_id > first.last_deposit_id
    assert (second.stage, second.amount) == ("done", Decimal("11"))
    assert anvil.token_balance(usdt, hot) == units("11", USDT_DECIMALS)
    await assert_ledger_ok(context)


# --------------------------------------------------------------------------- nonces
async def test_the_sweeper_waits_while_another_worker_holds_the_hot_wallet(
    anvil, usdt, api, context, watcher, hot_wallet, sweeper
):
    await paid_invoice(api, anvil, usdt, watcher, "25", "sweep-held")
    async with context.db.transaction() as session:
        assert await take_lease(
            session, PayoutLane, {"network": "eth"}, "another-process", sweeper.lease
        )
    assert await sweeper.step() == SweepStep(leased=False)
    assert await sweeps(context) == []


async def test_top_ups_and_payouts_take_the_hot_wallet_nonces_in_turn(
    anvil, usdt, api, context, merchant, watcher, hot_wallet, sweeper
):
    """A payout still pending when the sweeper tops an address up: the top-up takes the
    next nonce from the lane, not the chain's count (which has not seen the payout)."""
    invoice = await paid_invoice(api, anvil, usdt, watcher, "25", "sweep-nonce")
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot, usdt_amount="100")
    nonce_before = anvil.w3.eth.get_transaction_count(hot)
    since = anvil.block_number() + 1
    destination = to_checksum_address(os.urandom(20))
    response = await api.post(
        "/v1/payout",
        {"amount": "10", "currency": "USDT", "network": "eth", "order_id": "po-nonce",
         "address": destination, "is_subtract": True},
        key=merchant.payout_key,
    )  # fmt: skip
    assert response.status_code == 200 and json.loads(response.content)["state"] == 0
    payouts = PayoutWorker(context, eth(context), hot_wallet, owner="tests")
    anvil.set_automine(False)
    try:
        assert (await payouts.step()).signed == 1  # pending, nonce N
        assert (await sweeper.step()).funded == 1  # pending too, nonce N + 1
        async with context.db.reader() as session:
            payout = await session.scalar(select(Payout))
            lane = await session.get(PayoutLane, "eth")
        [sweep] = await sweeps(context)
        assert payout is not None and lane is not None
        assert (payout.nonce, sweep.funding_nonce, lane.next_nonce) == (
            nonce_before, nonce_before + 1, nonce_before + 2
        )  # fmt: skip
        anvil.mine()
    finally:
        anvil.set_automine(True)
    await confirm(anvil, watcher)
    await payouts.step()
    assert (await sweeper.step()).signed == 1
    await confirm(anvil, watcher)
    assert (await sweeper.step()).done == 1

    async with context.db.reader() as session:
        paid = await session.scalar(select(Payout))
    assert paid is not None and paid.status == "paid"
    assert [tx["nonce"] for tx in transactions_from(anvil, hot, since)] == [
        nonce_before, nonce_before + 1
    ]  # fmt: skip
    assert anvil.token_balance(usdt, destination) == units(paid.payer_amount, USDT_DECIMALS)
    assert anvil.token_balance(usdt, hot) == (
        units("100", USDT_DECIMALS)
        - units(paid.payer_amount, USDT_DECIMALS)
        + units(invoice["payer_amount"], USDT_DECIMALS)
    )
    await assert_ledger_ok(context)


async def test_the_worker_loops_sweep_beside_the_payouts(
    anvil, usdt, api, context, watcher, hot_wallet, monkeypatch
):
    """`paydesk worker`'s payout and sweep loops in one process: the payout worker holds
    the lane's lease all along, and the sweeper signs under it all the same."""
    monkeypatch.setattr(sweeps_worker, "POLL_SECONDS", 0.05)
    invoice = await paid_invoice(api, anvil, usdt, watcher, "25", "sweep-loops")
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot)
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(payouts_loop(context, stop)),
        asyncio.create_task(sweeps_loop(context, stop)),
    ]
    try:
        deadline = time.monotonic() + 30
        while not (found := await sweeps(context)) or found[0].stage != "done":
            assert time.monotonic() < deadline, found and (found[0].stage, found[0].last_error)
            assert not any(loop.done() for loop in loops)
            anvil.mine()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), timeout=10)
    assert anvil.token_balance(usdt, hot) == units(invoice["payer_amount"], USDT_DECIMALS)
    async with context.db.reader() as session:
        lane = await session.get(PayoutLane, "eth")
    assert lane is not None and lane.lease_owner is None  # given up on the way out
    await assert_ledger_ok(context)


async def test_an_eth_sweep_waits_for_the_token_sweep_of_its_address(context, sweeper):
    """A token sweep's top-up must not leave with the address's coin: while one is open,
    the coin's own sweep of that address waits."""
    address = "0x" + "ab" * 20
    rows = [
        Sweep(
            network="eth",
            address=address,
            derivation_index=7,
            currency=currency,
            last_deposit_id=1,
            native="ETH",
            stage="queued",
            funded=Decimal(0),
            funding_fee=Decimal(0),
            transfer_fee=Decimal(0),
            attempts=0,
        )
        for currency in ("USDT", "ETH")
    ]
    async with context.db.transaction() as session:
        session.add_all(rows)
    _, native = await sweeps(context)
    assert await sweeper._take_lease()  # what `step` does first
    assert await sweeper._start(native) == "postponed"
    _, waiting = await sweeps(context)
    assert waiting.stage == "queued" and waiting.attempts == 0
    assert waiting.last_error == "a token sweep of the address is open"
    assert waiting.next_attempt_at is not None
