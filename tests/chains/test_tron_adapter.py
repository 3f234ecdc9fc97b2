"""TronAdapter against a scripted TRON node speaking java-tron's HTTP API (tests/tron_api.py):
transfers, headers, solidity, reorganisations, addresses, node checks, failures."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from itertools import pairwise
from typing import Any

import base58
import httpx
import pytest
from tronpy.keys import PrivateKey, keccak256
from tronpy.proto import calculate_txid_from_raw_data

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.adapter import NATIVE_VALUE_INDEX, ChainMismatch, ChainUnavailable
from paydesk.chains.tron import (
    MAINNET_GENESIS,
    NILE_GENESIS,
    TRANSFER_TOPIC,
    TronAdapter,
    normalize_tron_address,
)
from tests.conftest import free_port
from tests.tron_api import (
    USDT,
    Outcome,
    TronApi,
    TronChain,
    key_address,
    load_fixture,
    to_hex,
    transfer_log,
    word,
)

#: Another TRC-20 contract, not configured: its transfers are nobody's business here.
OTHER_TOKEN = "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8"
MULTISEND = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
BROKEN = "TNUC9Qb1rRpS5CbWLmNMxXBjyFoydXjWFR"


def new_key() -> PrivateKey:
    return PrivateKey.random()


def new_address() -> str:
    return key_address(new_key())


@pytest.fixture
def node() -> Iterator[TronApi]:
    with TronApi() as api:
        yield api


@pytest.fixture
async def adapter(node: TronApi) -> AsyncIterator[TronAdapter]:
    tron = TronAdapter("tron", node.url, {USDT: ("USDT", 6)})
    try:
        yield tron
    finally:
        await tron.close()


def sun(trx: str) -> int:
    return int(Decimal(trx) * 10**6)


# --------------------------------------------------------------------------- the node's shapes
def test_tronpy_computes_the_txids_the_node_documents():
    """The txid is the SHA-256 of the protobuf raw data: tronpy's offline serialization
    gives the documented txIDs of real Nile transactions, so the scripted node's signature
    check (and the sender's txids) agree with java-tron's."""
    for name in ("createtransaction", "triggerconstantcontract"):
        body = load_fixture(name)
        tx = body.get("transaction", body)
        assert calculate_txid_from_raw_data(tx["raw_data"]) == tx["txID"]
        assert hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest() == tx["txID"]


def shape(value: Any) -> str:
    return (
        "number" if isinstance(value, int) and not isinstance(value, bool) else type(value).__name__
    )


def assert_shape(ours: Any, documented: Any, extra: frozenset[str], path: str = "") -> None:
    """Our body uses the documented field names and JSON types: every key is in the
    documented example or among the fields its table lists (`extra`), with the same type
    as in the example."""
    assert shape(ours) == shape(documented), f"{path}: {ours!r} vs {documented!r}"
    if isinstance(ours, dict):
        for key, value in ours.items():
            if key in documented:
                assert_shape(value, documented[key], extra, f"{path}.{key}")
            else:
                assert key in extra, f"{path}.{key} is not a documented field"
    elif isinstance(ours, list) and ours and documented:
        assert_shape(ours[0], documented[0], extra, f"{path}[0]")


#: Fields the documentation's tables list that its examples happen not to show.
RECEIPT_FIELDS = frozenset(
    {"result", "resMessage", "log", "contract_address", "fee"}
    # ResourceReceipt
    | {"energy_usage", "energy_fee", "origin_energy_usage", "energy_usage_total"}
    | {"net_usage", "net_fee", "energy_penalty_total"}
)


async def test_the_scripted_node_answers_in_the_documented_shapes(node: TronApi):
    chain = node.chain
    payer = new_key()
    chain.fund(key_address(payer), sun("100"))
    chain.mint(USDT, key_address(payer), 10**9)
    chain.auto_mine = False
    # The documented block shows a contract call first.
    token = chain.submit(chain.token_transfer_tx(payer, USDT, new_address(), 10**6))
    transfer = chain.submit(chain.transfer_tx(payer, new_address(), sun("1")))
    [block] = chain.mine()
    number = block["block_header"]["raw_data"]["number"]

    async with httpx.AsyncClient(base_url=node.url) as http:

        async def call(path: str, body: dict[str, Any] | None = None) -> Any:
            response = await http.post(f"/wallet/{path}", json=body or {})
            assert response.status_code == 200
            return response.json()

        none = frozenset()
        assert_shape(
            await call("getblockbynum", {"num": number}), load_fixture("getblockbynum"), none
        )
        assert_shape(
            await call("getnowblock"), load_fixture("getnowblock"), frozenset({"transactions"})
        )
        assert_shape(await call("getblock", {"detail": False}), load_fixture("getblock"), none)
        limited = await call("getblockbylimitnext", {"startNum": number, "endNum": number + 1})
        assert_shape(limited, load_fixture("getblockbylimitnext"), frozenset({"transactions"}))
        byid = await call("gettransactionbyid", {"value": token["txid"]})
        assert_shape(byid, load_fixture("gettransactionbyid"), none)
        transfer_tx = await call("gettransactionbyid", {"value": transfer["txid"]})
        assert (
            transfer_tx["raw_data"]["contract"][0]["parameter"]["value"].keys()
            == {
                "amount",
                "owner_address",
                "to_address",
            }
            == load_fixture("createtransaction")["raw_data"]["contract"][0]["parameter"][
                "value"
            ].keys()
        )
        info = await call("gettransactioninfobyid", {"value": token["txid"]})
        assert_shape(info, load_fixture("gettransactioninfobyid"), RECEIPT_FIELDS)
        infos = await call("gettransactioninfobyblocknum", {"num": number})
        for each in infos:
            assert_shape(each, load_fixture("gettransactioninfobyblocknum")[0], RECEIPT_FIELDS)
        account = await call("getaccount", {"address": to_hex(key_address(payer))})
        assert_shape(account, load_fixture("getaccount"), none)
        resources = await call("getaccountresource", {"address": to_hex(key_address(payer))})
        assert_shape(
            resources,
            load_fixture("getaccountresource"),
            frozenset({"NetUsed", "NetLimit", "EnergyUsed", "EnergyLimit"}),
        )
        parameters = await call("getchainparameters")
        assert_shape(parameters, load_fixture("getchainparameters"), none)
        balance = await call(
            "triggerconstantcontract",
            {
                "owner_address": to_hex(key_address(payer)),
                "contract_address": to_hex(USDT),
                "function_selector": "balanceOf(address)",
                "parameter": to_hex(key_address(payer))[2:].rjust(64, "0"),
            },
        )
        assert_shape(balance, load_fixture("triggerconstantcontract"), none)
        assert int(balance["constant_result"][0], 16) == 10**9 - 10**6
        documented = load_fixture("broadcasttransaction")
        assert_shape(transfer, documented["accepted"], none)
        duplicate = await call("broadcasttransaction", chain.blocks[-1]["transactions"][0])
        assert_shape(duplicate, documented["duplicate"], none)
        assert duplicate["code"] == "DUP_TRANSACTION_ERROR"
        assert bytes.fromhex(duplicate["message"]).decode() == "Dup transaction."
        assert await call("broadcasttransaction", {"signature": []}) == documented["unparsable"]
        nodeinfo = await call("getnodeinfo")
        assert_shape(nodeinfo, load_fixture("getnodeinfo"), none)
        # Missing things are {}, as the node writes them.
        assert await call("getblockbynum", {"num": number + 50}) == {}
        assert await call("gettransactioninfobyid", {"value": "00" * 32}) == {}
        assert await call("getaccount", {"address": to_hex(new_address())}) == {}


# --------------------------------------------------------------------------- transfers
def script_multisend(chain: TronChain, caller: str, data: str) -> Outcome:
    """A payment contract paying two recipients from its own USDT: the call data names no
    token, the USDT events in the receipt show what moved."""
    token = chain.tokens[to_hex(USDT)]
    multisend = to_hex(MULTISEND)
    first, second = "41" + data[8 + 24 : 8 + 64], "41" + data[8 + 64 + 24 : 8 + 128]
    token.balances[multisend] -= 7_000_000
    for to, units in ((first, 3_000_000), (second, 4_000_000)):
        token.balances[to] = token.balances.get(to, 0) + units
    logs = [
        transfer_log(to_hex(USDT), multisend, first, 3_000_000),
        transfer_log(to_hex(USDT), multisend, second, 4_000_000),
    ]
    return Outcome(True, logs=logs, energy=90_000, returned="")


def script_broken(chain: TronChain, caller: str, data: str) -> Outcome:
    """A contract that fails, yet whose receipt still lists a USDT event."""
    watched = "41" + data[8 + 24 : 8 + 64]
    return Outcome(False, logs=[transfer_log(to_hex(USDT), to_hex(BROKEN), watched, 10**12)])


async def test_reads_trx_and_token_transfers_that_really_executed(
    adapter: TronAdapter, node: TronApi
):
    chain = node.chain
    payer, spender, holder = new_key(), new_key(), new_key()
    watched, unwatched, second = new_address(), new_address(), new_address()
    for key in (payer, spender, holder):
        chain.fund(key_address(key), sun("500"))
    chain.mint(USDT, key_address(payer), 1_000_000_000)
    chain.mint(USDT, key_address(holder), 50_000_000)
    chain.mint(OTHER_TOKEN, key_address(payer), 10**9)
    chain.mint(USDT, MULTISEND, 10**9)
    chain.approve(USDT, key_address(holder), key_address(spender), 20_000_000)
    chain.scripts[to_hex(MULTISEND)] = script_multisend
    chain.scripts[to_hex(BROKEN)] = script_broken

    chain.auto_mine = False
    txs = [
        chain.transfer_tx(payer, watched, sun("12.345678")),
        chain.token_transfer_tx(payer, USDT, watched, 250_500_000),
        # Reverted: more than the payer holds.
        chain.token_transfer_tx(payer, USDT, watched, 10**15),
        chain.token_transfer_tx(payer, USDT, unwatched, 1_000_001),
        # transferFrom: the holder's tokens, moved by the spender.
        chain.transfer_from_tx(spender, USDT, key_address(holder), watched, 20_000_000),
        # A token Paydesk does not carry.
        chain.token_transfer_tx(payer, OTHER_TOKEN, watched, 5_000_000),
        chain.call_tx(
            payer,
            MULTISEND,
            "c0ffee00" + word(int(to_hex(watched), 16)) + word(int(to_hex(second), 16)),
        ),
        chain.call_tx(payer, BROKEN, "c0ffee00" + word(int(to_hex(watched), 16))),
        # A zero-value transfer (address poisoning).
        chain.token_transfer_tx(payer, USDT, watched, 0),
    ]
    answers = [chain.submit(tx) for tx in txs]
    assert all(answer["result"] for answer in answers)
    [mined] = chain.mine()
    height = mined["block_header"]["raw_data"]["number"]
    txids = [answer["txid"] for answer in answers]
    results = [tx["ret"][0]["contractRet"] for tx in mined["transactions"]]
    assert results == ["SUCCESS"] * 2 + ["REVERT"] + ["SUCCESS"] * 4 + ["REVERT", "SUCCESS"]

    [block] = await adapter.blocks(height, height)
    found = [
        (t.txid, t.output_index, t.to_address, t.currency, t.amount, t.from_address)
        for t in block.transfers
    ]
    assert found == [
        (txids[0], NATIVE_VALUE_INDEX, watched, "TRX", Decimal("12.345678"), key_address(payer)),
        (txids[1], 0, watched, "USDT", Decimal("250.5"), key_address(payer)),
        (txids[3], 0, unwatched, "USDT", Decimal("1.000001"), key_address(payer)),
        (txids[4], 0, watched, "USDT", Decimal("20"), key_address(holder)),
        (txids[6], 0, watched, "USDT", Decimal("3"), MULTISEND),
        (txids[6], 1, second, "USDT", Decimal("4"), MULTISEND),
    ]
    assert all(isinstance(t.amount, Decimal) for t in block.transfers)
    assert block.header.height == height and block.header.hash == mined["blockID"]
    # One receipt call for the block, no call per transaction.
    assert node.calls("wallet/gettransactioninfobyblocknum") == 1
    assert node.calls("wallet/gettransactioninfobyid") == 0


async def test_without_tokens_no_receipt_is_read(node: TronApi):
    chain = node.chain
    payer = new_key()
    chain.fund(key_address(payer), sun("50"))
    chain.mint(USDT, key_address(payer), 10**8)
    to = new_address()
    chain.submit(chain.transfer_tx(payer, to, sun("1")))
    chain.submit(chain.token_transfer_tx(payer, USDT, to, 10**6))
    trx_only = TronAdapter("tron", node.url, {})
    try:
        blocks = await trx_only.blocks(1, chain.height)
    finally:
        await trx_only.close()
    assert [(t.currency, t.amount) for b in blocks for t in b.transfers] == [("TRX", Decimal(1))]
    assert node.calls("wallet/gettransactioninfobyblocknum") == 0


async def test_a_transfer_creating_the_recipients_account_is_reported(
    adapter: TronAdapter, node: TronApi
):
    chain = node.chain
    payer = new_key()
    chain.fund(key_address(payer), sun("10"))
    fresh = new_address()
    answer = chain.submit(chain.transfer_tx(payer, fresh, 1))
    [block] = await adapter.blocks(chain.height, chain.height)
    assert [(t.txid, t.to_address, t.amount) for t in block.transfers] == [
        (answer["txid"], fresh, Decimal("0.000001"))
    ]


# --------------------------------------------------------------------------- headers, tips
async def test_headers_blocks_and_parent_hashes(adapter: TronAdapter, node: TronApi):
    chain = node.chain
    chain.mine(30)
    tip = await adapter.tip()
    assert tip == chain.height == 31
    headers = await adapter.headers(0, tip)
    assert [h.height for h in headers] == list(range(tip + 1))
    assert [h.hash for h in headers] == [chain.block(n)["blockID"] for n in range(tip + 1)]
    assert headers[0].hash == MAINNET_GENESIS and headers[0].timestamp == 0
    for parent, child in pairwise(headers):
        assert child.parent_hash == parent.hash
        assert child.timestamp == parent.timestamp + 3 or parent.height == 0
    assert headers[5].timestamp == chain.block(5)["block_header"]["raw_data"]["timestamp"] // 1000
    # One block: its header alone (getblock, detail false), the same as in a range.
    assert await adapter.headers(7, 7) == [headers[7]]
    assert node.requests[-1] == ("wallet/getblock", {"detail": False, "id_or_num": "7"})
    # Past the tip: what exists.
    assert await adapter.headers(tip - 1, tip + 10) == headers[-2:]
    assert await adapter.headers(tip + 1, tip + 1) == []
    assert await adapter.headers(5, 4) == []
    blocks = await adapter.blocks(tip - 2, tip + 50)
    assert [b.header for b in blocks] == headers[-3:]
    assert await adapter.blocks(tip + 1, tip + 5) == []


async def test_blocks_are_read_in_batches(node: TronApi):
    chain = node.chain
    payer = new_key()
    chain.fund(key_address(payer), sun("1000"))
    chain.mint(USDT, key_address(payer), 10**9)
    chain.mine(3)
    chain.submit(chain.token_transfer_tx(payer, USDT, new_address(), 10**6))
    chain.mine(5)
    chain.submit(chain.transfer_tx(payer, new_address(), sun("2")))
    tron = TronAdapter("tron", node.url, {USDT: ("USDT", 6)}, batch_size=3)
    try:
        blocks = await tron.blocks(1, chain.height)
    finally:
        await tron.close()
    assert [b.header.height for b in blocks] == list(range(1, chain.height + 1))
    assert sorted(t.currency for b in blocks for t in b.transfers) == ["TRX", "USDT"]
    assert node.calls("wallet/getblockbylimitnext") == 4
    # Receipts only for the block with a contract call.
    assert node.calls("wallet/gettransactioninfobyblocknum") == 1


async def test_tip_and_solidified_tip(adapter: TronAdapter, node: TronApi):
    node.chain.mine(40)
    assert await adapter.tip() == 41
    assert await adapter.solid_tip() == 41 - 19
    header = await adapter.solid_header()
    assert header.hash == node.chain.block(22)["blockID"]
    node.chain.solid_lag = 1
    assert await adapter.solid_tip() == 40


async def test_a_self_hosted_node_serves_solidity_on_another_port(node: TronApi):
    node.missing = {"walletsolidity/getblock", "walletsolidity/getnowblock"}
    node.chain.mine(30)
    with TronApi(node.chain) as solidity:
        tron = TronAdapter("tron", node.url, {}, solidity_url=solidity.url)
        try:
            assert await tron.solid_tip() == 31 - 19
            assert await tron.tip() == 31
        finally:
            await tron.close()
    assert solidity.requests == [("walletsolidity/getblock", {"detail": False})]
    assert node.calls("walletsolidity/getblock") == 0


async def test_without_a_solidity_api_the_node_info_names_the_solid_block(
    adapter: TronAdapter, node: TronApi
):
    node.missing = {"walletsolidity/getblock", "walletsolidity/getnowblock"}
    node.chain.mine(30)
    header = await adapter.solid_header()
    assert (header.height, header.hash) == (12, node.chain.block(12)["blockID"])
    node.chain.mine()
    assert await adapter.solid_tip() == 13


async def test_nodes_without_getblock_serve_whole_blocks(adapter: TronAdapter, node: TronApi):
    node.missing = {"wallet/getblock", "walletsolidity/getblock"}
    node.chain.mine(25)
    assert await adapter.tip() == 26
    assert await adapter.solid_tip() == 7
    [header] = await adapter.headers(3, 3)
    assert header.hash == node.chain.block(3)["blockID"]
    assert node.calls("wallet/getnowblock") == 1 and node.calls("wallet/getblockbynum") == 1
    assert node.calls("walletsolidity/getnowblock") == 1
    # Asked once: the adapter remembers.
    assert node.calls("wallet/getblock") == 1


async def test_a_reorganisation_replaces_blocks_and_their_transfers(
    adapter: TronAdapter, node: TronApi
):
    chain = node.chain
    payer = new_key()
    chain.fund(key_address(payer), sun("100"))
    chain.mint(USDT, key_address(payer), 10**9)
    chain.mine(5)
    to = new_address()
    chain.submit(chain.token_transfer_tx(payer, USDT, to, 10**6))
    chain.mine(2)
    tip = chain.height
    before = await adapter.blocks(tip - 3, tip)
    assert [t.to_address for b in before for t in b.transfers] == [to]

    chain.reorganise(tip - 3)
    after = await adapter.blocks(tip - 3, tip)
    assert await adapter.tip() == tip
    assert before[0].header == after[0].header
    for old, new in zip(before[1:], after[1:], strict=True):
        assert old.header.height == new.header.height and old.header.hash != new.header.hash
    # The first replaced block no longer follows the block the watcher kept: it notices.
    assert after[1].header.parent_hash == after[0].header.hash
    assert [t for b in after for t in b.transfers] == []
    assert chain.token_balance(USDT, to) == 0
    # A shorter branch: blocks past its tip are gone.
    chain.reorganise(tip - 2, blocks=1)
    assert await adapter.tip() == tip - 1
    assert await adapter.headers(tip, tip) == []


async def test_pending_is_empty_and_there_is_no_mempool(adapter: TronAdapter, node: TronApi):
    node.chain.auto_mine = False
    payer = new_key()
    node.chain.fund(key_address(payer), sun("10"))
    node.chain.submit(node.chain.transfer_tx(payer, new_address(), sun("1")))
    assert adapter.has_mempool is False
    assert await adapter.pending() == []


# --------------------------------------------------------------------------- addresses
def test_addresses_are_normalized_to_base58():
    address = new_address()
    raw = base58.b58decode_check(address)
    assert normalize_tron_address(address) == address
    assert normalize_tron_address(USDT) == USDT
    # The hex form the API writes.
    assert normalize_tron_address(raw.hex()) == address
    assert normalize_tron_address(raw.hex().upper()) == address
    # A typo breaks the checksum.
    typo = address[:10] + ("A" if address[10] != "A" else "B") + address[11:]
    assert normalize_tron_address(typo) is None
    # Valid base58check, another version byte: Bitcoin's 0x00, or a T… of 0xa0.
    assert normalize_tron_address(base58.b58encode_check(b"\x00" + raw[1:]).decode()) is None
    assert normalize_tron_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2") is None
    other_prefix = base58.b58encode_check(b"\x42" + raw[1:]).decode()
    assert normalize_tron_address(other_prefix) is None
    # The same 20 bytes as an Ethereum address: meant for another network.
    assert normalize_tron_address("0x" + raw[1:].hex()) is None
    assert normalize_tron_address(raw[1:].hex()) is None
    assert normalize_tron_address("42" + raw[1:].hex()) is None
    for junk in ("", " " + address, address + " ", address.lower(), "T" * 34, None, 41):
        assert normalize_tron_address(junk) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no address"):
        TronAdapter("tron", "http://127.0.0.1:9", {"TNotAnAddress": ("USDT", 6)})


# --------------------------------------------------------------------------- the node
async def test_check_node_compares_the_genesis_block(adapter: TronAdapter, node: TronApi):
    await adapter.check_node()
    nile = TronAdapter("tron", node.url, {}, genesis_id=NILE_GENESIS)
    unchecked = TronAdapter("tron", node.url, {}, genesis_id=None)
    try:
        with pytest.raises(ChainMismatch, match=NILE_GENESIS):
            await nile.check_node()
        await unchecked.check_node()
        # A lite full node has no genesis block: its p2p version tells the network.
        node.pruned = True
        with pytest.raises(ChainMismatch, match="p2p version 11111"):
            await nile.check_node()
        await adapter.check_node()
    finally:
        await nile.close()
        await unchecked.close()


async def test_a_provider_key_goes_in_its_header():
    with TronApi(api_key="k3y") as node:
        anonymous = TronAdapter("tron", node.url, {})
        keyed = TronAdapter("tron", node.url, {}, api_key="k3y")
        try:
            with pytest.raises(ChainUnavailable, match="HTTP 401"):
                await anonymous.tip()
            assert await keyed.tip() == 1
        finally:
            await anonymous.close()
            await keyed.close()


async def test_an_unreachable_or_failing_node_is_unavailable(adapter: TronAdapter, node: TronApi):
    closed = TronAdapter("tron", f"http://127.0.0.1:{free_port()}", {USDT: ("USDT", 6)})
    try:
        for read in (closed.tip(), closed.blocks(1, 5), closed.headers(1, 1), closed.check_node()):
            with pytest.raises(ChainUnavailable):
                await read
    finally:
        await closed.close()
    node.down = True
    with pytest.raises(ChainUnavailable, match="HTTP 503"):
        await adapter.tip()
    node.down = False
    # The node's own error answer.
    node.missing = {"wallet/getblockbylimitnext"}
    with pytest.raises(ChainUnavailable):
        await adapter.blocks(1, 1)


async def test_receipts_of_another_block_are_refused(adapter: TronAdapter, node: TronApi):
    """Receipts that do not belong to the block read (the chain moved between the two
    calls) are not matched to it."""
    chain = node.chain
    payer = new_key()
    chain.fund(key_address(payer), sun("100"))
    chain.mint(USDT, key_address(payer), 10**9)
    chain.submit(chain.token_transfer_tx(payer, USDT, new_address(), 10**6))
    chain.submit(chain.token_transfer_tx(payer, USDT, new_address(), 10**6))
    tip = chain.height
    chain.infos[tip - 1], chain.infos[tip] = chain.infos[tip], chain.infos[tip - 1]
    with pytest.raises(ChainUnavailable, match="another block"):
        await adapter.blocks(tip, tip)


def test_built_from_the_catalogue():
    catalogue = load_catalogue(["tron"])
    network = catalogue.network("tron")
    assert network is not None
    tron = TronAdapter.from_catalogue(
        network, catalogue.services, "http://127.0.0.1:9", api_key="x"
    )
    assert tron.network == "tron" and tron.native == "TRX" and tron.native_decimals == 6
    assert tron.tokens == {
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t": ("USDT", 6),
        "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8": ("USDC", 6),
    }
    assert tron.genesis_id == MAINNET_GENESIS
    eth = catalogue.network("eth")
    if eth is not None:
        with pytest.raises(ValueError, match="not a TRON network"):
            TronAdapter.from_catalogue(eth, catalogue.services, "http://127.0.0.1:9")


def test_transfer_topic_is_the_trc20_event():
    assert keccak256(b"Transfer(address,address,uint256)").hex() == TRANSFER_TOPIC
