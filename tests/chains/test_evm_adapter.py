"""EvmAdapter against a real node (anvil): transfers, ranges, reorganisations, failures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from eth_utils import to_checksum_address

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import NATIVE_VALUE_INDEX, Block, ChainUnavailable
from paydesk.chains.evm import TRANSFER_TOPIC, ChainMismatch, EvmAdapter, units_to_amount
from tests.chains.anvil import Anvil
from tests.conftest import free_port


def new_address() -> str:
    return to_checksum_address(os.urandom(20))


@pytest.fixture(scope="module")
def usdt(anvil: Anvil) -> str:
    return anvil.deploy_token("USDT", 6)


@pytest.fixture
async def adapter(anvil: Anvil, usdt: str) -> AsyncIterator[EvmAdapter]:
    evm = EvmAdapter("eth", anvil.url, "ETH", {usdt: ("USDT", 6)}, chain_id=1)
    try:
        yield evm
    finally:
        await evm.close()


@contextmanager
def one_block(anvil: Anvil) -> Iterator[None]:
    """Transactions sent inside land together in one block, mined on leaving."""
    anvil.set_automine(False)
    try:
        yield
        anvil.mine()
    finally:
        anvil.set_automine(True)


def receipt(anvil: Anvil, txhash: str) -> Any:
    return anvil.w3.eth.get_transaction_receipt(txhash)


async def block_of(adapter: EvmAdapter, anvil: Anvil, txhash: str) -> Block:
    height = receipt(anvil, txhash)["blockNumber"]
    [block] = await adapter.blocks(height, height)
    return block


# --------------------------------------------------------------------------- transfers
async def test_native_transfer_is_seen_with_exact_amount(anvil: Anvil, adapter: EvmAdapter):
    to = new_address()
    txhash = anvil.send_native(to, 1_234_567_890_123_456_789)

    assert await adapter.tip() == anvil.block_number()
    block = await block_of(adapter, anvil, txhash)
    [transfer] = [t for t in block.transfers if t.to_address == to]
    assert transfer.txid == txhash
    assert transfer.output_index == NATIVE_VALUE_INDEX
    assert transfer.currency == "ETH"
    assert transfer.amount == Decimal("1.234567890123456789")
    assert str(transfer.amount) == "1.234567890123456789"
    assert transfer.from_address == anvil.address


async def test_token_transfer_is_seen_with_exact_amount(
    anvil: Anvil, adapter: EvmAdapter, usdt: str
):
    to = new_address()
    txhash = anvil.send_token(usdt, to, 1_500_001)

    block = await block_of(adapter, anvil, txhash)
    [transfer] = block.transfers
    assert transfer.txid == txhash
    assert transfer.output_index == receipt(anvil, txhash)["logs"][0]["logIndex"]
    assert transfer.currency == "USDT"
    assert transfer.amount == Decimal("1.500001")
    assert (transfer.to_address, transfer.from_address) == (to, anvil.address)


async def test_one_block_transfers_in_chain_order_with_log_indexes(
    anvil: Anvil, adapter: EvmAdapter, usdt: str
):
    alice, bob = new_address(), new_address()
    with one_block(anvil):
        native = anvil.send_native(alice, 10**18)
        first = anvil.send_token(usdt, alice, 2_000_000)
        second = anvil.send_token(usdt, bob, 3)

    block = await block_of(adapter, anvil, native)
    assert [(t.txid, t.output_index, t.to_address, t.amount) for t in block.transfers] == [
        (native, NATIVE_VALUE_INDEX, alice, Decimal(1)),
        (first, receipt(anvil, first)["logs"][0]["logIndex"], alice, Decimal(2)),
        (second, receipt(anvil, second)["logs"][0]["logIndex"], bob, Decimal("0.000003")),
    ]
    assert [t.output_index for t in block.transfers[1:]] == [0, 1]


async def test_amounts_beyond_28_digits_stay_exact(anvil: Anvil):
    big = anvil.deploy_token("BIG", 18, supply=10**30)
    to = new_address()
    units = 123_456_789_012_345_678_901_234_567_890_123_456
    txhash = anvil.send_token(big, to, units)

    evm = EvmAdapter("eth", anvil.url, "ETH", {big.lower(): ("BIG", 18)})
    try:
        block = await block_of(evm, anvil, txhash)
    finally:
        await evm.close()
    [transfer] = block.transfers
    assert transfer.amount == Decimal("123456789012345678.901234567890123456")
    assert units_to_amount(2**256 - 1, 0) == Decimal(2**256 - 1)


async def test_other_contracts_and_zero_value_transactions_are_ignored(
    anvil: Anvil, adapter: EvmAdapter
):
    other = anvil.deploy_token("OTHER", 6)
    txhash = anvil.send_token(other, new_address(), 5)
    zero = anvil.send_native(new_address(), 0)

    assert (await block_of(adapter, anvil, txhash)).transfers == []
    assert (await block_of(adapter, anvil, zero)).transfers == []


# --------------------------------------------------------------------------- ranges
async def test_range_read_returns_linked_blocks_in_order(anvil: Anvil, adapter: EvmAdapter):
    start = anvil.block_number() + 1
    anvil.mine(50)
    end = start + 49

    headers = await adapter.headers(start, end)
    blocks = await adapter.blocks(start, end)

    assert [h.height for h in headers] == list(range(start, end + 1))
    assert [b.header for b in blocks] == headers
    assert headers[0].parent_hash == anvil.w3.eth.get_block(start - 1)["hash"].to_0x_hex()
    for parent, child in pairwise(headers):
        assert child.parent_hash == parent.hash
    for header in headers:
        assert header.hash == anvil.w3.eth.get_block(header.height)["hash"].to_0x_hex()
        assert header.hash == header.hash.lower()


async def test_range_read_in_several_batches(anvil: Anvil, usdt: str):
    evm = EvmAdapter("eth", anvil.url, "ETH", {usdt: ("USDT", 6)}, batch_size=7)
    try:
        anvil.mine(20)
        tip = anvil.block_number()
        assert [b.header.height for b in await evm.blocks(tip - 19, tip)] == list(
            range(tip - 19, tip + 1)
        )
    finally:
        await evm.close()


async def test_range_past_the_tip_is_cut_short(anvil: Anvil, adapter: EvmAdapter):
    tip = anvil.block_number()
    assert [h.height for h in await adapter.headers(tip - 2, tip + 10)] == [tip - 2, tip - 1, tip]
    assert [b.header.height for b in await adapter.blocks(tip, tip + 3)] == [tip]
    assert await adapter.headers(tip + 1, tip + 5) == []
    assert await adapter.blocks(tip + 1, tip + 5) == []
    assert await adapter.blocks(5, 4) == []


# --------------------------------------------------------------------------- reorganisations
async def test_reorg_changes_the_hash_and_drops_the_token_transfer(
    anvil: Anvil, adapter: EvmAdapter, usdt: str
):
    to = new_address()
    txhash = anvil.send_token(usdt, to, 42)
    height = anvil.block_number()
    [before] = await adapter.blocks(height, height)
    assert [t.txid for t in before.transfers] == [txhash]

    # Replace the block with one paying someone else in ETH, from the same nonce.
    other = new_address()
    replacement = anvil.sign_native(other, 7, nonce=anvil.nonce(height - 1))
    anvil.reorg(1, [(replacement, 0)])

    assert anvil.block_number() == height
    [after] = await adapter.blocks(height, height)
    assert after.header.hash != before.header.hash
    assert after.header.parent_hash == before.header.parent_hash
    assert [(t.to_address, t.currency, t.amount) for t in after.transfers] == [
        (other, "ETH", Decimal("0.000000000000000007"))
    ]
    assert anvil.token_balance(usdt, to) == 0


async def test_chain_moving_between_blocks_and_logs_is_unavailable(
    anvil: Anvil, adapter: EvmAdapter, usdt: str, monkeypatch: pytest.MonkeyPatch
):
    anvil.send_token(usdt, new_address(), 1)
    height = anvil.block_number()
    # The same kind of block again, with another token transfer: only the hashes differ.
    replacement = anvil.sign_token_transfer(usdt, new_address(), 2, nonce=anvil.nonce(height - 1))
    read_logs = adapter._token_transfers

    async def reorg_first(blocks: list[dict[str, Any]]) -> Any:
        anvil.reorg(1, [(replacement, 0)])
        return await read_logs(blocks)

    monkeypatch.setattr(adapter, "_token_transfers", reorg_first)
    with pytest.raises(ChainUnavailable, match="the chain changed"):
        await adapter.blocks(height, height)

    monkeypatch.undo()
    [block] = await adapter.blocks(height, height)
    assert [t.amount for t in block.transfers] == [Decimal("0.000002")]


async def test_log_of_another_block_than_the_one_read_is_unavailable(
    anvil: Anvil, adapter: EvmAdapter, usdt: str
):
    anvil.send_token(usdt, new_address(), 1)
    anvil.mine()
    height = anvil.block_number()
    blocks = await adapter._block_batches(height - 1, height, False)
    assert blocks is not None
    # As if block height-1 had been read from another branch than the logs (the newest
    # block, which the adapter re-reads with the logs, is unchanged).
    blocks[0] = {**blocks[0], "hash": bytes(32)}
    with pytest.raises(ChainUnavailable, match="belongs to another block"):
        await adapter._token_transfers(blocks)


# --------------------------------------------------------------------------- addresses, node
def test_normalize_address():
    adapter = EvmAdapter("eth", "http://127.0.0.1:1", "ETH", {})
    checksummed = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
    assert adapter.normalize_address(checksummed) == checksummed
    assert adapter.normalize_address(checksummed.lower()) == checksummed
    assert adapter.normalize_address("0x" + checksummed[2:].upper()) == checksummed
    assert adapter.normalize_address("0xdac17F958D2ee523a2206206994597C13D831ec7") is None
    assert adapter.normalize_address(checksummed[2:]) is None
    assert adapter.normalize_address(checksummed[:-1]) is None
    assert adapter.normalize_address(checksummed + "0") is None
    assert adapter.normalize_address("0x" + "g" * 40) is None
    assert adapter.normalize_address(f" {checksummed}") is None
    assert adapter.normalize_address("") is None


async def test_pending_is_empty():
    assert await EvmAdapter("eth", "http://127.0.0.1:1", "ETH", {}).pending() == []


async def test_chain_id_is_checked(anvil: Anvil, usdt: str, adapter: EvmAdapter):
    assert await adapter.check_chain_id() == 1
    wrong = EvmAdapter("bsc", anvil.url, "BNB", {}, chain_id=56)
    try:
        with pytest.raises(ChainMismatch, match=r"chain id 1, .* configured for 56"):
            await wrong.check_chain_id()
    finally:
        await wrong.close()


async def test_node_down_is_unavailable():
    evm = EvmAdapter("eth", f"http://127.0.0.1:{free_port()}", "ETH", {}, chain_id=1)
    try:
        with pytest.raises(ChainUnavailable):
            await evm.tip()
        with pytest.raises(ChainUnavailable):
            await evm.headers(0, 10)
        with pytest.raises(ChainUnavailable):
            await evm.blocks(0, 10)
        with pytest.raises(ChainUnavailable):
            await evm.check_chain_id()
    finally:
        await evm.close()


def test_from_catalogue():
    def service(currency: str, decimals: int, contract: str | None = None, network="eth"):
        return Service(
            network,
            currency,
            decimals,
            Decimal(1),
            Decimal(10**6),
            Decimal(0),
            Decimal(0),
            contract=contract,
        )

    usdt = "0xdac17f958d2ee523a2206206994597c13d831ec7"
    eth = Network("eth", "Ethereum", "ETH", "evm", 12, chain_id=1)
    services = [
        service("ETH", 18),
        service("USDT", 6, usdt),
        service("USDC", 6, "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
        service("BNB", 18, network="bsc"),
    ]

    evm = EvmAdapter.from_catalogue(eth, services, "http://127.0.0.1:1")
    assert (evm.network, evm.native, evm.native_decimals, evm.chain_id) == ("eth", "ETH", 18, 1)
    assert evm.tokens == {
        to_checksum_address(usdt): ("USDT", 6),
        "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48": ("USDC", 6),
    }
    with pytest.raises(ValueError, match="not an EVM network"):
        EvmAdapter.from_catalogue(
            Network("btc", "Bitcoin", "BTC", "utxo", 2), [], "http://127.0.0.1:1"
        )


def test_transfer_topic_is_the_erc20_event():
    from eth_utils import keccak

    assert keccak(text="Transfer(address,address,uint256)").hex() == TRANSFER_TOPIC[2:]
