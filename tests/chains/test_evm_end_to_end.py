"""Ethereum end to end against a real node (anvil): invoices created through the API, paid
with real transactions, read by the watcher, credited in the ledger and announced by
webhooks; reorganisations on the node; `paydesk worker` killed mid-way and restarted.

The node lives for the whole module and keeps every block, so each test's watcher starts
near the tip (a first watcher starts `confirmations` blocks below it) and each test's
invoices get addresses of a fresh master seed (the tables are emptied after every test).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyCryptomusAPI.webhooks import process_payment_webhook
from sqlalchemy import func, select

from paydesk.chains.models import ChainCursor
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.deposits.models import Deposit
from paydesk.invoices.models import Invoice
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from paydesk.webhooks.models import WebhookEvent
from paydesk.webhooks.sender import build_sender
from paydesk.webhooks.worker import deliver_due
from tests.chains.anvil import Anvil
from tests.evm import ETH_DECIMALS, USDT_DECIMALS, eth_watcher, follow, units
from tests.live import PAYDESK, paydesk_env

#: Blocks a payment needs on eth in these tests (the catalogue's 12 would only be slower).
CONFIRMATIONS = 3
#: The platform's commission on eth ETH and USDT here, in percent (the catalogue has none).
PERCENT = "1"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def usdt(anvil: Anvil) -> str:
    """A 6-decimal token on the module's node, standing in for Tether's contract."""
    return anvil.deploy_token("USDT", USDT_DECIMALS)


@pytest.fixture
def catalogue_file(tmp_path: Path, usdt: str) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(
        f"[networks.eth]\nconfirmations = {CONFIRMATIONS}\n\n"
        f'[[services]]\nnetwork = "eth"\ncurrency = "ETH"\npercent = "{PERCENT}"\n\n'
        f'[[services]]\nnetwork = "eth"\ncurrency = "USDT"\ncontract = "{usdt}"\n'
        f'percent = "{PERCENT}"\n'
    )
    return path


@pytest.fixture
def settings_overrides(anvil: Anvil, catalogue_file: Path) -> dict[str, Any]:
    return {
        "networks": ["devnet", "eth"],
        "chain_nodes": {"eth": anvil.url},
        "catalogue_file": catalogue_file,
        "callback_allowlist": ["127.0.0.0/8"],
    }


@pytest.fixture
async def sender(context: Context):
    sender = build_sender(context.settings)
    yield sender
    await sender.close()


@pytest.fixture
async def watcher(context: Context) -> AsyncIterator[Watcher]:
    async with eth_watcher(context, CONFIRMATIONS) as watching:
        yield watching


# --------------------------------------------------------------------------- helpers
async def invoice_of(api, receiver=None, order_id="o1", amount="0.5", currency="ETH", **extra):
    body = {"amount": amount, "currency": currency, "network": "eth", "order_id": order_id}
    if receiver is not None:
        body["url_callback"] = receiver.url
    return await api.result("/v1/payment", {**body, **extra})


async def status(api, invoice) -> dict:
    return await api.result("/v1/payment/info", {"uuid": invoice["uuid"]})


async def statuses(context: Context) -> list[str]:
    async with context.db.reader() as session:
        events = await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        return [event.payload["status"] for event in events]


async def run_check(context: Context):
    async with context.db.reader() as session:
        return await check_ledger(session)


async def deposits(context: Context) -> list[Deposit]:
    async with context.db.reader() as session:
        return list(
            await session.scalars(
                select(Deposit).where(Deposit.network == "eth").order_by(Deposit.id)
            )
        )


async def ledger_kinds(context: Context) -> list[str]:
    async with context.db.reader() as session:
        return list(
            await session.scalars(select(JournalTransaction.kind).order_by(JournalTransaction.id))
        )


async def merchant_balance(context: Context, merchant, currency: str) -> Decimal:
    """The merchant's live (not devnet) balance in `currency`."""
    async with context.db.reader() as session:
        account = await ledger.find_account(
            session, AccountKind.MERCHANT_BUSINESS, currency, owner=merchant.merchant_id
        )
        return await ledger.balance(session, account) if account else Decimal(0)


def send_raw(anvil: Anvil, raw: str) -> str:
    """Submit a signed transaction and wait for its (automatic) block."""
    txhash = anvil.w3.eth.send_raw_transaction(raw)
    anvil.w3.eth.wait_for_transaction_receipt(txhash, timeout=10, poll_latency=0.005)
    return txhash.to_0x_hex()


def block_of(anvil: Anvil, txid: str) -> int:
    return int(anvil.w3.eth.get_transaction_receipt(txid)["blockNumber"])


