"""Static wallets and payouts on Ethereum against a real node (anvil): deposits credited once
and announced, payouts signed by the hot wallet, sent, confirmed, booked and announced, a
hot wallet too poor to pay, and `paydesk worker` killed around the broadcast.

The crash tests put a JSON-RPC relay between the worker and the node that never answers
`eth_sendRawTransaction`: the worker hangs inside the broadcast, so killing it there is a
crash after the transaction was stored (and, depending on the relay, after the node got
it) but before the worker wrote down that it was sent — every time, not by luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from pyCryptomusAPI.webhooks import process_payment_webhook, process_payout_webhook
from sqlalchemy import select, update
from web3 import Web3

from paydesk.chains.evm_sender import EvmPayoutSender
from paydesk.chains.registry import build_sender
from paydesk.chains.watcher import Watcher
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.deposits.models import Deposit
from paydesk.ledger import service as ledger
from paydesk.ledger.check import check_ledger
from paydesk.ledger.models import AccountKind, JournalTransaction
from paydesk.merchants.service import IssuedMerchant
from paydesk.payouts.models import Payout
from paydesk.payouts.worker import PayoutWorker
from paydesk.webhooks.models import WebhookEvent
from tests.chains.anvil import Anvil
from tests.conftest import CryptomusClient
from tests.devnet import deliver_webhooks, run_payouts
from tests.evm import ETH_DECIMALS, USDT_DECIMALS, eth_watcher, follow, start_anvil, units
from tests.live import PAYDESK, paydesk_env
from tests.receiver import Receiver

#: Blocks a deposit or payout needs here (the catalogue's 12 would only be slower).
CONFIRMATIONS = 3
#: keccak("Transfer(address,address,uint256)"): the topic of every ERC-20 transfer log.
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
#: How long a relay holds an unanswered broadcast at most (the test ends long before).
HOLD_SECONDS = 60.0


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    yield from start_anvil()


@pytest.fixture(scope="module")
def usdt(anvil: Anvil) -> str:
    """A 6-decimal token on the module's node, standing in for Tether's contract."""
    return anvil.deploy_token("USDT", USDT_DECIMALS)


@pytest.fixture
def catalogue_file(tmp_path: Path, usdt: str) -> Path:
    """ETH and USDT on eth with a 1 % deposit commission and payout terms: 0.5 % plus a
    fixed fee, and a minimum."""
    path = tmp_path / "catalogue.toml"
    path.write_text(
        f"[networks.eth]\nconfirmations = {CONFIRMATIONS}\n\n"
        '[[services]]\nnetwork = "eth"\ncurrency = "ETH"\npercent = "1"\n'
        'payout_percent = "0.5"\npayout_fee_amount = "0.001"\npayout_min_amount = "0.01"\n\n'
        f'[[services]]\nnetwork = "eth"\ncurrency = "USDT"\ncontract = "{usdt}"\n'
        'percent = "1"\npayout_percent = "0.5"\npayout_fee_amount = "1"\n'
        'payout_min_amount = "5"\n'
    )
    return path


@pytest.fixture
def settings_overrides(anvil: Anvil, catalogue_file: Path) -> dict[str, Any]:
    return {
        "networks": ["eth"],
        "chain_nodes": {"eth": anvil.url},
        "catalogue_file": catalogue_file,
        "callback_allowlist": ["127.0.0.0/8"],
    }


@pytest.fixture
async def watcher(context: Context) -> AsyncIterator[Watcher]:
    async with eth_watcher(context, CONFIRMATIONS) as watching:
        yield watching


@pytest.fixture
async def hot_wallet(context: Context) -> AsyncIterator[EvmPayoutSender]:
    """The eth hot wallet of this test's master seed (a fresh seed, so an empty wallet)."""
    async with context.db.transaction() as session:
        await context.addresses.keys.load(session)
    network = context.catalogue.network("eth")
    assert network is not None
    sender = build_sender(
        network, context.catalogue, context.settings, context.db, context.addresses.keys
    )
    assert isinstance(sender, EvmPayoutSender)
    try:
        yield sender
    finally:
        await sender.close()


