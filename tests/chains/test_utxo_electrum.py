"""The Bitcoin-family adapter through a real Electrum server (ElectrumX) over a real Litecoin
Core node in regtest, on both databases: the mempool and blocks as the server reports
them for the watched addresses (each mined one proven in its block), deposits at 0, 1 and
N confirmations, a reorganisation that takes back a credited deposit, a watcher restart
that misses nothing, the watch list the database gives, and a server of another chain
refused."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from paydesk.chains.adapter import ChainMismatch, ChainUnavailable, Transfer
from paydesk.chains.electrum import ElectrumUtxoAdapter, WatchList, database_watch_list
from paydesk.chains.electrum_client import ElectrumClient, is_electrum_url
from paydesk.chains.models import DepositAddress
from paydesk.chains.registry import NetworkNotConfigured, build_adapter, build_sender
from paydesk.chains.utxo import UtxoAdapter
from paydesk.chains.utxo_addresses import UtxoAddressFormat
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.ledger.check import check_ledger
from tests.conftest import free_port
from tests.electrumx import ElectrumX, electrumx, synced
from tests.evm import follow
from tests.litecoin import (
    REGTEST_CATALOGUE,
    Litecoind,
    balance,
    deposits,
    ledger_kinds,
    litecoind,
    ltc_invoice,
    new_watcher,
    reread,
)

#: Each test starts a real node and an Electrum server: seconds each.
pytestmark = pytest.mark.slow

CONFIRMATIONS = 3
REGTEST = UtxoAddressFormat(bech32_hrp="rltc", p2pkh_version=111, p2sh_version=58)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Litecoind]:
    """A fresh regtest chain per test: 0.3 s to start, 101 blocks mined."""
    with litecoind(tmp_path / "litecoind") as started:
        yield started


@pytest.fixture
def server(node: Litecoind, tmp_path: Path) -> Iterator[ElectrumX]:
    """ElectrumX indexing the test's node, with its own database directory."""
    with electrumx(node, tmp_path / "electrumx") as started:
        yield started


@pytest.fixture
def genesis(node: Litecoind) -> str:
    return node.rpc("getblockhash", 0)


@pytest.fixture
def settings_overrides(server: ElectrumX, genesis: str, tmp_path: Path) -> dict[str, Any]:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(REGTEST_CATALOGUE + f'genesis_id = "{genesis}"\n')
    return {"networks": ["ltc"], "chain_nodes": {"ltc": server.url}, "catalogue_file": catalogue}


@pytest.fixture
async def adapter(context: Context) -> AsyncIterator[ElectrumUtxoAdapter]:
    built = build_ltc_adapter(context)
    yield built
    await built.close()


def build_ltc_adapter(context: Context) -> ElectrumUtxoAdapter:
    network = context.catalogue.network("ltc")
    built = build_adapter(network, context.catalogue, context.settings, context.db)
    assert isinstance(built, ElectrumUtxoAdapter)
    return built


def watching(*addresses: str) -> WatchList:
    async def watch_list() -> set[str]:
        return set(addresses)

    return watch_list


