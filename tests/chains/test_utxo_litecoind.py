"""The Bitcoin-family adapter against a real Litecoin Core node in regtest, on both
databases: blocks and the mempool as the node decodes them, deposits at 0, 1 and N
confirmations, a reorganisation that takes back a credited deposit, and a watcher that
restarts without missing a block."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paydesk.chains.adapter import ChainMismatch
from paydesk.chains.registry import build_adapter
from paydesk.chains.utxo import UtxoAdapter
from paydesk.chains.utxo_addresses import UtxoAddressFormat
from paydesk.context import Context
from paydesk.ledger.check import check_ledger
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

#: Each test starts a real node: seconds each.
pytestmark = pytest.mark.slow

CONFIRMATIONS = 3


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Litecoind]:
    """A fresh regtest chain per test: 0.3 s to start, 101 blocks mined."""
    with litecoind(tmp_path / "litecoind") as started:
        yield started


@pytest.fixture
def settings_overrides(node: Litecoind, tmp_path: Path) -> dict[str, Any]:
    catalogue = tmp_path / "catalogue.toml"
    catalogue.write_text(REGTEST_CATALOGUE)
    return {"networks": ["ltc"], "chain_nodes": {"ltc": node.url}, "catalogue_file": catalogue}


@pytest.fixture
async def adapter(context: Context) -> AsyncIterator[UtxoAdapter]:
    network = context.catalogue.network("ltc")
    built = build_adapter(network, context.catalogue, context.settings, context.db)
    assert isinstance(built, UtxoAdapter)
    yield built
    await built.close()


# ---------------------------------------------------------------------------- the adapter
async def test_blocks_and_mempool_as_the_node_decodes_them(node, adapter):
    await adapter.check_node()
    fmt = adapter.address_format
    address = node.rpc("getnewaddress", "", "bech32")
    assert address.startswith("rltc1") and fmt.normalize(address) == address
    legacy = node.rpc("getnewaddress", "", "legacy")
    assert fmt.normalize(legacy) == legacy
    txid = node.send(address, "1.23456789")

    [seen] = [t for t in await adapter.pending() if t.to_address == address]
    assert (seen.txid, seen.amount, seen.currency) == (txid, Decimal("1.23456789"), "LTC")
    legacy_txid = node.send(legacy, "0.1")
    assert {t.txid for t in await adapter.pending()} >= {txid, legacy_txid}

    [block_hash] = node.mine(1)
    tip = await adapter.tip()
    [block] = await adapter.blocks(tip, tip)
    assert block.header.hash == block_hash
    assert block.header.parent_hash == node.rpc("getblockheader", block_hash)["previousblockhash"]
    paid = {(t.to_address, t.amount) for t in block.transfers}
    assert {(address, Decimal("1.23456789")), (legacy, Decimal("0.1"))} <= paid
    # The block reward is not a payment.
    assert not any(t.to_address == node.miner for t in block.transfers)
    assert await adapter.pending() == []

    headers = await adapter.headers(tip - 2, tip + 5)  # the chain is shorter: what exists
    assert [h.height for h in headers] == [tip - 2, tip - 1, tip]
    assert all(b.parent_hash == a.hash for a, b in itertools.pairwise(headers))


async def test_a_node_of_another_chain_is_refused(node, context):
    network = context.catalogue.network("ltc")
    mainnet = UtxoAdapter("ltc", node.url, "LTC", UtxoAddressFormat.of(network),
                          node_chain="main")  # fmt: skip
    try:
        with pytest.raises(ChainMismatch):
            await mainnet.check_node()
    finally:
        await mainnet.close()


async def test_deposit_addresses_are_the_nodes_own_spelling(node, context, merchant):
    invoice = await ltc_invoice(context, merchant, "addr")
    assert invoice.address.startswith("rltc1q")
    assert node.rpc("validateaddress", invoice.address)["isvalid"] is True
    # The mainnet spelling of the same key is another network's address here.
    mainnet = UtxoAddressFormat(bech32_hrp="ltc", p2pkh_version=48, p2sh_version=50)
    assert mainnet.normalize(invoice.address) is None


# ---------------------------------------------------------------------------- deposits
async def test_a_deposit_at_0_1_and_n_confirmations(node, context, merchant, adapter):
    watcher = new_watcher(context, adapter)
    await follow(watcher)
    invoice = await ltc_invoice(context, merchant, "o1")
    txid = node.send(invoice.address, invoice.payer_amount)

    await follow(watcher)  # in the mempool: seen, not credited
    assert (await reread(context, invoice)).status == "confirm_check"
    [deposit] = await deposits(context)
    assert (deposit.txid, deposit.status, deposit.block_height) == (txid, "seen", None)

    node.mine(1)  # 1 of 3
    await follow(watcher)
    assert (await reread(context, invoice)).status == "confirm_check"
    assert await balance(context, merchant) == 0

    node.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    paid = await reread(context, invoice)
    assert paid.status == "paid" and paid.txid == txid
    assert await balance(context, merchant) == paid.merchant_amount
    [deposit] = await deposits(context)
    assert deposit.status == "credited" and deposit.amount == invoice.payer_amount
    async with context.db.reader() as session:
        assert (await check_ledger(session)).ok


async def test_a_reorganisation_takes_back_a_credited_deposit(node, context, merchant, adapter):
    watcher = new_watcher(context, adapter)
    await follow(watcher)
    invoice = await ltc_invoice(context, merchant, "o2")
    txid = node.send(invoice.address, invoice.payer_amount)
    [block_hash] = node.mine(1)
    node.mine(CONFIRMATIONS - 1)
    await follow(watcher)
    assert (await reread(context, invoice)).status == "paid"
    credited = await balance(context, merchant)
    assert credited > 0

    # The recipe: invalidate the payment's block, keep the transaction out of the next
    # blocks, and mine a longer branch. The payment is back in the mempool, unconfirmed.
    node.orphan(block_hash, [txid])
    assert node.rpc("gettransaction", txid)["confirmations"] == 0
    await follow(watcher)
    # Reversed, then seen again in the mempool: the same deposit, waiting once more.
    [deposit] = await deposits(context)
    assert deposit.status == "seen" and deposit.block_height is None
    assert await ledger_kinds(context) == ["deposit", "deposit_reversal"]
    assert await balance(context, merchant) == 0
    back = await reread(context, invoice)
    assert back.status in ("check", "confirm_check")
    async with context.db.reader() as session:
        assert (await check_ledger(session)).ok

    # Mined again (its priority restored), it is credited again, once.
    node.rpc("prioritisetransaction", txid, 0, 100_000_000)
    node.mine(CONFIRMATIONS)
    await follow(watcher)
    assert (await reread(context, invoice)).status == "paid"
    assert await balance(context, merchant) == credited
    assert await ledger_kinds(context) == ["deposit", "deposit_reversal", "deposit"]


async def test_a_restarted_watcher_misses_no_block(node, context, merchant, adapter):
    first = new_watcher(context, adapter)
    await follow(first)
    await first.release()
    invoices = [await ltc_invoice(context, merchant, f"r{n}", "0.1") for n in range(3)]
    # While no watcher runs: payments in three different blocks, then more blocks.
    for invoice in invoices:
        node.send(invoice.address, invoice.payer_amount)
        node.mine(1)
    node.mine(CONFIRMATIONS)

    second = new_watcher(context, adapter)
    await follow(second)
    for invoice in invoices:
        assert (await reread(context, invoice)).status == "paid"
    assert len(await deposits(context)) == 3
    await follow(second)  # nothing more: each payment credited once
    assert [d.status for d in await deposits(context)] == ["credited"] * 3