# --------------------------------------------------------------------------- payments
async def test_native_eth_end_to_end_with_confirmations_and_signed_webhooks(
    anvil, api, context, receiver, sender, merchant, watcher
):
    invoice = await invoice_of(api, receiver)
    assert (invoice["payer_amount"], invoice["payer_currency"], invoice["network"]) == (
        "0.50000000",
        "ETH",
        "eth",
    )
    assert (invoice["commission"], invoice["merchant_amount"]) == ("0.00500000", "0.49500000")
    assert anvil.w3.is_checksum_address(invoice["address"])

    txid = anvil.send_native(invoice["address"], units(invoice["payer_amount"], ETH_DECIMALS))
    await follow(watcher)  # in a block, one confirmation of three: seen, nothing booked
    seen = await status(api, invoice)
    assert (seen["payment_status"], seen["payment_amount"]) == ("confirm_check", "0.00000000")
    assert not seen["is_final"]
    anvil.mine()
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    assert await merchant_balance(context, merchant, "ETH") == 0

    anvil.mine()  # the third confirmation
    await follow(watcher)
    paid = await status(api, invoice)
    assert paid["payment_status"] == "paid" and paid["is_final"]
    assert (paid["payment_amount"], paid["txid"], paid["from"]) == (
        "0.50000000",
        txid,
        anvil.address,
    )
    assert (paid["merchant_amount"], paid["commission"]) == ("0.49500000", "0.00500000")
    assert await statuses(context) == ["confirm_check", "paid"]
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.495")

    assert await deliver_due(context, sender) == 1
    assert await deliver_due(context, sender) == 1  # the next in order, once the first landed
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [b["status"] for b in bodies] == ["confirm_check", "paid"]
    verified = process_payment_webhook(receiver.received[1].body, merchant.payment_key)
    assert (verified.status, verified.is_final, verified.txid) == ("paid", True, txid)
    assert (verified.from_, verified.network, verified.payer_currency) == (
        anvil.address,
        "eth",
        "ETH",
    )
    assert (bodies[1]["payment_amount"], bodies[1]["merchant_amount"]) == (
        "0.50000000",
        "0.49500000",
    )
    assert bodies[1]["commission"] == "0.00500000"
    [deposit] = await deposits(context)
    assert (deposit.status, deposit.block_height, deposit.amount) == (
        "credited",
        block_of(anvil, txid),
        Decimal("0.5"),
    )
    report = await run_check(context)
    assert report.ok, report.violations


async def test_erc20_usdt_end_to_end(
    anvil, usdt, api, context, receiver, sender, merchant, watcher
):
    invoice = await invoice_of(api, receiver, amount="10", currency="USDT")
    assert Decimal(invoice["payer_amount"]) == 10
    assert (Decimal(invoice["commission"]), Decimal(invoice["merchant_amount"])) == (
        Decimal("0.1"),
        Decimal("9.9"),
    )
    txid = anvil.send_token(usdt, invoice["address"], units(invoice["payer_amount"], USDT_DECIMALS))
    assert anvil.token_balance(usdt, invoice["address"]) == 10 * 10**USDT_DECIMALS
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    paid = await status(api, invoice)
    assert paid["payment_status"] == "paid" and paid["is_final"]
    assert Decimal(paid["payment_amount"]) == 10
    assert (paid["txid"], paid["from"]) == (txid, anvil.address)
    assert await statuses(context) == ["confirm_check", "paid"]
    assert await merchant_balance(context, merchant, "USDT") == Decimal("9.9")
    assert await merchant_balance(context, merchant, "ETH") == 0

    assert await deliver_due(context, sender) == 1
    assert await deliver_due(context, sender) == 1
    verified = process_payment_webhook(receiver.received[-1].body, merchant.payment_key)
    assert (verified.status, verified.txid, verified.from_) == ("paid", txid, anvil.address)
    assert (verified.payer_currency, verified.payment_amount) == ("USDT", 10.0)
    assert (verified.merchant_amount, verified.commission) == (9.9, 0.1)
    [deposit] = await deposits(context)
    assert (deposit.status, deposit.currency, deposit.output_index >= 0) == (
        "credited",
        "USDT",
        True,
    )
    report = await run_check(context)
    assert report.ok, report.violations


async def test_underpay_then_top_up(anvil, api, context, watcher):
    invoice = await invoice_of(api)
    anvil.send_native(invoice["address"], units("0.3", ETH_DECIMALS))
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)  # confirmed in the same read: no confirm_check on the way
    under = await status(api, invoice)
    assert (under["payment_status"], under["payment_amount"]) == (
        "wrong_amount_waiting",
        "0.30000000",
    )
    top_up = anvil.send_native(invoice["address"], units("0.2", ETH_DECIMALS))
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    paid = await status(api, invoice)
    assert (paid["payment_status"], paid["payment_amount"], paid["txid"]) == (
        "paid",
        "0.50000000",
        top_up,
    )
    assert await statuses(context) == ["wrong_amount_waiting", "confirm_check", "paid"]
    assert [d.status for d in await deposits(context)] == ["credited", "credited"]
    report = await run_check(context)
    assert report.ok, report.violations