@pytest.fixture
def payout_worker(context: Context, hot_wallet: EvmPayoutSender) -> PayoutWorker:
    network = context.catalogue.network("eth")
    assert network is not None
    return PayoutWorker(context, network, hot_wallet, owner="tests")


# --------------------------------------------------------------------------- helpers
def new_address() -> str:
    """An address nobody holds a key of: where payouts go, so it starts empty."""
    return to_checksum_address(os.urandom(20))


async def confirm(anvil: Anvil, watcher: Watcher) -> None:
    """Mine the confirmations every transfer so far needs and let the watcher read them."""
    anvil.mine(CONFIRMATIONS)
    await follow(watcher)


async def new_wallet(
    api: CryptomusClient, currency: str, order_id: str, receiver: Receiver | None = None
) -> dict[str, Any]:
    body = {"currency": currency, "network": "eth", "order_id": order_id}
    if receiver is not None:
        body["url_callback"] = receiver.url
    return await api.result("/v1/wallet", body)


def send(anvil: Anvil, usdt: str, currency: str, address: str, amount: str) -> str:
    """Pay `amount` of ETH or USDT from anvil's dev account; the txid."""
    if currency == "ETH":
        return anvil.send_native(address, units(amount, ETH_DECIMALS))
    return anvil.send_token(usdt, address, units(amount, USDT_DECIMALS))


async def fund_merchant(
    api: CryptomusClient, anvil: Anvil, usdt: str, watcher: Watcher, **amounts: str
) -> None:
    """Give the merchant balances through confirmed static wallet deposits (ETH="0.5")."""
    for currency, amount in amounts.items():
        wallet = await new_wallet(api, currency, f"funding-{currency}")
        send(anvil, usdt, currency, wallet["address"], amount)
    await follow(watcher)
    await confirm(anvil, watcher)


def fund_hot_wallet(
    anvil: Anvil, usdt: str, hot: str, eth: str = "0", usdt_amount: str = "0"
) -> None:
    """Coins for the hot wallet straight from anvil's dev account (Paydesk does not sweep
    deposits into it)."""
    if Decimal(eth):
        send(anvil, usdt, "ETH", hot, eth)
    if Decimal(usdt_amount):
        send(anvil, usdt, "USDT", hot, usdt_amount)


async def create_payout(
    api: CryptomusClient, currency: str, amount: str, address: str, order_id: str, **extra: Any
) -> dict[str, Any]:
    """POST /v1/payout signed with the payout key; amounts read exactly."""
    body = {"amount": amount, "currency": currency, "network": "eth", "order_id": order_id,
            "address": address, "is_subtract": True, **extra}  # fmt: skip
    response = await api.post("/v1/payout", body, key=api.merchant.payout_key)
    assert response.status_code == 200, response.text
    payload = json.loads(response.content, parse_float=Decimal)
    assert payload["state"] == 0, payload
    return payload["result"]


async def payout_info(api: CryptomusClient, payout_uuid: str) -> dict[str, Any]:
    return await api.result("/v1/payout/info", {"uuid": payout_uuid}, key=api.merchant.payout_key)


async def payout_row(context: Context, payout_uuid: str) -> Payout:
    async with context.db.reader() as session:
        found = await session.scalar(select(Payout).where(Payout.uuid == uuid.UUID(payout_uuid)))
    assert found is not None
    return found


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
    """References of the journal transactions of `kind`, oldest first."""
    async with context.db.reader() as session:
        return list(
            await session.scalars(
                select(JournalTransaction.reference)
                .where(JournalTransaction.kind == kind)
                .order_by(JournalTransaction.id)
            )
        )


async def deposits(context: Context) -> list[Deposit]:
    async with context.db.reader() as session:
        return list(await session.scalars(select(Deposit).where(Deposit.network == "eth")))


