"""TronPayoutSender against the scripted TRON node (tests/tron_api.py): offline signing,
broadcast and its refusals, receipts and fees, a short hot wallet, a node that is down."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from bip_utils import Bip44, Bip44Changes, Bip44Coins
from tronpy.keys import PrivateKey, Signature
from tronpy.proto.transaction import _raw_data_to_protobuf

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.adapter import (
    BroadcastRejected,
    ChainMismatch,
    ChainUnavailable,
    HotWalletShort,
    NonceTaken,
    PayoutSender,
    SignedTransfer,
)
from paydesk.chains.tron import TronAdapter
from paydesk.chains.tron_sender import (
    DEFAULT_EXPIRATION_SECONDS,
    TransferExpired,
    TransferRefused,
    TronPayoutSender,
)
from tests.conftest import free_port
from tests.keyring import key_ring
from tests.tron_api import USDT, TronApi, TronChain, key_address, to_hex

TEST_MNEMONIC = "abandon " * 11 + "about"
#: A fixed mnemonic for the hot wallet.
HOT_MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
TRX = 10**6

MakeSender = Callable[..., Awaitable[TronPayoutSender]]


def hot_key() -> bytes:
    keys = key_ring(HOT_MNEMONIC)
    return bytes(keys.hot_wallet("tron").PrivateKey().Raw().ToBytes())


def new_address() -> str:
    return key_address(PrivateKey.random())


def decoded(transfer: SignedTransfer) -> dict[str, Any]:
    return json.loads(transfer.raw)  # type: ignore[no-any-return]


@pytest.fixture
def node() -> Iterator[TronApi]:
    with TronApi() as api:
        yield api


@pytest.fixture
async def make_sender(node: TronApi) -> AsyncIterator[MakeSender]:
    """Senders on the test node, closed after the test. Without a key: the hot wallet of
    HOT_MNEMONIC, funded with `sun` TRX and `units` of USDT."""
    senders: list[TronPayoutSender] = []

    async def make(
        key: bytes | None = None,
        *,
        sun: int = 0,
        units: int = 0,
        url: str | None = None,
        **options: Any,
    ) -> TronPayoutSender:
        adapter = TronAdapter("tron", url or node.url, {USDT: ("USDT", 6)})
        sender = TronPayoutSender(adapter, key or hot_key(), **options)
        senders.append(sender)
        if sun:
            node.chain.fund(sender.hot_address, sun)
        if units:
            node.chain.mint(USDT, sender.hot_address, units)
        return sender

    try:
        yield make
    finally:
        for sender in senders:
            await sender.close()


@pytest.fixture
async def sender(make_sender: MakeSender) -> TronPayoutSender:
    return await make_sender(sun=1_000 * TRX, units=1_000_000 * 10**6)


def test_it_is_a_payout_sender():
    sender: PayoutSender = TronPayoutSender(
        TronAdapter("tron", "http://127.0.0.1:9", {}), hot_key()
    )
    assert sender.network == "tron" and sender.native == "TRX"


# --------------------------------------------------------------------------- keys
def test_the_published_tron_address_of_the_test_mnemonic():
    """m/44'/195'/0'/0/0 of "abandon … about" is TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH, the
    address Ian Coleman's BIP39 tool and Ledger's TRON app's test script give; tronpy
    derives the same address from the private key bip-utils derives."""
    keys = key_ring(TEST_MNEMONIC)
    assert keys.deriver("tron").derive(0) == "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
    node = keys.account("tron").Change(Bip44Changes.CHAIN_EXT).AddressIndex(0)
    assert Bip44.FromSeed(b"\0" * 16, Bip44Coins.TRON).CoinConf().CoinIndex() == 195
    key = PrivateKey(bytes(node.PrivateKey().Raw().ToBytes()))
    assert key.public_key.to_base58check_address() == "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
    # The hot wallet the sender signs with is the key ring's m/44'/195'/0'/1/0.
    hot = keys.hot_wallet("tron")
    sender = TronPayoutSender(
        TronAdapter("tron", "http://127.0.0.1:9", {}), bytes(hot.PrivateKey().Raw().ToBytes())
    )
    assert sender.hot_address == hot.PublicKey().ToAddress()


# --------------------------------------------------------------------------- TRX
async def test_trx_payout_signed_offline_then_broadcast_and_mined(
    sender: TronPayoutSender, node: TronApi
):
    chain = node.chain
    to = new_address()
    chain.fund(to, TRX)  # an existing account: no creation fee
    signed = await sender.sign_transfer(to, "TRX", Decimal("12.345678"))

    # Signed without the node building anything, and not sent.
    assert not [path for path, _ in node.requests if "create" in path or "broadcast" in path]
    assert not chain.pending
    body = decoded(signed)
    raw = body["raw_data"]
    assert raw["contract"][0]["type"] == "TransferContract"
    assert raw["contract"][0]["parameter"]["value"] == {
        "amount": 12_345_678,
        "owner_address": to_hex(sender.hot_address),
        "to_address": to_hex(to),
    }
    assert "fee_limit" not in raw
    solid = chain.block(chain.solid_height)["blockID"]
    assert (raw["ref_block_bytes"], raw["ref_block_hash"]) == (solid[12:16], solid[16:32])
    assert raw["expiration"] - raw["timestamp"] >= DEFAULT_EXPIRATION_SECONDS * 1000
    txid = hashlib.sha256(_raw_data_to_protobuf(raw).SerializeToString()).hexdigest()
    assert signed.txid == body["txID"] == txid
    signer = Signature.fromhex(body["signature"][0]).recover_public_key_from_msg_hash(
        bytes.fromhex(txid)
    )
    assert signer.to_base58check_address() == sender.hot_address == signed.from_address
    assert signed.nonce is None and signed.max_fee == 0  # the free daily bandwidth pays

    await sender.broadcast(signed)
    assert chain.sun(to) == TRX + 12_345_678
    sent = await sender.lookup(signed.txid)
    assert sent is not None
    assert sent.block_height == chain.height == await sender.tip()
    assert sent.succeeded and sent.fee == 0
    assert await sender.balance("TRX") == Decimal("1000") - Decimal("12.345678")


async def test_trx_to_a_new_account_pays_its_creation(sender: TronPayoutSender, node: TronApi):
    to = new_address()
    signed = await sender.sign_transfer(to, "TRX", Decimal("1"))
    assert signed.max_fee == Decimal("1.1")
    await sender.broadcast(signed)
    sent = await sender.lookup(signed.txid)
    assert sent is not None and sent.succeeded
    assert sent.fee == Decimal("1.1") and isinstance(sent.fee, Decimal)
    assert await sender.balance("TRX") == Decimal("1000") - Decimal("2.1")


async def test_bandwidth_is_burned_once_the_free_bandwidth_is_used(
    sender: TronPayoutSender, node: TronApi
):
    node.chain.accounts[to_hex(sender.hot_address)].free_net_used = 600
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("5"))
    assert signed.max_fee == Decimal("0.3")  # 300 bytes at 1000 sun
    await sender.broadcast(signed)
    sent = await sender.lookup(signed.txid)
    info = node.chain.infos[node.chain.height][0]
    assert sent is not None and sent.fee == Decimal(info["receipt"]["net_fee"]) / TRX > 0
    assert sent.fee <= signed.max_fee


# --------------------------------------------------------------------------- TRC-20
async def test_usdt_payout(sender: TronPayoutSender, node: TronApi):
    chain = node.chain
    to = new_address()
    signed = await sender.sign_transfer(to, "USDT", Decimal("250.5"))
    raw = decoded(signed)["raw_data"]
    [contract] = raw["contract"]
    assert contract["type"] == "TriggerSmartContract"
    value = contract["parameter"]["value"]
    assert value["contract_address"] == to_hex(USDT)
    assert value["owner_address"] == to_hex(sender.hot_address)
    assert value["data"] == (
        "a9059cbb" + to_hex(to)[2:].rjust(64, "0") + (250_500_000).to_bytes(32, "big").hex()
    )
    # The simulated transfer needs 130,285 energy (a new holder), +20%, at 100 sun each.
    assert raw["fee_limit"] == 156_342 * 100
    assert signed.max_fee == Decimal("15.6342")

    await sender.broadcast(signed)
    assert chain.token_balance(USDT, to) == 250_500_000
    sent = await sender.lookup(signed.txid)
    assert sent is not None and sent.succeeded and sent.block_height == chain.height
    info = chain.infos[chain.height][0]
    assert sent.fee == Decimal(info["fee"]) / TRX == Decimal("13.0285")
    assert sent.fee <= signed.max_fee
    assert await sender.balance("USDT") == Decimal("1000000") - Decimal("250.5")
    assert await sender.balance("TRX") == Decimal("1000") - sent.fee


async def test_staked_energy_pays_for_token_transfers(sender: TronPayoutSender, node: TronApi):
    node.chain.stake_energy(sender.hot_address, 1_000_000)
    to = new_address()
    node.chain.mint(USDT, to, 1)  # already a holder: the cheaper transfer
    signed = await sender.sign_transfer(to, "USDT", Decimal("1"))
    await sender.broadcast(signed)
    sent = await sender.lookup(signed.txid)
    assert sent is not None and sent.succeeded and sent.fee == 0
    receipt = node.chain.infos[node.chain.height][0]["receipt"]
    assert receipt["energy_usage"] == receipt["energy_usage_total"] == 64_285


async def test_a_reverted_token_transfer_fails_and_costs_its_fee(
    sender: TronPayoutSender, node: TronApi
):
    chain = node.chain
    to = new_address()
    signed = await sender.sign_transfer(to, "USDT", Decimal("999999"))
    # The tokens leave the wallet before the transfer is mined: it reverts.
    chain.tokens[to_hex(USDT)].balances[to_hex(sender.hot_address)] = 0
    await sender.broadcast(signed)
    sent = await sender.lookup(signed.txid)
    assert sent is not None
    assert sent.block_height == chain.height
    assert sent.succeeded is False
    assert sent.fee > 0 and sent.fee == Decimal(chain.infos[chain.height][0]["fee"]) / TRX
    assert chain.token_balance(USDT, to) == 0


# --------------------------------------------------------------------------- broadcasting
async def test_a_tampered_transaction_is_refused(sender: TronPayoutSender, node: TronApi):
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("1"))
    body = decoded(signed)
    body["raw_data"]["contract"][0]["parameter"]["value"]["amount"] = 900 * TRX
    tampered = SignedTransfer(signed.txid, json.dumps(body), signed.from_address)
    with pytest.raises(BroadcastRejected, match="SIGERROR") as refused:
        await sender.broadcast(tampered)
    assert not isinstance(refused.value, NonceTaken)
    # Signed by another key in the hot wallet's name.
    other = PrivateKey.random()
    body = decoded(signed)
    body["signature"] = [other.sign_msg_hash(bytes.fromhex(signed.txid)).hex()]
    with pytest.raises(BroadcastRejected, match="SIGERROR"):
        await sender.broadcast(SignedTransfer(signed.txid, json.dumps(body), signed.from_address))
    assert node.chain.sun(to) == TRX and node.chain.height == 1
    # The genuine one still goes through.
    await sender.broadcast(signed)
    assert node.chain.sun(to) == 2 * TRX


async def test_sending_the_same_transaction_again_is_fine(sender: TronPayoutSender, node: TronApi):
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("3"))
    node.chain.auto_mine = False
    await sender.broadcast(signed)
    pending = await sender.lookup(signed.txid)
    assert pending is not None and pending.block_height is None
    await sender.broadcast(signed)  # the node has it: DUP_TRANSACTION_ERROR
    node.chain.mine()
    await sender.broadcast(signed)  # and once mined
    assert node.chain.sun(to) == 4 * TRX
    assert await sender.lookup("ab" * 32) is None


async def test_an_expired_transaction_is_signed_anew(make_sender: MakeSender, node: TronApi):
    """TRON has no nonce: a transaction that expired unmined never can be mined, which
    the payout worker handles like a taken nonce (it signs the payout again)."""
    node.chain = TronChain(start_ms=int(time.time() * 1000))
    sender = await make_sender(sun=100 * TRX, expiration_seconds=30)
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("1"))
    node.chain.mine(11)  # 33 seconds later
    with pytest.raises(TransferExpired, match="TRANSACTION_EXPIRATION_ERROR") as expired:
        await sender.broadcast(signed)
    assert isinstance(expired.value, NonceTaken)
    # Signed again (with a window reaching past the node's clock), it goes through.
    again = await make_sender()
    await again.broadcast(await again.sign_transfer(to, "TRX", Decimal("1")))
    assert node.chain.sun(to) == 2 * TRX


async def test_a_transaction_refused_but_already_mined_counts_as_sent(
    sender: TronPayoutSender, node: TronApi
):
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("1"))
    await sender.broadcast(signed)
    node.broadcast_answer = {"result": False, "code": "TAPOS_ERROR", "message": "00"}
    await sender.broadcast(signed)


async def test_node_answers_to_a_broadcast(sender: TronPayoutSender, node: TronApi):
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("1"))
    for code in ("SERVER_BUSY", "NO_CONNECTION", "BANDWITH_ERROR"):
        node.broadcast_answer = {"result": False, "code": code, "message": "6f6f7073"}
        with pytest.raises(ChainUnavailable, match=code):
            await sender.broadcast(signed)
    for code in ("CONTRACT_VALIDATE_ERROR", "OTHER_ERROR", "TOO_BIG_TRANSACTION_ERROR"):
        node.broadcast_answer = {"result": False, "code": code, "message": "6e6f"}
        with pytest.raises(BroadcastRejected, match=f"{code} no") as refused:
            await sender.broadcast(signed)
        assert not isinstance(refused.value, NonceTaken)
    node.broadcast_answer = {"Error": "class java.lang.NullPointerException : null"}
    with pytest.raises(BroadcastRejected, match="NullPointerException"):
        await sender.broadcast(signed)
    with pytest.raises(TransferRefused):
        await sender.broadcast(SignedTransfer(signed.txid, "not json", signed.from_address))
    node.broadcast_answer = None
    await sender.broadcast(signed)


# --------------------------------------------------------------------------- refusals
async def test_a_short_hot_wallet_waits(make_sender: MakeSender, node: TronApi):
    sender = await make_sender(sun=10 * TRX, units=5 * 10**6)
    to = new_address()
    node.chain.fund(to, TRX)
    with pytest.raises(HotWalletShort, match="holds 10 TRX"):
        await sender.sign_transfer(to, "TRX", Decimal("10.000001"))
    await sender.sign_transfer(to, "TRX", Decimal("10"))  # exactly what it has
    with pytest.raises(HotWalletShort, match="holds 5 USDT"):
        await sender.sign_transfer(to, "USDT", Decimal("5.000001"))
    # Tokens enough, TRX not enough for the energy: ~13 TRX to a new holder.
    with pytest.raises(HotWalletShort, match="burns up to"):
        await sender.sign_transfer(new_address(), "USDT", Decimal("5"))
    # More energy than a payout may burn.
    capped = await make_sender(sun=1_000 * TRX, units=10**6, max_fee_limit=5 * TRX)
    with pytest.raises(HotWalletShort, match="more than the 5 TRX"):
        await capped.sign_transfer(new_address(), "USDT", Decimal("1"))
    # A hot wallet that never received anything has no account at all.
    empty = await make_sender(PrivateKey.random().to_bytes())
    with pytest.raises(HotWalletShort, match="holds 0 TRX"):
        await empty.sign_transfer(to, "TRX", Decimal("1"))
    assert await empty.balance("TRX") == 0


async def test_invalid_transfers_are_refused(sender: TronPayoutSender):
    to = new_address()
    for address in ("0x" + "11" * 20, "TNotAnAddress", to[:-1] + ("a" if to[-1] != "a" else "b")):
        with pytest.raises(TransferRefused, match="no tron address"):
            await sender.sign_transfer(address, "TRX", Decimal(1))
    with pytest.raises(TransferRefused, match="carries no BTC"):
        await sender.sign_transfer(to, "BTC", Decimal(1))
    with pytest.raises(TransferRefused, match="more than 6 decimals"):
        await sender.sign_transfer(to, "USDT", Decimal("0.0000001"))
    with pytest.raises(TransferRefused, match="positive"):
        await sender.sign_transfer(to, "TRX", Decimal(0))
    with pytest.raises(TransferRefused, match="more than any"):
        await sender.sign_transfer(to, "TRX", Decimal(10**13))
    with pytest.raises(TransferRefused, match="itself"):
        await sender.sign_transfer(sender.hot_address, "TRX", Decimal(1))
    with pytest.raises(TransferRefused, match="priority"):
        await sender.sign_transfer(to, "TRX", Decimal(1), priority="urgent")
    with pytest.raises(ValueError, match="no nonce"):
        await sender.sign_transfer(to, "TRX", Decimal(1), nonce=3)
    assert await sender.next_nonce() is None


async def test_a_token_contract_that_is_not_there(make_sender: MakeSender, node: TronApi):
    sender = await make_sender(sun=100 * TRX)
    node.chain.tokens.pop(to_hex(USDT), None)
    with pytest.raises(ChainMismatch, match="no contract"):
        await sender.balance("USDT")


async def test_a_node_that_is_down(make_sender: MakeSender, node: TronApi):
    sender = await make_sender(sun=100 * TRX, units=10**6)
    to = new_address()
    signed = await sender.sign_transfer(to, "TRX", Decimal(1))
    closed = await make_sender(url=f"http://127.0.0.1:{free_port()}")
    for call in (
        closed.sign_transfer(to, "TRX", Decimal(1)),
        closed.broadcast(signed),
        closed.lookup(signed.txid),
        closed.balance("USDT"),
        closed.tip(),
    ):
        with pytest.raises(ChainUnavailable):
            await call
    node.down = True
    for call in (sender.broadcast(signed), sender.sign_transfer(to, "USDT", Decimal(1))):
        with pytest.raises(ChainUnavailable, match="HTTP 503"):
            await call
    node.down = False
    await sender.broadcast(signed)


async def test_signing_without_a_solidity_api(sender: TronPayoutSender, node: TronApi):
    node.missing = {"walletsolidity/getblock", "walletsolidity/getnowblock"}
    node.chain.mine(25)
    to = new_address()
    node.chain.fund(to, TRX)
    signed = await sender.sign_transfer(to, "TRX", Decimal("2"))
    solid = node.chain.block(node.chain.solid_height)["blockID"]
    assert decoded(signed)["raw_data"]["ref_block_hash"] == solid[16:32]
    await sender.broadcast(signed)
    assert node.chain.sun(to) == 3 * TRX


async def test_lookup_without_the_pending_pool_endpoint(sender: TronPayoutSender, node: TronApi):
    node.missing = {"wallet/gettransactionfrompending"}
    assert await sender.lookup("cd" * 32) is None


def test_built_from_the_catalogue():
    catalogue = load_catalogue(["tron"])
    network = catalogue.network("tron")
    assert network is not None
    sender = TronPayoutSender.from_catalogue(
        network,
        catalogue.services,
        "http://127.0.0.1:9",
        hot_key(),
        api_key="k",
        max_fee_limit=50 * TRX,
    )
    assert sender.max_fee_limit == 50 * TRX
    assert sender.adapter.tokens["TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"] == ("USDT", 6)