def count_requests(adapter: ElectrumUtxoAdapter, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the adapter's requests by method, as the server receives them."""
    calls: Counter[str] = Counter()
    send = adapter.client.request

    async def counted(method: str, *params: Any) -> Any:
        calls[method] += 1
        return await send(method, *params)

    monkeypatch.setattr(adapter.client, "request", counted)
    return calls


async def caught_up(
    server: ElectrumX,
    node: Litecoind,
    adapter: ElectrumUtxoAdapter,
    mempool: tuple[str, ...] = (),
) -> None:
    """The server has the node's chain (and `mempool`), and the adapter its tip: the
    server announces a new tip to it up to a second later (ElectrumX pads its traffic)."""
    await synced(server, node, mempool)
    height = node.rpc("getblockcount")
    deadline = time.monotonic() + 10
    while await adapter.tip() != height:
        assert time.monotonic() < deadline, "the adapter never saw the new tip"
        await asyncio.sleep(0.05)


async def pending_soon(adapter: ElectrumUtxoAdapter, seconds: float = 5) -> list[Transfer]:
    """The mempool transfers once any show: between reads of blocks, the mempool is known
    from the server's notifications, which arrive up to a second after its index has the
    transaction."""
    deadline = time.monotonic() + seconds
    while not (found := await adapter.pending()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


# ---------------------------------------------------------------------------- the adapter
async def test_mempool_and_blocks_as_the_server_reports_them(node, server, genesis, monkeypatch):
    address = node.rpc("getnewaddress", "", "bech32")
    legacy = node.rpc("getnewaddress", "", "legacy")
    unwatched = node.rpc("getnewaddress", "", "bech32")
    adapter = ElectrumUtxoAdapter(
        "ltc", server.url, "LTC", REGTEST, watching(address, legacy), genesis_hash=genesis
    )
    try:
        await adapter.check_node()
        txid = node.send(address, "1.23456789")
        legacy_txid = node.send(legacy, "0.1")
        other_txid = node.send(unwatched, "0.2")
        await caught_up(server, node, adapter, (txid, legacy_txid, other_txid))

        pending = await adapter.pending()
        [seen] = [t for t in pending if t.to_address == address]
        assert (seen.txid, seen.amount, seen.currency) == (txid, Decimal("1.23456789"), "LTC")
        assert isinstance(seen.amount, Decimal)
        assert {t.txid for t in pending} == {txid, legacy_txid}  # only watched addresses'

        [block_hash] = node.mine(1)
        await caught_up(server, node, adapter)
        tip = await adapter.tip()
        assert tip == node.rpc("getblockcount")
        [block] = await adapter.blocks(tip, tip)
        assert block.header.hash == block_hash
        expected = node.rpc("getblockheader", block_hash)
        assert block.header.parent_hash == expected["previousblockhash"]
        assert block.header.timestamp == expected["time"]
        paid = {(t.to_address, t.amount) for t in block.transfers}
        assert {(address, Decimal("1.23456789")), (legacy, Decimal("0.1"))} <= paid
        # In chain order, as the merkle branches place them.
        in_block = node.rpc("getblock", block_hash)["tx"]
        order = list(dict.fromkeys(t.txid for t in block.transfers))
        assert order == [txid for txid in in_block if txid in order]
        assert other_txid not in {t.txid for t in block.transfers}
        # The block reward is not a payment.
        assert not any(t.to_address == node.miner for t in block.transfers)
        assert await adapter.pending() == []

        headers = await adapter.headers(tip - 2, tip + 5)  # the chain is shorter: what exists
        assert [h.height for h in headers] == [tip - 2, tip - 1, tip]
        assert all(b.parent_hash == a.hash for a, b in itertools.pairwise(headers))
        assert [h.hash for h in headers] == [
            node.rpc("getblockhash", h) for h in range(tip - 2, tip + 1)
        ]

        # Unchanged addresses: the statuses are asked, the histories and transactions not.
        calls = count_requests(adapter, monkeypatch)
        node.mine(1)
        await caught_up(server, node, adapter)
        assert [b.transfers for b in await adapter.blocks(tip + 1, tip + 1)] == [[]]
        assert calls["blockchain.scripthash.subscribe"] == 2  # reading blocks asks anew
        assert await adapter.pending() == []  # the mempool relies on notifications
        assert calls["blockchain.scripthash.subscribe"] == 2
        assert calls["blockchain.scripthash.get_history"] == 0
        assert calls["blockchain.transaction.get"] == 0
        assert calls["blockchain.headers.subscribe"] == 0  # the tip is announced
        # A new payment: only that address's history is fetched again, once the server
        # has announced its new status (a notification, so within a poll or two).
        again = node.send(address, "0.3")
        await caught_up(server, node, adapter, (again,))
        [fresh] = [t for t in await pending_soon(adapter) if t.to_address == address]
        assert (fresh.txid, fresh.amount) == (again, Decimal("0.3"))
        assert calls["blockchain.scripthash.get_history"] == 1
    finally:
        await adapter.close()


async def test_a_transaction_the_header_does_not_hold_is_refused(node, server, monkeypatch):
    address = node.rpc("getnewaddress", "", "bech32")
    adapter = ElectrumUtxoAdapter("ltc", server.url, "LTC", REGTEST, watching(address))
    try:
        node.send(address, "0.5")
        node.mine(1)
        await caught_up(server, node, adapter)
        tip = await adapter.tip()
        send = adapter.client.request

        async def lying(method: str, *params: Any) -> Any:
            answer = await send(method, *params)
            if method == "blockchain.transaction.get_merkle":
                answer = {**answer, "merkle": [*reversed(answer["merkle"]), "00" * 32]}
            return answer

        monkeypatch.setattr(adapter.client, "request", lying)
        with pytest.raises(ChainUnavailable, match="proof"):
            await adapter.blocks(tip, tip)
    finally:
        await adapter.close()


async def test_a_server_of_another_chain_is_refused(node, server, genesis, monkeypatch):
    mainnet = ElectrumUtxoAdapter(
        "ltc", server.url, "LTC", REGTEST, watching(),
        genesis_hash="12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
    )  # fmt: skip
    regtest = ElectrumUtxoAdapter(
        "ltc", server.url, "LTC", REGTEST, watching(), genesis_hash=genesis
    )
    try:
        with pytest.raises(ChainMismatch, match="genesis"):
            await mainnet.check_node()
        await regtest.check_node()
        # Without a configured genesis, block 0 must still hash (double SHA-256) to the
        # genesis the server names: a chain with other block hashes (Dash's X11) is refused.
        unconfigured = ElectrumUtxoAdapter("ltc", server.url, "LTC", REGTEST, watching())
        send = unconfigured.client.request

        async def x11_features(method: str, *params: Any) -> Any:
            answer = await send(method, *params)
            return {**answer, "genesis_hash": "ab" * 32} if method == "server.features" else answer

        monkeypatch.setattr(unconfigured.client, "request", x11_features)
        with pytest.raises(ChainMismatch, match="double SHA-256"):
            await unconfigured.check_node()
        await unconfigured.close()
    finally:
        await mainnet.close()
        await regtest.close()


async def test_an_unreachable_server_is_unavailable():
    adapter = ElectrumUtxoAdapter(
        "ltc", f"tcp://127.0.0.1:{free_port()}", "LTC", REGTEST, watching(), timeout=5
    )
    try:
        with pytest.raises(ChainUnavailable):
            await adapter.tip()
    finally:
        await adapter.close()


async def test_a_stopped_server_is_unavailable_then_reconnected(node, server):
    client = ElectrumClient(server.url, timeout=5)
    try:
        assert (await client.request("blockchain.headers.subscribe"))["height"] == 101
        assert client.generation == 1
        server.process.terminate()
        server.process.wait(timeout=20)
        with pytest.raises(ChainUnavailable):
            await client.request("blockchain.headers.subscribe")
    finally:
        await client.close()


def test_electrum_urls_select_the_backend():
    assert is_electrum_url("tcp://127.0.0.1:50001")
    assert is_electrum_url("ssl://electrum.example:50002")
    assert not is_electrum_url("http://user:pass@127.0.0.1:9332")
    with pytest.raises(ValueError):
        ElectrumClient("tcp://127.0.0.1")  # no port


# ---------------------------------------------------------------------------- configuration
async def test_the_registry_builds_it_and_payouts_need_the_node(node, context):
    network = context.catalogue.network("ltc")
    adapter = build_ltc_adapter(context)
    try:
        await adapter.check_node()
        assert adapter.genesis_hash == network.genesis_id
    finally:
        await adapter.close()
    # An http:// URL keeps the node's JSON-RPC.
    with_node = context.settings.model_copy(update={"chain_nodes": {"ltc": node.url}})
    by_node = build_adapter(network, context.catalogue, with_node, context.db)
    try:
        assert isinstance(by_node, UtxoAdapter)
    finally:
        await by_node.close()
    with pytest.raises(NetworkNotConfigured, match="JSON-RPC"):
        build_sender(
            network, context.catalogue, context.settings, context.db, context.addresses.keys
        )


async def test_the_watch_list_from_the_database(context, merchant):
    watch_list = database_watch_list(context.db, "ltc")
    open_invoice = await ltc_invoice(context, merchant, "open")
    settled = await ltc_invoice(context, merchant, "settled")
    recent = await ltc_invoice(context, merchant, "recent")
    async with context.db.transaction() as session:
        wallet = await context.wallets.create(
            session, merchant.merchant_id, currency="LTC", network="ltc", order_id="static"
        )
        long_ago = utcnow() - timedelta(days=8)
        await session.execute(
            update(Invoice)
            .where(Invoice.id.in_([settled.id, recent.id]))
            .values(status="paid", updated_at=utcnow())
        )
        await session.execute(
            update(Invoice).where(Invoice.id == settled.id).values(updated_at=long_ago)
        )
        # The wallet's address too was handed out long ago: it stays watched as a wallet.
        await session.execute(
            update(DepositAddress)
            .where(DepositAddress.address.in_([settled.address, wallet.wallet.address]))
            .values(assigned_at=long_ago)
        )
    watched = await watch_list()
    assert watched == {open_invoice.address, recent.address, wallet.wallet.address}


# ---------------------------------------------------------------------------- deposits
async def test_a_deposit_at_0_1_and_n_confirmations(node, server, context, merchant, adapter):
    watcher = new_watcher(context, adapter)
    await follow(watcher)
    invoice = await ltc_invoice(context, merchant, "o1")
    txid = node.send(invoice.address, invoice.payer_amount)
    await caught_up(server, node, adapter, (txid,))

    await follow(watcher)  # in the mempool: seen, not credited
    assert (await reread(context, invoice)).status == "confirm_check"
    [deposit] = await deposits(context)
    assert (deposit.txid, deposit.status, deposit.block_height) == (txid, "seen", None)

    node.mine(1)  # 1 of 3
    await caught_up(server, node, adapter)
    await follow(watcher)
    assert (await reread(context, invoice)).status == "confirm_check"
    [deposit] = await deposits(context)
    assert deposit.block_height == node.rpc("getblockcount")
    assert await balance(context, merchant) == 0

    node.mine(CONFIRMATIONS - 1)
    await caught_up(server, node, adapter)
    await follow(watcher)
    paid = await reread(context, invoice)
    assert paid.status == "paid" and paid.txid == txid
    assert await balance(context, merchant) == paid.merchant_amount
    [deposit] = await deposits(context)
    assert deposit.status == "credited" and deposit.amount == invoice.payer_amount
    async with context.db.reader() as session:
        assert (await check_ledger(session)).ok


async def test_a_reorganisation_takes_back_a_credited_deposit(
    node, server, context, merchant, adapter
):
    watcher = new_watcher(context, adapter)
    await follow(watcher)
    invoice = await ltc_invoice(context, merchant, "o2")
    txid = node.send(invoice.address, invoice.payer_amount)
    [block_hash] = node.mine(1)
    node.mine(CONFIRMATIONS - 1)
    await caught_up(server, node, adapter)
    await follow(watcher)
    assert (await reread(context, invoice)).status == "paid"
    credited = await balance(context, merchant)
    assert credited > 0

    # The payment's block is replaced by a longer branch without it: back in the mempool.
    node.orphan(block_hash, [txid])
    assert node.rpc("gettransaction", txid)["confirmations"] == 0
    await caught_up(server, node, adapter, (txid,))
    await follow(watcher)
    # Reversed, then seen again in the mempool: the same deposit, waiting once more.
    [deposit] = await deposits(context)
    assert deposit.status == "seen" and deposit.block_height is None
    assert await ledger_kinds(context) == ["deposit", "deposit_reversal"]
    assert await balance(context, merchant) == 0
    assert (await reread(context, invoice)).status in ("check", "confirm_check")
    async with context.db.reader() as session:
        assert (await check_ledger(session)).ok

    # Mined again (its priority restored), it is credited again, once.
    node.rpc("prioritisetransaction", txid, 0, 100_000_000)
    node.mine(CONFIRMATIONS)
    await caught_up(server, node, adapter)
    await follow(watcher)
    assert (await reread(context, invoice)).status == "paid"
    assert await balance(context, merchant) == credited
    assert await ledger_kinds(context) == ["deposit", "deposit_reversal", "deposit"]


async def test_a_restarted_watcher_misses_no_payment(node, server, context, merchant, adapter):
    first = new_watcher(context, adapter)
    await follow(first)
    await first.release()
    await adapter.close()
    invoices = [await ltc_invoice(context, merchant, f"r{n}", "0.1") for n in range(3)]
    # While no watcher runs: payments in three different blocks, then more blocks.
    for invoice in invoices:
        node.send(invoice.address, invoice.payer_amount)
        node.mine(1)
    node.mine(CONFIRMATIONS)
    await synced(server, node)

    restarted = build_ltc_adapter(context)  # a new process: nothing cached, new connection
    try:
        second = new_watcher(context, restarted)
        await follow(second)
        for invoice in invoices:
            assert (await reread(context, invoice)).status == "paid"
        assert len(await deposits(context)) == 3
        await follow(second)  # nothing more: each payment credited once
        assert [d.status for d in await deposits(context)] == ["credited"] * 3
    finally:
        await restarted.close()