async def assert_ledger_ok(context: Context) -> None:
    async with context.db.reader() as session:
        report = await check_ledger(session)
    assert report.ok, report.violations


def fee_wei(anvil: Anvil, txid: str) -> int:
    """What the transaction cost its sender: gas used × effective gas price."""
    receipt = anvil.w3.eth.get_transaction_receipt(txid)
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def wei(amount: Decimal) -> Decimal:
    """Wei as ETH, exactly."""
    return Decimal(amount).scaleb(-ETH_DECIMALS)


def transactions_from(anvil: Anvil, sender: str, since: int) -> list[Any]:
    """Every mined transaction `sender` signed in blocks `since`..tip."""
    found = []
    for height in range(since, anvil.block_number() + 1):
        block = anvil.w3.eth.get_block(height, full_transactions=True)
        found += [tx for tx in block["transactions"] if tx["from"] == sender]
    return found


def token_transfers_to(anvil: Anvil, token: str, to: str, since: int) -> list[Any]:
    """The token's Transfer logs to `to` in blocks `since`..tip."""
    recipient = "0x" + HexBytes(Web3.to_bytes(hexstr=to)).rjust(32, b"\0").hex()
    topics = [TRANSFER_TOPIC, None, recipient]
    query = {"address": token, "fromBlock": since, "toBlock": "latest", "topics": topics}
    return list(anvil.w3.eth.get_logs(query))  # type: ignore[arg-type]


def received(anvil: Anvil, usdt: str, currency: str, address: str) -> int:
    """What `address` holds, in the coin's smallest unit."""
    if currency == "ETH":
        return int(anvil.w3.eth.get_balance(address))
    return anvil.token_balance(usdt, address)


# --------------------------------------------------------------------------- deposits
async def test_static_wallet_deposits_are_credited_once_exactly_and_announced(
    anvil, usdt, api, context, merchant, receiver, watcher
):
    eth_wallet = await new_wallet(api, "ETH", "customer-eth", receiver)
    usdt_wallet = await new_wallet(api, "USDT", "customer-usdt", receiver)
    assert Web3.is_checksum_address(eth_wallet["address"])
    assert eth_wallet["address"] != usdt_wallet["address"]
    assert (eth_wallet["network"], eth_wallet["currency"]) == ("eth", "ETH")

    # Every wei counts: 18 decimals arrive and are credited as they are.
    eth_amounts = ["0.5", "0.123456789012345678"]
    usdt_amounts = ["100", "23.456789"]
    anvil.set_automine(False)  # all four in one block
    try:
        txids = {send(anvil, usdt, "ETH", eth_wallet["address"], a): a for a in eth_amounts}
        txids |= {send(anvil, usdt, "USDT", usdt_wallet["address"], a): a for a in usdt_amounts}
        anvil.mine()
    finally:
        anvil.set_automine(True)
    await follow(watcher)  # in a block, not confirmed: seen, nothing booked
    assert await merchant_balance(context, merchant, "ETH") == 0
    assert {d.status for d in await deposits(context)} == {"seen"}
    await confirm(anvil, watcher)
    await confirm(anvil, watcher)  # read again further on: nothing is credited twice

    found = await deposits(context)
    assert sorted(d.txid for d in found) == sorted(txids)
    assert {d.status for d in found} == {"credited"}
    assert {d.txid: f"{d.amount.normalize():f}" for d in found} == txids
    assert sorted(ref.split(":")[2] for ref in await journal(context, "deposit")) == sorted(txids)
    # 1 % commission rounded half up to the payer places (8 for ETH, 6 for USDT):
    # 0.005 + 0.00123457, and 1 + 0.234568 (0.23456789).
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.617222219012345678")
    assert await merchant_balance(context, merchant, "USDT") == Decimal("122.222221")
    assert await account_balance(context, AccountKind.PLATFORM_COMMISSION, "ETH") == Decimal(
        "0.00623457"
    )
    assert await account_balance(
        context, AccountKind.ONCHAIN_HOLDINGS, "ETH", network="eth"
    ) == Decimal("0.623456789012345678")

    assert await deliver_webhooks(context) == 8
    per_deposit: dict[str, list[str]] = {}
    for message in receiver.received:
        verified = process_payment_webhook(message.body, merchant.payment_key)
        assert verified.type == "wallet"
        per_deposit.setdefault(verified.txid, []).append(verified.status)
    assert per_deposit == {txid: ["confirm_check", "paid"] for txid in txids}
    paid = {
        body["txid"]: body
        for body in (json.loads(m.body) for m in receiver.received)
        if body["status"] == "paid"
    }
    usdt_paid = paid[next(t for t, a in txids.items() if a == "23.456789")]
    assert (usdt_paid["currency"], usdt_paid["network"], usdt_paid["from"]) == (
        "USDT", "eth", anvil.address
    )  # fmt: skip
    assert usdt_paid["wallet_address_uuid"] == usdt_wallet["uuid"]
    assert (Decimal(usdt_paid["amount"]), Decimal(usdt_paid["commission"])) == (
        Decimal("23.456789"), Decimal("0.234568")
    )  # fmt: skip
    await assert_ledger_ok(context)