async def test_overpay(anvil, api, context, merchant, watcher):
    invoice = await invoice_of(api)
    anvil.send_native(invoice["address"], units("0.6", ETH_DECIMALS))
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    over = await status(api, invoice)
    assert (over["payment_status"], over["payment_amount"]) == ("paid_over", "0.60000000")
    assert await statuses(context) == ["paid_over"]
    # The commission's share of what arrived: 1 % of 0.6.
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.594")
    report = await run_check(context)
    assert report.ok, report.violations


async def test_a_short_payment_within_the_tolerance_is_paid(anvil, api, context, watcher):
    invoice = await invoice_of(api, accuracy_payment_percent=2)
    anvil.send_native(invoice["address"], units("0.4925", ETH_DECIMALS))  # 1.5 % short
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    paid = await status(api, invoice)
    assert (paid["payment_status"], paid["payment_amount"]) == ("paid", "0.49250000")
    assert await statuses(context) == ["paid"]


async def test_the_wrong_token_is_credited_and_leaves_the_invoice_alone(
    anvil, usdt, api, context, merchant, watcher
):
    invoice = await invoice_of(api)  # an ETH invoice, paid in USDT
    txid = anvil.send_token(usdt, invoice["address"], units("7", USDT_DECIMALS))
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    unchanged = await status(api, invoice)
    assert (unchanged["payment_status"], unchanged["payment_amount"], unchanged["txid"]) == (
        "check",
        "0.00000000",
        None,
    )
    assert await statuses(context) == []
    [deposit] = await deposits(context)
    assert (deposit.status, deposit.currency, deposit.amount, deposit.txid) == (
        "credited",
        "USDT",
        Decimal(7),
        txid,
    )
    # Booked to the merchant in USDT, less the USDT service's commission (1 %).
    assert await merchant_balance(context, merchant, "USDT") == Decimal("6.93")
    assert await merchant_balance(context, merchant, "ETH") == 0
    report = await run_check(context)
    assert report.ok, report.violations


# --------------------------------------------------------------------------- reorganisations
async def test_reorganisation_that_drops_a_credited_payment(
    anvil, api, context, receiver, sender, merchant, watcher
):
    invoice = await invoice_of(api, receiver)
    txid = anvil.send_native(invoice["address"], units(invoice["payer_amount"], ETH_DECIMALS))
    height = block_of(anvil, txid)
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "paid"
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.495")

    # The payment's block and the two above it are replaced by blocks without it (the
    # first replacement differs from the block it replaces, so every hash above changes).
    tip = anvil.block_number()
    anvil.reorg(tip - height + 1, [])
    assert anvil.block_number() == tip
    assert anvil.rpc("eth_getTransactionReceipt", txid) is None

    result = await watcher.step()
    assert result.rolled_back == tip - height + 1
    await follow(watcher)
    gone = await status(api, invoice)
    assert (gone["payment_status"], gone["payment_amount"], gone["txid"]) == (
        "check",
        "0.00000000",
        None,
    )
    assert not gone["is_final"]
    assert await statuses(context) == ["paid", "check"]
    [deposit] = await deposits(context)
    assert deposit.status == "reversed"
    assert await ledger_kinds(context) == ["deposit", "deposit_reversal"]
    assert await merchant_balance(context, merchant, "ETH") == 0

    assert await deliver_due(context, sender) == 1
    assert await deliver_due(context, sender) == 1
    verified = process_payment_webhook(receiver.received[-1].body, merchant.payment_key)
    assert (verified.status, verified.is_final) == ("check", False)
    report = await run_check(context)
    assert report.ok, report.violations


async def test_reorganisation_that_moves_the_payment_to_another_block(
    anvil, api, context, merchant, watcher
):
    invoice = await invoice_of(api)
    raw = anvil.sign_native(invoice["address"], units(invoice["payer_amount"], ETH_DECIMALS))
    txid = send_raw(anvil, raw)
    height = block_of(anvil, txid)
    anvil.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    assert (await status(api, invoice))["payment_status"] == "paid"

    # A new branch from below the payment's block, with the same signed transaction one
    # block later: the old credit is reversed, the transfer is seen and credited anew.
    tip = anvil.block_number()
    anvil.reorg(tip - height + 1, [(raw, 1)])
    assert block_of(anvil, txid) == height + 1

    result = await watcher.step()
    assert result.rolled_back == tip - height + 1
    assert (await status(api, invoice))["payment_status"] == "check"
    await follow(watcher)  # two confirmations of three in the new branch
    assert (await status(api, invoice))["payment_status"] == "confirm_check"
    anvil.mine()
    await follow(watcher)
    again = await status(api, invoice)
    assert (again["payment_status"], again["payment_amount"], again["txid"]) == (
        "paid",
        "0.50000000",
        txid,
    )
    assert await statuses(context) == ["paid", "check", "confirm_check", "paid"]
    [deposit] = await deposits(context)
    assert (deposit.status, deposit.block_height) == ("credited", height + 1)
    assert await ledger_kinds(context) == ["deposit", "deposit_reversal", "deposit"]
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.495")
    report = await run_check(context)
    assert report.ok, report.violations


