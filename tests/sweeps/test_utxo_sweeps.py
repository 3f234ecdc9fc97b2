"""Bitcoin-family sweeps against a real Litecoin Core node in regtest: deposits credited on
their invoice addresses are sent to the hot wallet in one transaction per address that
pays its own fee, booked to the unit as the platform's network fee, after which payouts
can spend them. On a BIP44 (P2PKH) path too, whose inputs are signed over their previous
transactions fetched by block hash."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from paydesk.chains.adapter import HotWalletShort
from paydesk.chains.utxo_sender import UtxoPayoutSender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from paydesk.sweeps.models import Sweep
from paydesk.sweeps.service import FEE_KIND
from paydesk.sweeps.worker import SweepWorker
from tests.evm import chain_watcher, follow, hot_wallet_of
from tests.litecoin import REGTEST_CATALOGUE, Litecoind, deposits, litecoind, ltc_invoice

#: Each test starts a real node: seconds each.
pytestmark = pytest.mark.slow

CONFIRMATIONS = 3
#: A BIP44 path on the same node: P2PKH deposit and hot wallet addresses.
LEGACY = "key_path = \"m/44'/1'/0'\"\n"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Litecoind]:
    with litecoind(tmp_path / "litecoind") as started:
        yield started


@pytest.fixture(params=["segwit", "legacy"])
def settings_overrides(request: pytest.FixtureRequest, node: Litecoind, tmp_path: Path):
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(REGTEST_CATALOGUE + (LEGACY if request.param == "legacy" else ""))
    return {
        "networks": ["ltc"],
        "chain_nodes": {"ltc": node.url},
        "catalogue_file": catalogue,
        "static_rates": {"LTC/USD": Decimal(80), "USDT/USD": Decimal(1)},
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


@pytest.fixture
def sweeper(context: Context, hot_wallet: UtxoPayoutSender) -> SweepWorker:
    network = context.catalogue.network("ltc")
    return SweepWorker(context, network, hot_wallet, owner="tests", discover_every=0)


async def sweeps(context: Context) -> list[Sweep]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Sweep).order_by(Sweep.id)))


async def fees_booked(context: Context) -> Decimal:
    async with context.db.reader() as session:
        account = await ledger.find_account(
            session, AccountKind.NETWORK_FEE_EXPENSE, "LTC", network=ledger.ledger_book("ltc")
        )
        return await ledger.balance(session, account) if account else Decimal(0)


async def ledger_ok(context: Context) -> None:
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


async def test_credited_deposits_are_swept_to_the_hot_wallet(
    node: Litecoind,
    context: Context,
    merchant: Any,
    watcher: Watcher,
    hot_wallet: UtxoPayoutSender,
    sweeper: SweepWorker,
) -> None:
    first = await ltc_invoice(context, merchant, "s-1", "0.5")
    second = await ltc_invoice(context, merchant, "s-2", "0.25")
    assert first.address and second.address
    # The first address is paid in two outputs (two inputs to sweep), the second in one.
    paid = [node.send(first.address, "0.3"), node.send(first.address, "0.2")]
    paid.append(node.send(second.address, "0.25"))
    node.mine(CONFIRMATIONS)
    await follow(watcher)
    assert {d.status for d in await deposits(context)} == {"credited"}

    step = await sweeper.step()
    assert (step.found, step.signed) == (2, 2)
    swept = {s.address: s for s in await sweeps(context)}
    assert set(swept) == {first.address, second.address}
    for address, held in ((first.address, Decimal("0.5")), (second.address, Decimal("0.25"))):
        sweep = swept[address]
        assert sweep.stage == "sent" and sweep.to_address == hot_wallet.hot_address
        assert sweep.signed_fee is not None and sweep.signed_fee > 0
        assert sweep.amount == held - sweep.signed_fee
        # What the node decodes: the deposits' outputs in, one output to the hot wallet,
        # and inputs minus outputs is the fee recorded at signing.
        tx = node.rpc("getrawtransaction", sweep.txid, True)
        spent = {(vin["txid"], vin["vout"]) for vin in tx["vin"]}
        assert {txid for txid, _ in spent} <= set(paid)
        assert len(spent) == (2 if address == first.address else 1)
        [output] = tx["vout"]
        assert output["value"] == sweep.amount
        hot_script = hot_wallet.address_format.script_pubkey(hot_wallet.hot_address)
        assert output["scriptPubKey"]["hex"] == hot_script.hex()
        assert node.rpc("getmempoolentry", sweep.txid)["fees"]["base"] == sweep.signed_fee

    # Nothing new: a second step starts nothing, and the watcher credits nothing (the hot
    # wallet's address is no invoice's).
    assert (await sweeper.step()).signed == 0
    node.mine(CONFIRMATIONS)
    await follow(watcher)
    assert len(await deposits(context)) == 3
    step = await sweeper.step()
    assert step.done == 2
    done = await sweeps(context)
    assert {s.stage for s in done} == {"done"}
    fees = sum((s.signed_fee for s in done), Decimal(0))
    assert {s.transfer_fee for s in done} == {s.signed_fee for s in done}
    assert await fees_booked(context) == fees
    async with context.db.reader() as session:
        kinds = list(await session.scalars(select(JournalTransaction.kind)))
    assert kinds.count(FEE_KIND) == 2
    await ledger_ok(context)

    # The hot wallet now holds them, and a payout spends them.
    assert await hot_wallet.balance("LTC") == Decimal("0.75") - fees
    payee = node.rpc("getnewaddress")
    signed = await hot_wallet.sign_transfer(payee, "LTC", Decimal("0.6"), nonce=1,
                                            priority="high")  # fmt: skip
    [verdict] = node.rpc("testmempoolaccept", [signed.raw])
    assert verdict["allowed"] is True, verdict

    # A later deposit to a swept address makes a new sweep of just that output.
    node.send(second.address, "0.2")
    node.mine(CONFIRMATIONS)
    await follow(watcher)
    step = await sweeper.step()
    assert (step.found, step.signed) == (1, 1)
    newest = (await sweeps(context))[-1]
    assert newest.address == second.address
    assert newest.amount == Decimal("0.2") - newest.signed_fee


async def test_an_address_whose_coins_would_go_to_fees_waits(
    node: Litecoind, context: Context, merchant: Any, watcher: Watcher, sweeper: SweepWorker
) -> None:
    """A deposit worth the minimum in dollars is swept; one whose coins cannot pay the
    transaction's fee without leaving dust is postponed, not sent."""
    invoice = await ltc_invoice(context, merchant, "tiny", "0.15")
    node.send(invoice.address, "0.15")
    node.mine(CONFIRMATIONS)
    await follow(watcher)
    key = await sweeper._deposit_key(
        Sweep(network="ltc", address=invoice.address, derivation_index=0, currency="LTC")
    )
    assert await key.balance("LTC") == Decimal("0.15")
    hot = sweeper.hot_wallet.hot_address
    plan = await key.plan("LTC", Decimal("0.15"), hot)
    assert plan.held == Decimal("0.15") and plan.amount + plan.fee == plan.held
    sweeper.hot_wallet.fallback_fee_per_kvb = Decimal(1000)  # a fee above the coins
    with pytest.raises(HotWalletShort, match="too few"):
        await key.plan("LTC", Decimal("0.15"), hot)
    step = await sweeper.step()
    assert step.signed == 0
    [waiting] = await sweeps(context)
    assert waiting.stage == "queued" and "too few" in (waiting.last_error or "")