# --------------------------------------------------------------------------- payouts
async def test_payouts_in_usdt_and_eth_are_sent_confirmed_booked_and_announced(
    anvil, usdt, api, context, merchant, receiver, watcher, hot_wallet, payout_worker
):
    await fund_merchant(api, anvil, usdt, watcher, ETH="0.5", USDT="100")
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.495")
    assert await merchant_balance(context, merchant, "USDT") == Decimal("99")
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot, eth="1", usdt_amount="100")
    since = anvil.block_number() + 1
    to_usdt, to_eth = new_address(), new_address()

    # 50 USDT arrive, 50 + 0.25 + 1 leave the balance; 0.1 ETH leaves it, 0.0985 arrives.
    sent_usdt = await create_payout(
        api, "USDT", "50", to_usdt, "po-usdt", url_callback=receiver.url
    )
    sent_eth = await create_payout(
        api, "ETH", "0.1", to_eth.lower(), "po-eth", is_subtract=False, url_callback=receiver.url
    )
    assert (sent_usdt["status"], sent_usdt["payer_amount"], sent_usdt["balance"]) == (
        "process", Decimal("50"), Decimal("47.75")
    )  # fmt: skip
    assert (sent_eth["address"], sent_eth["payer_amount"], sent_eth["balance"]) == (
        to_eth, Decimal("0.0985"), Decimal("0.395")
    )  # fmt: skip
    assert await account_balance(
        context, AccountKind.PAYOUT_RESERVE, "USDT", owner=merchant.merchant_id
    ) == Decimal("51.25")

    await run_payouts(context, payout_worker)  # both signed and broadcast
    rows = [await payout_row(context, p["uuid"]) for p in (sent_usdt, sent_eth)]
    assert [(r.stage, r.nonce, r.from_address) for r in rows] == [
        ("sent", 0, hot),
        ("sent", 1, hot),
    ]
    assert (await payout_info(api, sent_usdt["uuid"]))["status"] == "process"
    anvil.mine(CONFIRMATIONS)
    await run_payouts(context, payout_worker)

    txids = [r.txid for r in rows]
    for created, txid in zip((sent_usdt, sent_eth), txids, strict=True):
        info = await payout_info(api, created["uuid"])
        assert (info["status"], info["is_final"], info["txid"]) == ("paid", True, txid)
    assert received(anvil, usdt, "USDT", to_usdt) == units("50", USDT_DECIMALS)
    assert received(anvil, usdt, "ETH", to_eth) == units("0.0985", ETH_DECIMALS)
    on_chain = transactions_from(anvil, hot, since)
    assert sorted(tx["hash"].to_0x_hex() for tx in on_chain) == sorted(txids)
    assert anvil.w3.eth.get_transaction_count(hot) == 2

    # The ledger: what left the balance, nothing still reserved, fees exactly as the
    # receipts say, each payout settled once.
    fees = [fee_wei(anvil, txid) for txid in txids]
    assert await merchant_balance(context, merchant, "USDT") == Decimal("47.75")
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.395")
    for currency in ("USDT", "ETH"):
        assert await account_balance(context, AccountKind.PAYOUT_RESERVE, currency,
                                     owner=merchant.merchant_id) == 0  # fmt: skip
    assert [(await payout_row(context, p["uuid"])).network_fee for p in (sent_usdt, sent_eth)] == [
        wei(f) for f in fees
    ]
    assert await account_balance(context, AccountKind.NETWORK_FEE_EXPENSE, "ETH") == wei(sum(fees))
    assert await account_balance(context, AccountKind.ONCHAIN_HOLDINGS, "ETH", network="eth") == (
        Decimal("0.5") - Decimal("0.0985") - wei(sum(fees))
    )
    assert await account_balance(
        context, AccountKind.ONCHAIN_HOLDINGS, "USDT", network="eth"
    ) == Decimal("50")
    # 1 % of the deposits, then the payout fees: 0.25 + 1, and 0.0005 + 0.001.
    assert await account_balance(context, AccountKind.PLATFORM_COMMISSION, "USDT") == Decimal(
        "2.25"
    )
    assert await account_balance(context, AccountKind.PLATFORM_COMMISSION, "ETH") == Decimal(
        "0.0065"
    )
    assert sorted(await journal(context, "payout")) == sorted(
        f"payout:{p['uuid']}:paid" for p in (sent_usdt, sent_eth)
    )
    assert len(await journal(context, "payout_network_fee")) == 2

    await deliver_webhooks(context)
    bodies = [json.loads(m.body) for m in receiver.received]
    assert sorted((b["order_id"], b["status"]) for b in bodies) == [
        ("po-eth", "paid"), ("po-eth", "process"), ("po-usdt", "paid"), ("po-usdt", "process")
    ]  # fmt: skip
    for message in receiver.received:
        verified = process_payout_webhook(message.body, api.merchant.payout_key)
        if verified.status == "paid":
            assert verified.is_final and verified.txid in txids
    [usdt_paid] = [b for b in bodies if (b["order_id"], b["status"]) == ("po-usdt", "paid")]
    assert (usdt_paid["txid"], usdt_paid["payer_amount"], usdt_paid["commission"]) == (
        txids[0], "50.00000000", "1.25000000"
    )  # fmt: skip
    await assert_ledger_ok(context)