# --------------------------------------------------------------------------- paydesk worker
#: Payments for the crash test, each `GAP` blocks after the previous one: the worker reads
#: `BATCH` blocks per step, so it needs many steps between the first and the last.
PAYMENTS = 4
GAP = 60
BATCH = 5


def worker_env(context: Context, anvil: Anvil, catalogue_file: Path, data_dir: Path):
    settings = context.settings
    assert settings.master_key is not None and settings.database_url is not None
    return paydesk_env(
        data_dir,
        settings.database_url,
        PAYDESK_MASTER_KEY=settings.master_key.get_secret_value(),
        PAYDESK_NETWORKS="eth",  # the devnet would only add its miner and address pool
        PAYDESK_CHAIN_NODES=json.dumps({"eth": anvil.url}),
        PAYDESK_CATALOGUE_FILE=str(catalogue_file),
        PAYDESK_WATCHER_POLL_SECONDS="0.2",
        PAYDESK_WATCHER_LEASE_SECONDS="2",
        PAYDESK_WATCHER_BATCH_BLOCKS=str(BATCH),
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [PAYDESK, "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def cursor_height(context: Context) -> int | None:
    async with context.db.reader() as session:
        return await session.scalar(select(ChainCursor.height).where(ChainCursor.network == "eth"))


async def invoice_statuses(context: Context) -> list[str]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Invoice.status).order_by(Invoice.id)))


@pytest.mark.slow
async def test_worker_killed_mid_way_resumes_and_credits_each_payment_once(
    anvil, api, context, watcher, catalogue_file, tmp_path
):
    invoices = [await invoice_of(api, order_id=f"o{n}") for n in range(PAYMENTS)]
    await watcher.release()  # the cursor stays where the test's watcher left it
    txids, heights = [], []
    for invoice in invoices:
        anvil.mine(GAP)
        txids.append(anvil.send_native(invoice["address"], units("0.5", ETH_DECIMALS)))
        heights.append(block_of(anvil, txids[-1]))
    anvil.mine(CONFIRMATIONS)

    env = worker_env(context, anvil, catalogue_file, tmp_path / "worker-data")
    log = tmp_path / "worker.log"
    processes = []
    try:
        first = start_worker(env, log)
        processes.append(first)
        deadline = time.monotonic() + 30
        while True:
            height = await cursor_height(context)
            if height is not None and heights[0] <= height < heights[-1]:
                break
            assert height is None or height < heights[-1], (
                f"the worker read past the last payment ({height}) before it could be killed"
            )
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the worker never started: {log.read_text()}"
            await asyncio.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = await cursor_height(context)
        assert killed_at is not None and heights[0] <= killed_at < heights[-1]
        assert 0 < len(await deposits(context)) < PAYMENTS, "not killed part-way"

        second = start_worker(env, log)
        processes.append(second)
        deadline = time.monotonic() + 30
        while await invoice_statuses(context) != ["paid"] * PAYMENTS:
            assert second.poll() is None, log.read_text()
            assert time.monotonic() < deadline, (
                f"not all paid: {await invoice_statuses(context)}\n{log.read_text()}"
            )
            await asyncio.sleep(0.1)
        stop(second)
        assert "Traceback" not in log.read_text() and "step_failed" not in log.read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    found = await deposits(context)
    assert sorted(d.txid for d in found) == sorted(txids)  # one row per payment
    assert {d.status for d in found} == {"credited"}
    assert [d.block_height for d in found] == heights
    async with context.db.reader() as session:
        credits = await session.scalars(
            select(JournalTransaction.reference).where(JournalTransaction.kind == "deposit")
        )
        references = list(credits)
        reversals = await session.scalar(
            select(func.count())
            .select_from(JournalTransaction)
            .where(JournalTransaction.kind != "deposit")
        )
    # One credit per payment: its reference is deposit:<network>:<txid>:<index>:<block>.
    assert sorted(reference.split(":")[2] for reference in references) == sorted(txids)
    assert reversals == 0
    report = await run_check(context)
    assert report.ok, report.violations
