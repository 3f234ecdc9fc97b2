"""Bitcoin-family payouts against a real Litecoin Core node in regtest: transactions
Paydesk builds and signs itself, judged by the node (`testmempoolaccept`, then mined), a
tampered one refused, change to fresh addresses, replace-by-fee signalled, and the hot
wallet's state found again by a new process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from embit.transaction import Transaction

from paydesk.catalogue.service import load_catalogue
from paydesk.chains.adapter import HotWalletShort, NonceTaken, TransferRefused
from paydesk.chains.keys import KeyRing
from paydesk.chains.utxo_addresses import UtxoAddressFormat
from paydesk.chains.utxo_sender import UtxoPayoutSender
from paydesk.vault import Vault, generate_master_key
from tests.litecoin import REGTEST_CATALOGUE, Litecoind, litecoind

#: Each test starts a real node: seconds each.
pytestmark = pytest.mark.slow

HOT_MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Litecoind]:
    with litecoind(tmp_path / "litecoind") as started:
        yield started


@pytest.fixture
def network(tmp_path: Path):
    override = tmp_path / "catalogue.toml"
    override.write_text(REGTEST_CATALOGUE)
    return load_catalogue(["ltc"], override).network("ltc")


def new_sender(node: Litecoind, network) -> UtxoPayoutSender:
    keys = KeyRing.for_networks(Vault([generate_master_key().encode()]), [network])
    keys.use_mnemonic(HOT_MNEMONIC)
    return UtxoPayoutSender("ltc", node.url, "LTC", UtxoAddressFormat.of(network),
                            keys.account("ltc"), node_chain="regtest")  # fmt: skip


@pytest.fixture
async def sender(node: Litecoind, network) -> AsyncIterator[UtxoPayoutSender]:
    made = new_sender(node, network)
    yield made
    await made.close()


async def funded(node: Litecoind, sender: UtxoPayoutSender, *amounts: str) -> None:
    await sender.balance("LTC")  # makes the watch-only wallet
    for amount in amounts:
        node.send(sender.hot_address, amount)
    node.mine(1)


def accepted(node: Litecoind, raw: str) -> dict:
    [verdict] = node.rpc("testmempoolaccept", [raw])
    return verdict


async def test_a_payout_the_node_accepts_then_mines(node, sender):
    await funded(node, sender, "2")
    assert await sender.balance("LTC") == Decimal("2")
    payee = node.rpc("getnewaddress", "", "bech32")
    nonce = await sender.next_nonce()
    assert nonce == 1
    signed = await sender.sign_transfer(payee, "LTC", Decimal("0.75"), nonce=nonce,
                                        priority="recommended")  # fmt: skip
    verdict = accepted(node, signed.raw)
    assert verdict["allowed"] is True, verdict
    assert verdict["txid"] == signed.txid

    tx = Transaction.from_string(signed.raw)
    assert all(vin.sequence == 0xFFFFFFFD for vin in tx.vin)  # replace-by-fee signalled
    paid = [out for out in tx.vout if out.value == 75_000_000]
    change = [out for out in tx.vout if out.value != 75_000_000]
    assert len(paid) == 1 and len(change) == 1
    change_address = sender._key(1)[0]
    assert change_address != sender.hot_address
    assert change[0].script_pubkey.data == sender.address_format.script_pubkey(change_address)
    fee_units = 200_000_000 - 75_000_000 - change[0].value
    assert Decimal(fee_units).scaleb(-8) == signed.max_fee
    # At the configured fallback (regtest has no estimate yet): 0.0001 LTC/kvB, 10 sat/vB.
    assert 1_000 <= fee_units <= 1_600

    await sender.broadcast(signed)
    await sender.broadcast(signed)  # again: already there, not an error
    entry = node.rpc("getmempoolentry", signed.txid)
    assert entry["bip125-replaceable"] is True
    assert (await sender.lookup(signed.txid)).block_height is None
    [block_hash] = node.mine(1)
    sent = await sender.lookup(signed.txid)
    assert sent.block_height == node.rpc("getblockheader", block_hash)["height"]
    assert sent.fee == signed.max_fee and sent.succeeded
    assert node.rpc("getreceivedbyaddress", payee) == Decimal("0.75")
    await sender.broadcast(signed)  # mined: still not an error
    assert await sender.balance("LTC") == Decimal("2") - Decimal("0.75") - signed.max_fee


async def test_a_tampered_transaction_is_refused_by_the_node(node, sender):
    await funded(node, sender, "1")
    payee = node.rpc("getnewaddress", "", "bech32")
    signed = await sender.sign_transfer(payee, "LTC", Decimal("0.5"), nonce=1,
                                        priority="recommended")  # fmt: skip
    tx = Transaction.from_string(signed.raw)
    tx.vout[0].value += 1  # one more unit to the payee: the signature no longer covers it
    verdict = accepted(node, tx.serialize().hex())
    assert verdict["allowed"] is False
    assert "script" in verdict["reject-reason"]
    assert accepted(node, signed.raw)["allowed"] is True


async def test_change_addresses_are_never_reused(node, sender, network):
    await funded(node, sender, "1", "1", "1")
    payee = node.rpc("getnewaddress", "", "bech32")
    first = await sender.sign_transfer(payee, "LTC", Decimal("0.3"), nonce=1, priority="high")
    await sender.broadcast(first)
    # Unmined, its change (to m/…/1/1) is already the wallet's own, spendable output.
    second = await sender.sign_transfer(payee, "LTC", Decimal("0.3"), nonce=2, priority="high")
    await sender.broadcast(second)
    node.mine(1)
    assert (await sender.lookup(first.txid)).block_height is not None
    assert (await sender.lookup(second.txid)).block_height is not None
    changes = {
        out.script_pubkey.data
        for raw in (first.raw, second.raw)
        for out in Transaction.from_string(raw).vout
        if out.value != 30_000_000
    }
    assert changes == {
        sender.address_format.script_pubkey(sender._key(index)[0]) for index in (1, 2)
    }

    # A new process finds the wallet as it was: the next change address is the third.
    again = new_sender(node, network)
    try:
        assert await again.next_nonce() == 3
        assert await again.balance("LTC") == await sender.balance("LTC")
    finally:
        await again.close()


async def test_a_spent_input_means_the_transaction_can_never_be_mined(node, sender):
    await funded(node, sender, "1")
    payee = node.rpc("getnewaddress", "", "bech32")
    one = await sender.sign_transfer(payee, "LTC", Decimal("0.2"), nonce=1, priority="high")
    other = await sender.sign_transfer(payee, "LTC", Decimal("0.3"), nonce=2, priority="high")
    await sender.broadcast(one)
    with pytest.raises(NonceTaken):
        await sender.broadcast(other)


async def test_refusals(node, sender):
    await funded(node, sender, "0.1")
    payee = node.rpc("getnewaddress", "", "bech32")
    with pytest.raises(HotWalletShort):
        await sender.sign_transfer(payee, "LTC", Decimal("0.2"), nonce=1, priority="high")
    with pytest.raises(TransferRefused):
        await sender.sign_transfer("ltc1qnotanaddress", "LTC", Decimal("0.01"), nonce=1,
                                   priority="high")  # fmt: skip
    with pytest.raises(TransferRefused):
        await sender.sign_transfer(payee, "USDT", Decimal("0.01"), nonce=1, priority="high")
    with pytest.raises(TransferRefused):
        await sender.sign_transfer(payee, "LTC", Decimal("0.000000001"), nonce=1,
                                   priority="high")  # fmt: skip
    assert await sender.lookup("00" * 32) is None


# --------------------------------------------------------------------------- legacy keys
#: The same node with a BIP44 key path (regtest's coin type 1): Paydesk's addresses are
#: P2PKH, as on the coins without segwit (Dogecoin, Dash).
LEGACY_CATALOGUE = REGTEST_CATALOGUE + "key_path = \"m/44'/1'/0'\"\n"


@pytest.fixture
def legacy_network(tmp_path: Path):
    override = tmp_path / "legacy.toml"
    override.write_text(LEGACY_CATALOGUE)
    return load_catalogue(["ltc"], override).network("ltc")


async def test_a_legacy_payout_over_two_inputs_the_node_accepts(node, legacy_network):
    sender = new_sender(node, legacy_network)
    try:
        assert not sender.address_format.witness
        assert node.rpc("getaddressinfo", sender.hot_address)["iswitness"] is False
        await funded(node, sender, "0.6", "0.6")
        payee = node.rpc("getnewaddress", "", "legacy")
        signed = await sender.sign_transfer(payee, "LTC", Decimal("1"), nonce=1,
                                            priority="recommended")  # fmt: skip
        verdict = accepted(node, signed.raw)
        assert verdict["allowed"] is True, verdict

        tx = Transaction.from_string(signed.raw)
        assert len(tx.vin) == 2 and not tx.is_segwit  # signatures in the input scripts
        assert all(len(vin.script_sig.data) > 100 for vin in tx.vin)
        [change] = [out for out in tx.vout if out.value != 100_000_000]
        assert change.script_pubkey.data == sender.address_format.script_pubkey(sender._key(1)[0])
        fee_units = 120_000_000 - 100_000_000 - change.value
        # 10 + 2 × 148 + 34 + 34 vbytes at 10 units each, rounded up.
        assert fee_units == 3_740 and Decimal(fee_units).scaleb(-8) == signed.max_fee
        # A legacy transaction's size is its virtual size: the estimate covers it.
        assert len(bytes.fromhex(signed.raw)) <= 374

        tampered = Transaction.from_string(signed.raw)
        tampered.vout[0].value += 1
        assert accepted(node, tampered.serialize().hex())["allowed"] is False

        await sender.broadcast(signed)
        node.mine(1)
        assert (await sender.lookup(signed.txid)).block_height is not None
        assert node.rpc("getreceivedbyaddress", payee) == Decimal("1")
        assert await sender.balance("LTC") == Decimal("0.2") - signed.max_fee
    finally:
        await sender.close()