async def test_a_hot_wallet_too_poor_waits_then_pays_once_funded(
    anvil, usdt, api, context, merchant, watcher, hot_wallet, payout_worker
):
    await fund_merchant(api, anvil, usdt, watcher, USDT="100")
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot, usdt_amount="10")  # no ETH for the fee yet
    since = anvil.block_number() + 1
    destination = new_address()
    created = await create_payout(api, "USDT", "50", destination, "po-big")

    await run_payouts(context, payout_worker)
    waiting = await payout_row(context, created["uuid"])
    assert (waiting.status, waiting.stage, waiting.txid, waiting.attempts) == (
        "process", "queued", None, 0
    )  # fmt: skip
    assert "holds 10.000000 USDT, 50 USDT are to be sent" in (waiting.last_error or "")
    assert waiting.next_attempt_at is not None and waiting.next_attempt_at > utcnow()

    fund_hot_wallet(anvil, usdt, hot, usdt_amount="100")
    await run_payouts(context, payout_worker)  # funded, but not due again yet
    assert (await payout_row(context, created["uuid"])).stage == "queued"
    await due_now(context, created["uuid"])
    await run_payouts(context, payout_worker)
    no_gas = await payout_row(context, created["uuid"])
    assert no_gas.stage == "queued" and "network fee" in (no_gas.last_error or "")
    assert anvil.w3.eth.get_transaction_count(hot) == 0  # nothing was sent meanwhile

    fund_hot_wallet(anvil, usdt, hot, eth="0.1")
    await due_now(context, created["uuid"])
    await run_payouts(context, payout_worker)
    anvil.mine(CONFIRMATIONS)
    await run_payouts(context, payout_worker)
    paid = await payout_row(context, created["uuid"])
    assert (paid.status, paid.stage, paid.attempts, paid.last_error) == ("paid", "done", 1, None)
    assert received(anvil, usdt, "USDT", destination) == units("50", USDT_DECIMALS)
    [tx] = transactions_from(anvil, hot, since)
    assert tx["hash"].to_0x_hex() == paid.txid
    assert await merchant_balance(context, merchant, "USDT") == Decimal("99") - Decimal("51.25")
    await assert_ledger_ok(context)


