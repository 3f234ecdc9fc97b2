"""EvmPayoutSender against a real node (anvil): exact amounts, fees, nonces, refusals."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import anyio
import pytest
from eth_account.typed_transactions import TypedTransaction
from eth_utils import is_checksum_address, to_checksum_address
from hexbytes import HexBytes

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import (
    BroadcastRejected,
    ChainMismatch,
    ChainUnavailable,
    HotWalletShort,
    NonceTaken,
    PayoutSender,
    SentTransfer,
    SignedTransfer,
)
from paydesk.chains.evm import EvmAdapter, units_to_amount
from paydesk.chains.evm_sender import (
    FALLBACK_TIP,
    TRANSFER_SELECTOR,
    EvmPayoutSender,
    TransferRefused,
    amount_to_units,
)
from tests.chains.anvil import GWEI, Anvil
from tests.conftest import free_port
from tests.keyring import key_ring

#: A fixed mnemonic for the hot wallet (not anvil's: its accounts are the test's own).
HOT_MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
ETHER = 10**18

MakeSender = Callable[..., Awaitable[EvmPayoutSender]]


def new_address() -> str:
    return to_checksum_address(os.urandom(20))


def decoded(transfer: SignedTransfer) -> dict[str, Any]:
    return dict(TypedTransaction.from_bytes(HexBytes(transfer.raw)).as_dict())


def wei_balance(anvil: Anvil, address: str) -> int:
    return int(anvil.w3.eth.get_balance(address))


async def mined(sender: EvmPayoutSender, txid: str) -> SentTransfer:
    """The transfer once in a block (anvil mines just after answering the broadcast)."""
    with anyio.fail_after(5):
        while True:
            sent = await sender.lookup(txid)
            if sent is not None and sent.block_height is not None:
                return sent
            await anyio.sleep(0.01)


def fee_of(anvil: Anvil, txid: str) -> int:
    receipt = anvil.w3.eth.get_transaction_receipt(txid)
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


@pytest.fixture(scope="module")
def usdt(anvil: Anvil) -> str:
    return anvil.deploy_token("USDT", 6)


@pytest.fixture(scope="module")
def hot_key(anvil: Anvil, usdt: str) -> bytes:
    """The eth hot wallet of HOT_MNEMONIC, funded once with 100 ETH and 1M USDT."""
    keys = key_ring(HOT_MNEMONIC)
    node = keys.hot_wallet("eth")
    address = node.PublicKey().ToAddress()
    anvil.send_native(address, 100 * ETHER)
    anvil.send_token(usdt, address, 1_000_000 * 10**6)
    return bytes(node.PrivateKey().Raw().ToBytes())


@pytest.fixture
async def make_sender(anvil: Anvil, usdt: str) -> AsyncIterator[MakeSender]:
    """Senders on the test node, closed after the test. Without a key: a fresh wallet
    holding `wei` and `units` of USDT, for tests that need a wallet of their own."""
    senders: list[EvmPayoutSender] = []

    async def make(
        key: bytes | None = None, *, wei: int = 0, units: int = 0, **adapter: Any
    ) -> EvmPayoutSender:
        options = {"chain_id": 1, **adapter}
        evm = EvmAdapter("eth", anvil.url, "ETH", {usdt: ("USDT", 6)}, **options)
        sender = EvmPayoutSender(evm, key if key is not None else os.urandom(32))
        senders.append(sender)
        if wei:
            anvil.send_native(sender.hot_address, wei)
        if units:
            anvil.send_token(usdt, sender.hot_address, units)
        return sender

    try:
        yield make
    finally:
        for sender in senders:
            await sender.close()


@pytest.fixture
async def sender(make_sender: MakeSender, hot_key: bytes) -> EvmPayoutSender:
    return await make_sender(hot_key)


# --------------------------------------------------------------------------- the wallet
async def test_hot_address_is_the_keyring_hot_wallet(sender: EvmPayoutSender):
    keys = key_ring(HOT_MNEMONIC)
    assert sender.hot_address == keys.hot_wallet("eth").PublicKey().ToAddress()
    assert is_checksum_address(sender.hot_address)
    _: PayoutSender = sender  # the protocol is met


async def test_balances_are_exact(make_sender: MakeSender):
    wallet = await make_sender(wei=1_234_567_890_123_456_789, units=7_654_321)
    assert await wallet.balance("ETH") == Decimal("1.234567890123456789")
    assert await wallet.balance("USDT") == Decimal("7.654321")
    with pytest.raises(ValueError, match="carries no BTC"):
        await wallet.balance("BTC")
    # A refused transfer is a ValueError, and a BroadcastRejected for the payout worker.
    assert issubclass(TransferRefused, ValueError) and issubclass(
        TransferRefused, BroadcastRejected
    )


# --------------------------------------------------------------------------- payouts
async def test_native_payout_arrives_exactly(anvil: Anvil, sender: EvmPayoutSender):
    to = new_address()
    nonce = await sender.next_nonce()
    hot_before = wei_balance(anvil, sender.hot_address)

    signed = await sender.sign_transfer(
        to.lower(), "ETH", Decimal("1.234567890123456789"), nonce=nonce, priority="recommended"
    )
    assert signed.nonce == nonce and signed.from_address == sender.hot_address
    tx = decoded(signed)
    assert (tx["type"], tx["chainId"], tx["gas"], tx["value"]) == (
        2,
        1,
        21_000,
        1234567890123456789,
    )
    assert to_checksum_address(tx["to"]) == to
    assert await sender.lookup(signed.txid) is None  # known before the node sees it

    await sender.broadcast(signed)
    sent = await mined(sender, signed.txid)

    assert wei_balance(anvil, to) == 1_234_567_890_123_456_789
    receipt = anvil.w3.eth.get_transaction_receipt(signed.txid)
    assert receipt["transactionHash"].to_0x_hex() == signed.txid
    assert sent.succeeded and sent.block_height == receipt["blockNumber"]
    fee = fee_of(anvil, signed.txid)
    assert sent.fee == units_to_amount(fee, 18) and sent.fee > 0
    assert sent.fee <= signed.max_fee == units_to_amount(tx["gas"] * tx["maxFeePerGas"], 18)
    assert wei_balance(anvil, sender.hot_address) == hot_before - 1_234_567_890_123_456_789 - fee
    assert await sender.next_nonce() == nonce + 1


async def test_token_payout_arrives_exactly(anvil: Anvil, sender: EvmPayoutSender, usdt: str):
    to = new_address()
    hot_units = anvil.token_balance(usdt, sender.hot_address)
    hot_wei = wei_balance(anvil, sender.hot_address)

    signed = await sender.sign_transfer(
        to, "USDT", Decimal("12.345678"), nonce=await sender.next_nonce(), priority="economy"
    )
    tx = decoded(signed)
    assert to_checksum_address(tx["to"]) == usdt and tx["value"] == 0
    assert tx["data"][:4] == TRANSFER_SELECTOR == bytes.fromhex("a9059cbb")
    assert tx["gas"] > 21_000

    await sender.broadcast(signed)
    sent = await mined(sender, signed.txid)

    assert anvil.token_balance(usdt, to) == 12_345_678
    assert anvil.token_balance(usdt, sender.hot_address) == hot_units - 12_345_678
    fee = fee_of(anvil, signed.txid)
    assert sent.succeeded and sent.fee == units_to_amount(fee, 18)
    assert wei_balance(anvil, sender.hot_address) == hot_wei - fee
    assert await sender.balance("USDT") == units_to_amount(hot_units - 12_345_678, 6)


async def test_broadcasting_twice_is_one_transfer(anvil: Anvil, sender: EvmPayoutSender):
    to = new_address()
    signed = await sender.sign_transfer(
        to, "ETH", Decimal("0.5"), nonce=await sender.next_nonce(), priority="recommended"
    )
    await sender.broadcast(signed)
    await mined(sender, signed.txid)
    await sender.broadcast(signed)  # mined already: anvil says "nonce too low"
    await sender.broadcast(signed)
    assert wei_balance(anvil, to) == ETHER // 2


async def test_pending_transfer_has_no_block_and_may_be_sent_again(
    anvil: Anvil, sender: EvmPayoutSender
):
    to = new_address()
    signed = await sender.sign_transfer(
        to, "ETH", Decimal(1), nonce=await sender.next_nonce(), priority="recommended"
    )
    anvil.set_automine(False)
    try:
        await sender.broadcast(signed)
        assert await sender.lookup(signed.txid) == SentTransfer(block_height=None)
        await sender.broadcast(signed)  # "transaction already imported"
        anvil.mine()
    finally:
        anvil.set_automine(True)
    sent = await sender.lookup(signed.txid)
    assert sent is not None and sent.block_height == anvil.block_number()
    assert wei_balance(anvil, to) == ETHER


async def test_nonce_used_by_another_transfer(anvil: Anvil, sender: EvmPayoutSender):
    nonce = await sender.next_nonce()
    first = await sender.sign_transfer(
        new_address(), "ETH", Decimal(1), nonce=nonce, priority="recommended"
    )
    second = await sender.sign_transfer(
        new_address(), "USDT", Decimal(1), nonce=nonce, priority="recommended"
    )
    await sender.broadcast(second)
    await mined(sender, second.txid)

    with pytest.raises(NonceTaken, match=f"nonce {nonce} "):
        await sender.broadcast(first)
    assert await sender.lookup(first.txid) is None


async def test_priority_scales_the_tip(anvil: Anvil, sender: EvmPayoutSender):
    to, nonce = new_address(), await sender.next_nonce()
    base_fee = anvil.w3.eth.get_block("latest")["baseFeePerGas"]
    tips = {}
    for priority in ("economy", "recommended", "high", "highest"):
        signed = await sender.sign_transfer(to, "ETH", Decimal(1), nonce=nonce, priority=priority)
        tx = decoded(signed)
        tips[priority] = tx["maxPriorityFeePerGas"]
        assert tx["maxFeePerGas"] == 2 * base_fee + tx["maxPriorityFeePerGas"]
        assert signed.max_fee == units_to_amount(21_000 * tx["maxFeePerGas"], 18)
    # anvil suggests 1 gwei
    assert tips == {
        "economy": GWEI,
        "recommended": GWEI,
        "high": 3 * GWEI // 2,
        "highest": 2 * GWEI,
    }
    with pytest.raises(TransferRefused, match="unknown priority"):
        await sender.sign_transfer(to, "ETH", Decimal(1), nonce=nonce, priority="urgent")


async def test_a_node_without_a_tip_suggestion_gets_the_fallback(
    sender: EvmPayoutSender, monkeypatch: pytest.MonkeyPatch
):
    provider = sender.adapter._provider
    make_request = provider.make_request

    async def no_tip_method(method: str, params: Any) -> Any:
        if method == "eth_maxPriorityFeePerGas":
            return {
                "jsonrpc": "2.0",
                "id": 1,
                "error": {"code": -32601, "message": "no such method"},
            }
        return await make_request(method, params)

    monkeypatch.setattr(provider, "make_request", no_tip_method)
    signed = await sender.sign_transfer(
        new_address(), "ETH", Decimal(1), nonce=await sender.next_nonce(), priority="highest"
    )
    assert decoded(signed)["maxPriorityFeePerGas"] == 2 * FALLBACK_TIP


async def test_reverted_token_transfer_did_not_succeed(
    anvil: Anvil, make_sender: MakeSender, usdt: str
):
    """Two payouts signed while the wallet could pay either, not both: the second to be
    mined reverts and still costs its fee."""
    wallet = await make_sender(wei=ETHER, units=10_000_000)
    to = new_address()
    nonce = await wallet.next_nonce()
    late = await wallet.sign_transfer(
        to, "USDT", Decimal(10), nonce=nonce + 1, priority="recommended"
    )
    early = await wallet.sign_transfer(
        new_address(), "USDT", Decimal(10), nonce=nonce, priority="recommended"
    )
    await wallet.broadcast(early)
    assert (await mined(wallet, early.txid)).succeeded
    await wallet.broadcast(late)

    sent = await mined(wallet, late.txid)
    assert not sent.succeeded
    assert sent.fee == units_to_amount(fee_of(anvil, late.txid), 18) > 0
    assert anvil.token_balance(usdt, to) == 0


# --------------------------------------------------------------------------- refusals
async def test_unfunded_wallet_is_short(make_sender: MakeSender):
    empty = await make_sender()
    with pytest.raises(HotWalletShort, match=r"holds 0\.0+ ETH, 1 ETH are to be sent"):
        await empty.sign_transfer(new_address(), "ETH", Decimal(1), nonce=0, priority="recommended")
    with pytest.raises(HotWalletShort, match=r"holds 0\.000000 USDT, 1 USDT"):
        await empty.sign_transfer(
            new_address(), "USDT", Decimal(1), nonce=0, priority="recommended"
        )


async def test_wallet_without_coins_for_the_fee_is_short(make_sender: MakeSender):
    tokens_only = await make_sender(units=5_000_000)
    with pytest.raises(HotWalletShort, match=r"holds 0\.0+ ETH, needs 0\.0*[1-9]"):
        await tokens_only.sign_transfer(
            new_address(), "USDT", Decimal(5), nonce=0, priority="recommended"
        )

    exact = await make_sender(wei=ETHER)
    with pytest.raises(HotWalletShort, match="plus the most the network fee can cost"):
        await exact.sign_transfer(new_address(), "ETH", Decimal(1), nonce=0, priority="recommended")


async def test_payouts_waiting_in_the_mempool_spend_the_wallet(
    anvil: Anvil, make_sender: MakeSender
):
    wallet = await make_sender(wei=ETHER, units=10_000_000)
    nonce = await wallet.next_nonce()
    anvil.set_automine(False)
    try:
        for currency, amount in (("ETH", "0.9"), ("USDT", "8")):
            waiting = await wallet.sign_transfer(
                new_address(), currency, Decimal(amount), nonce=nonce, priority="recommended"
            )
            await wallet.broadcast(waiting)
            nonce += 1
        for currency, amount in (("ETH", "0.5"), ("USDT", "5")):
            with pytest.raises(HotWalletShort, match=f"{amount} {currency} are to be sent"):
                await wallet.sign_transfer(
                    new_address(), currency, Decimal(amount), nonce=nonce, priority="recommended"
                )
        anvil.mine()
    finally:
        anvil.set_automine(True)
    assert await wallet.next_nonce() == nonce


async def test_amounts_that_would_round_are_refused(sender: EvmPayoutSender):
    nonce = await sender.next_nonce()
    for currency, amount in [("ETH", "0.0000000000000000001"), ("USDT", "1.0000001")]:
        with pytest.raises(TransferRefused, match="more than"):
            await sender.sign_transfer(
                new_address(), currency, Decimal(amount), nonce=nonce, priority="recommended"
            )
    for amount in ("0", "-1", "NaN", "Infinity"):
        with pytest.raises(TransferRefused):
            await sender.sign_transfer(
                new_address(), "ETH", Decimal(amount), nonce=nonce, priority="recommended"
            )
    # Trailing zeros are no extra precision.
    signed = await sender.sign_transfer(
        new_address(), "USDT", Decimal("1.0000000"), nonce=nonce, priority="recommended"
    )
    assert int.from_bytes(decoded(signed)["data"][-32:], "big") == 10**6


def test_amount_to_units():
    assert amount_to_units(Decimal("1.234567890123456789"), 18) == 1234567890123456789
    assert (
        amount_to_units(
            Decimal(
                "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
            ),
            18,
        )
        == 2**256 - 1
    )
    assert amount_to_units(Decimal("5E+2"), 6) == 500_000_000
    with pytest.raises(ValueError, match="more than any"):
        amount_to_units(Decimal(2**256), 0, 2**256)
    # 10**70 + 10**-79 coins: 150 digits, which 100-digit scaling alone would round to a
    # whole number of wei.
    with pytest.raises(ValueError):
        amount_to_units(Decimal(f"1{'0' * 70}.{'0' * 78}1"), 18)
    with pytest.raises(ValueError):
        amount_to_units(0.1, 18)  # type: ignore[arg-type]


async def test_bad_requests_are_refused(sender: EvmPayoutSender):
    with pytest.raises(TransferRefused, match="no eth address"):
        await sender.sign_transfer("0x1234", "ETH", Decimal(1), nonce=0, priority="recommended")
    with pytest.raises(TransferRefused, match="carries no DAI"):
        await sender.sign_transfer(
            new_address(), "DAI", Decimal(1), nonce=0, priority="recommended"
        )
    with pytest.raises(ValueError, match="need the account nonce"):
        await sender.sign_transfer(
            new_address(), "ETH", Decimal(1), nonce=None, priority="recommended"
        )


async def test_node_refusal_is_rejected(anvil: Anvil, make_sender: MakeSender):
    """Signed while affordable, broadcast after another payout spent the coins."""
    wallet = await make_sender(wei=ETHER)
    nonce = await wallet.next_nonce()
    late = await wallet.sign_transfer(
        new_address(), "ETH", Decimal("0.5"), nonce=nonce + 1, priority="recommended"
    )
    early = await wallet.sign_transfer(
        new_address(), "ETH", Decimal("0.9"), nonce=nonce, priority="recommended"
    )
    await wallet.broadcast(early)
    await mined(wallet, early.txid)

    with pytest.raises(BroadcastRejected, match="Insufficient funds") as refused:
        await wallet.broadcast(late)
    assert not isinstance(refused.value, NonceTaken)


@pytest.mark.parametrize(
    ("message", "code", "outcome"),
    [
        ("already known", -32000, None),  # geth
        ("AlreadyKnown", -32010, None),  # Nethermind
        ("Known transaction", -32000, None),
        ("ALREADY_EXISTS: already known", -32000, None),  # Erigon
        ("nonce too low", -32000, NonceTaken),
        ("NonceTooLow", -32010, NonceTaken),
        ("OldNonce", -32010, NonceTaken),
        ("Transaction nonce is too low. Try incrementing the nonce.", -32010, NonceTaken),
        ("nonce has already been used", -32000, NonceTaken),
        ("unknown transaction type", -32000, BroadcastRejected),
        ("replacement transaction underpriced", -32000, BroadcastRejected),
        ("intrinsic gas too low", -32000, BroadcastRejected),
        ("invalid sender", -32000, BroadcastRejected),
        ("txpool is full", -32000, ChainUnavailable),
        ("daily request count exceeded, request rate limited", -32005, ChainUnavailable),
    ],
)
async def test_node_answers_are_told_apart(
    sender: EvmPayoutSender,
    monkeypatch: pytest.MonkeyPatch,
    message: str,
    code: int,
    outcome: type[Exception] | None,
):
    signed = await sender.sign_transfer(
        new_address(), "ETH", Decimal(1), nonce=await sender.next_nonce(), priority="recommended"
    )
    provider = sender.adapter._provider
    make_request = provider.make_request

    async def refusing(method: str, params: Any) -> Any:
        if method == "eth_sendRawTransaction":
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}}
        return await make_request(method, params)

    monkeypatch.setattr(provider, "make_request", refusing)
    if outcome is None:
        await sender.broadcast(signed)
    else:
        with pytest.raises(outcome) as raised:
            await sender.broadcast(signed)
        if outcome is BroadcastRejected:
            assert not isinstance(raised.value, NonceTaken)
            assert message in str(raised.value)


async def test_lookup_of_an_unknown_transaction(sender: EvmPayoutSender):
    assert await sender.lookup("0x" + "ab" * 32) is None


async def test_wrong_chain_is_refused(anvil: Anvil, make_sender: MakeSender, hot_key: bytes):
    wrong = await make_sender(hot_key, chain_id=56)
    with pytest.raises(ChainMismatch, match="configured for 56"):
        await wrong.sign_transfer(new_address(), "ETH", Decimal(1), nonce=0, priority="recommended")


async def test_node_down_is_unavailable(hot_key: bytes):
    down = EvmPayoutSender(
        EvmAdapter("eth", f"http://127.0.0.1:{free_port()}", "ETH", {}, chain_id=1), hot_key
    )
    signed = SignedTransfer(txid="0x" + "00" * 32, raw="0x02", from_address=down.hot_address)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            down.next_nonce,
            down.tip,
            lambda: down.balance("ETH"),
            lambda: down.lookup(signed.txid),
            lambda: down.broadcast(signed),
            lambda: down.sign_transfer(
                new_address(), "ETH", Decimal(1), nonce=0, priority="recommended"
            ),
        ]
        for call in calls:
            with pytest.raises(ChainUnavailable):
                await call()
    finally:
        await down.close()


def test_from_catalogue(hot_key: bytes):
    usdt = "0xdac17f958d2ee523a2206206994597c13d831ec7"
    services = [
        Service("eth", "ETH", 18, Decimal(1), Decimal(10**6), Decimal(0), Decimal(0)),
        Service("eth", "USDT", 6, Decimal(1), Decimal(10**6), Decimal(0), Decimal(0), usdt),
    ]
    network = Network("eth", "Ethereum", "ETH", "evm", 12, chain_id=1)
    sender = EvmPayoutSender.from_catalogue(
        network, services, "http://127.0.0.1:1", hot_key, timeout=5.0
    )
    assert (sender.network, sender.native) == ("eth", "ETH")
    assert sender.adapter.tokens == {to_checksum_address(usdt): ("USDT", 6)}
    assert sender.adapter.chain_id == 1
    assert sender.hot_address == EvmPayoutSender(sender.adapter, hot_key).hot_address