async def due_now(context: Context, payout_uuid: str) -> None:
    """Move the payout's retry time to now, as if its short wait had passed."""
    async with context.db.transaction() as session:
        await session.execute(
            update(Payout)
            .where(Payout.uuid == uuid.UUID(payout_uuid))
            .values(next_attempt_at=utcnow())
        )


# --------------------------------------------------------------------------- paydesk worker
class NodeRelay:
    """A JSON-RPC relay on 127.0.0.1 in front of the node. Every call is passed on, except
    `eth_sendRawTransaction`, which is recorded, passed on only if `forward_broadcast`,
    and never answered: the connection is held until `close` (at most `hold_seconds`),
    then closed."""

    def __init__(
        self, upstream: str, *, forward_broadcast: bool, hold_seconds: float = HOLD_SECONDS
    ) -> None:
        self.upstream = upstream
        self.forward_broadcast = forward_broadcast
        self.hold_seconds = hold_seconds
        self.broadcasts: list[str] = []
        #: What the node answered to each forwarded broadcast (none reached the worker).
        self.node_answers: list[dict[str, Any]] = []
        self.broadcast_seen = threading.Event()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _pass_on(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bytes(answer.read())

    def _hold(self, call: dict[str, Any], body: bytes) -> None:
        if self.forward_broadcast:
            self.node_answers.append(json.loads(self._pass_on(body)))
        self.broadcasts.append(str(call["params"][0]))
        self.broadcast_seen.set()
        self._release.wait(self.hold_seconds)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the worker's client expects

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = json.loads(body)
                if isinstance(call, dict) and call.get("method") == "eth_sendRawTransaction":
                    relay._hold(call, body)
                    self.close_connection = True
                    return
                answer = relay._pass_on(body)
                with contextlib.suppress(OSError):  # the worker may be gone (killed)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def worker_env(
    context: Context, node_url: str, catalogue_file: Path, data_dir: Path
) -> dict[str, str]:
    """`paydesk worker` on the test's database and master key (so the same hot wallet),
    eth only, polling fast and letting a dead worker's leases go after a second."""
    settings = context.settings
    assert settings.master_key is not None and settings.database_url is not None
    return paydesk_env(
        data_dir,
        settings.database_url,
        PAYDESK_MASTER_KEY=settings.master_key.get_secret_value(),
        PAYDESK_NETWORKS="eth",
        PAYDESK_CHAIN_NODES=json.dumps({"eth": node_url}),
        PAYDESK_CATALOGUE_FILE=str(catalogue_file),
        PAYDESK_WATCHER_POLL_SECONDS="0.2",
        PAYDESK_WATCHER_LEASE_SECONDS="1",
        PAYDESK_PAYOUT_POLL_SECONDS="0.2",
        # No sweeps: the payout is the only transaction the hot wallet signs here.
        PAYDESK_SWEEP_MIN_USD="1000000000",
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [PAYDESK, "worker"], env=env, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class Crash:
    #: Whether the node got the transaction before the worker died.
    node_has_it: bool
    currency: str
    #: The merchant's deposit, and the payout from it.
    funding: str
    amount: str
    #: False: the transaction waits in the mempool until the test mines it.
    automine: bool


CRASHES = [
    pytest.param(Crash(True, "USDT", funding="100", amount="50", automine=False),
                 id="after-broadcast"),
    pytest.param(Crash(False, "ETH", funding="0.5", amount="0.1", automine=True),
                 id="before-the-node"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("crash", CRASHES)
async def test_worker_killed_around_the_broadcast_sends_exactly_once(
    crash, anvil, usdt, api, context, merchant, watcher, hot_wallet, catalogue_file, tmp_path
):
    await fund_merchant(api, anvil, usdt, watcher, **{crash.currency: crash.funding})
    await watcher.release()  # the workers may read the chain too
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot, eth="1", usdt_amount="100")
    nonce_before = anvil.w3.eth.get_transaction_count(hot)
    since = anvil.block_number() + 1
    destination = new_address()
    created = await create_payout(api, crash.currency, crash.amount, destination, "po-crash")
    log = tmp_path / "worker.log"
    relay = NodeRelay(anvil.url, forward_broadcast=crash.node_has_it)
    processes: list[subprocess.Popen[bytes]] = []
    anvil.set_automine(crash.automine)
    try:
        first = start_worker(worker_env(context, relay.url, catalogue_file, tmp_path / "w1"), log)
        processes.append(first)
        deadline = time.monotonic() + 30
        while not relay.broadcast_seen.is_set():
            assert first.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no broadcast: {log.read_text()}"
            await asyncio.sleep(0.02)
        stored = await payout_row(context, created["uuid"])
        assert stored.stage == "signed"  # stored before the node was asked
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

        [raw] = relay.broadcasts
        txid = HexBytes(keccak(HexBytes(raw))).to_0x_hex()
        killed = await payout_row(context, created["uuid"])
        assert (killed.stage, killed.status, killed.txid, killed.signed_tx) == (
            "signed", "process", txid, raw
        )  # fmt: skip
        if crash.node_has_it:
            assert "result" in relay.node_answers[0], relay.node_answers
            assert anvil.w3.eth.get_transaction(txid)["blockNumber"] is None  # pending
        else:
            assert anvil.w3.eth.get_transaction_count(hot, "pending") == nonce_before

        second = start_worker(worker_env(context, anvil.url, catalogue_file, tmp_path / "w2"), log)
        processes.append(second)
        deadline = time.monotonic() + 30
        while (row := await payout_row(context, created["uuid"])).status != "paid":
            assert row.status == "process", (row.status, row.last_error, log.read_text())
            assert second.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"never paid: {row.stage}\n{log.read_text()}"
            anvil.mine()
            await asyncio.sleep(0.2)
        stop(second)
        output = log.read_text()
        assert "Traceback" not in output and "step_failed" not in output, output
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        relay.close()
        anvil.set_automine(True)

    paid = await payout_row(context, created["uuid"])
    assert (paid.stage, paid.txid, paid.attempts) == ("done", txid, 1)
    [tx] = transactions_from(anvil, hot, since)
    assert tx["hash"].to_0x_hex() == txid
    assert anvil.w3.eth.get_transaction_count(hot) == nonce_before + 1
    payer_amount = Decimal(str(created["payer_amount"]))
    decimals = USDT_DECIMALS if crash.currency == "USDT" else ETH_DECIMALS
    assert received(anvil, usdt, crash.currency, destination) == units(payer_amount, decimals)
    if crash.currency == "USDT":
        [log_entry] = token_transfers_to(anvil, usdt, destination, since)
        assert log_entry["transactionHash"].to_0x_hex() == txid
    else:
        assert tx["to"] == destination
    assert await journal(context, "payout") == [f"payout:{created['uuid']}:paid"]
    async with context.db.reader() as session:
        events = await session.scalars(
            select(WebhookEvent.payload)
            .where(WebhookEvent.topic == "payout.status")
            .order_by(WebhookEvent.id)
        )
        statuses = [event["status"] for event in events]
    assert statuses == ["process", "paid"]
    await assert_ledger_ok(context)


# --------------------------------------------------------------------------- lost answers
#: A base fee far above what the payout's transaction offers (it was signed at about 1 gwei).
FEE_SPIKE = 50 * 10**9


@contextlib.asynccontextmanager
async def worker_through(context: Context, node_url: str) -> AsyncIterator[PayoutWorker]:
    """The eth payout worker (same hot wallet, same lease owner as `payout_worker`) talking
    to the node at `node_url`."""
    network = context.catalogue.network("eth")
    assert network is not None
    settings = context.settings.model_copy(update={"chain_nodes": {"eth": node_url}})
    sender = build_sender(network, context.catalogue, settings, context.db, context.addresses.keys)
    try:
        yield PayoutWorker(context, network, sender, owner="tests")
    finally:
        await sender.close()


def set_base_fee(anvil: Anvil, wei_per_gas: int) -> None:
    """The next block's base fee, and that block."""
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(wei_per_gas))
    anvil.mine()


async def test_a_rebroadcast_refused_after_a_lost_answer_keeps_the_payout(
    anvil, usdt, api, context, merchant, watcher, hot_wallet, payout_worker
):
    """A stored transaction whose broadcast got no answer may have reached the node and
    its peers. If the node later forgets it and refuses it again (fees rose), it can still
    be mined from a peer's mempool: failing the payout would give the merchant back money
    that is about to leave. It must stay in flight until the same transaction goes out."""
    await fund_merchant(api, anvil, usdt, watcher, ETH="0.5")
    hot = hot_wallet.hot_address
    fund_hot_wallet(anvil, usdt, hot, eth="1")
    since = anvil.block_number() + 1
    destination = new_address()
    created = await create_payout(api, "ETH", "0.1", destination, "po-lost")
    base_fee = int(anvil.w3.eth.get_block("latest")["baseFeePerGas"])
    relay = NodeRelay(anvil.url, forward_broadcast=True, hold_seconds=0)
    anvil.set_automine(False)
    try:
        async with worker_through(context, relay.url) as lossy:
            await lossy.step()  # stored, handed to the node, the answer lost on the way
        signed = await payout_row(context, created["uuid"])
        assert signed.stage == "signed" and relay.broadcasts == [signed.signed_tx]
        assert "result" in relay.node_answers[0], relay.node_answers

        anvil.rpc("anvil_dropTransaction", signed.txid)  # the node restarts, its pool empty
        set_base_fee(anvil, FEE_SPIKE)
        await payout_worker.step()  # sent again, refused: its fee cap is below the base fee
        kept = await payout_row(context, created["uuid"])
        assert (kept.status, kept.stage, kept.txid) == ("process", "signed", signed.txid)
        assert "base fee" in (kept.last_error or "")
        assert await account_balance(context, AccountKind.PAYOUT_RESERVE, "ETH",
                                     owner=merchant.merchant_id) == Decimal("0.1015")  # fmt: skip

        set_base_fee(anvil, base_fee)  # the fees fall back: the same transaction goes out
        await run_payouts(context, payout_worker)
        anvil.mine(CONFIRMATIONS)
        await run_payouts(context, payout_worker)
    finally:
        relay.close()
        set_base_fee(anvil, base_fee)  # the node is the module's: leave it as it was
        anvil.set_automine(True)

    paid = await payout_row(context, created["uuid"])
    assert (paid.status, paid.txid, paid.attempts) == ("paid", signed.txid, 1)
    [tx] = transactions_from(anvil, hot, since)
    assert tx["hash"].to_0x_hex() == signed.txid
    assert received(anvil, usdt, "ETH", destination) == units("0.1", ETH_DECIMALS)
    assert await merchant_balance(context, merchant, "ETH") == Decimal("0.495") - Decimal("0.1015")
    assert await journal(context, "payout_release") == []
    await assert_ledger_ok(context)
