"""Paydesk's Bitcoin payout signing judged by Bitcoin Core's own consensus code.

No bitcoind runs here, but libbitcoinkernel (py-bitcoinkernel, module `pbk`) is Bitcoin
Core's validation compiled as a library. The tests build a regtest chain block by block in
Python and hand every block to it: a transaction `sign_transaction` produced is good only
if the kernel connects the block carrying it, and a tampered one must make it refuse the
block for a consensus reason (not for a malformed block, which would prove nothing about
the signatures).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from bip_utils import Bip44Changes
from embit import ec
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from paydesk.chains.utxo_addresses import UtxoAddressFormat
from paydesk.chains.utxo_signing import (
    RBF_SEQUENCE,
    Coin,
    SigningFailed,
    select_coins,
    sign_transaction,
)
from tests.keyring import key_ring

#: BIP84's test mnemonic: its first change address is a published vector.
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
#: BIP84's m/84'/0'/0'/1/0 of that mnemonic (mainnet spelling of Paydesk's hot address).
BIP84_FIRST_CHANGE = "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el"
MAINNET = UtxoAddressFormat(bech32_hrp="bc", p2pkh_version=0, p2sh_version=5)
REGTEST = UtxoAddressFormat(bech32_hrp="bcrt", p2pkh_version=111, p2sh_version=196)
#: Regtest's legacy (P2PKH) spelling: a payee without segwit.
REGTEST_LEGACY = UtxoAddressFormat(bech32_hrp=None, p2pkh_version=111, p2sh_version=196)
#: Regtest's proof-of-work limit: nBits 0x207fffff, about one header in two qualifies.
REGTEST_BITS = 0x207FFFFF
POW_TARGET = 0x7FFFFF << (8 * (0x20 - 3))
COIN = 100_000_000
COINBASE_MATURITY = 100
#: The miner's coins are paid to OP_TRUE: spendable with an empty scriptSig, so funding
#: Paydesk's addresses needs no key of the test's own.
ANYONE = Script(b"\x51")
FEE_PER_KVB = Decimal("0.0002")


def kernel_module() -> ModuleType:
    """py-bitcoinkernel, or a skip where it is not installed (a failure under CI, which
    installs the test extra: a missing kernel there must not pass silently)."""
    try:
        return importlib.import_module("pbk")
    except (ImportError, OSError) as exc:  # OSError: libbitcoinkernel.so failed to load
        message = f"py-bitcoinkernel cannot be imported ({exc}); install the test extra"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Bitcoin's merkle tree (an odd level repeats its last hash), internal byte order."""
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def stripped(tx: Transaction) -> bytes:
    """The serialization without witnesses: what the txid hashes, and what weighs 4."""
    return (
        tx.version.to_bytes(4, "little")
        + bytes([len(tx.vin)])
        + b"".join(inp.serialize() for inp in tx.vin)
        + bytes([len(tx.vout)])
        + b"".join(out.serialize() for out in tx.vout)
        + tx.locktime.to_bytes(4, "little")
    )


def vsize(tx: Transaction) -> int:
    weight = 3 * len(stripped(tx)) + len(tx.serialize())
    return -(-weight // 4)


def height_push(height: int) -> bytes:
    """BIP34: the coinbase scriptSig starts with the block height, as Bitcoin Core's
    `CScript() << height` pushes it (OP_1..OP_16 for small heights, else minimal)."""
    if 1 <= height <= 16:
        return bytes([0x50 + height])
    number = height.to_bytes((height.bit_length() + 8) // 8, "little")
    return bytes([len(number)]) + number


def subsidy(height: int) -> int:
    """Regtest halves every 150 blocks."""
    return (50 * COIN) >> (height // 150)


def fee_of(tx: Transaction, spent: dict[tuple[bytes, int], int]) -> int:
    return sum(spent[(inp.txid, inp.vout)] for inp in tx.vin) - sum(o.value for o in tx.vout)


@dataclass(frozen=True)
class Verdict:
    """What the kernel made of a block: whether it became the tip, the result its check
    reported ("VALID", else the BlockValidationResult), and the reason it logged."""

    connected: bool
    result: str
    reason: str = ""


ACCEPTED = Verdict(True, "VALID")


def rejected(reason: str) -> Verdict:
    """A block refused by consensus rules, with Bitcoin Core's reject reason."""
    return Verdict(False, "CONSENSUS", reason)


@dataclass
class KernelChain:
    """A regtest chain whose blocks are built here and validated by libbitcoinkernel."""

    pbk: ModuleType
    datadir: Path
    #: Block hash (internal order) → result reported by `block_checked`.
    checked: dict[bytes, str] = field(default_factory=dict)
    #: The kernel's log: the only place a reject reason is told.
    log: list[str] = field(default_factory=list)
    #: Value of every output created so far, by (txid in display order, index).
    values: dict[tuple[bytes, int], int] = field(default_factory=dict)
    coinbases: dict[int, Transaction] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._log = self.pbk.LoggingConnection(self.log.append)
        self._callbacks = self.pbk.ValidationInterfaceCallbacks(block_checked=self._on_checked)
        self.chainman = self.pbk.load_chainman(
            self.datadir, self.pbk.ChainType.REGTEST, validation_callbacks=self._callbacks
        )
        genesis = self.chainman.get_active_chain().block_tree_entries[0]
        self.tip = bytes(genesis.block_hash)
        self.tip_time = int.from_bytes(bytes(genesis.block_header)[68:72], "little")
        self.height = 0

    def _on_checked(self, _user_data: Any, block: Any, state: Any) -> None:
        # The state is only valid during the callback: keep its values, not the object.
        valid = state.validation_mode == self.pbk.ValidationMode.VALID
        result = "VALID" if valid else state.block_validation_result.name
        self.checked[bytes(block.block_hash)] = result

    def block(self, txs: Sequence[Transaction], fees: int) -> bytes:
        """A block on the tip: a BIP34 coinbase claiming exactly subsidy plus fees and
        committing to the witnesses (BIP141), then `txs`, with a header that meets the
        regtest target."""
        height = self.height + 1
        coinbase = Transaction(
            version=2,
            vin=[
                TransactionInput(
                    b"\0" * 32,
                    0xFFFFFFFF,
                    # At least two bytes: the height push alone may be one.
                    Script(height_push(height) + b"\x00"),
                    witness=Witness([b"\0" * 32]),  # the witness reserved value
                )
            ],
            vout=[TransactionOutput(subsidy(height) + fees, ANYONE)],
            locktime=0,
        )
        wtxids = [b"\0" * 32] + [sha256d(tx.serialize()) for tx in txs]
        commitment = sha256d(merkle_root(wtxids) + b"\0" * 32)
        coinbase.vout.append(TransactionOutput(0, Script(b"\x6a\x24\xaa\x21\xa9\xed" + commitment)))
        every = [coinbase, *txs]
        root = merkle_root([sha256d(stripped(tx)) for tx in every])
        prefix = (0x20000000).to_bytes(4, "little") + self.tip + root
        prefix += (self.tip_time + 1).to_bytes(4, "little") + REGTEST_BITS.to_bytes(4, "little")
        nonce = 0
        while int.from_bytes(sha256d(prefix + nonce.to_bytes(4, "little")), "little") > POW_TARGET:
            nonce += 1
        body = bytes([len(every)]) + b"".join(tx.serialize() for tx in every)
        return prefix + nonce.to_bytes(4, "little") + body

    def submit(self, raw: bytes) -> Verdict:
        """Hand a block to the kernel; the tip moves on only if it was connected."""
        block_hash = sha256d(raw[:80])
        before = self.chainman.get_active_chain().height
        self.log.clear()
        # Refused before connection (a malformed block) raises; the callback says why.
        with contextlib.suppress(self.pbk.ProcessBlockException):
            self.chainman.process_block(self.pbk.Block(raw))
        chain = self.chainman.get_active_chain()
        connected = chain.height == before + 1 and (
            bytes(chain.block_tree_entries[chain.height].block_hash) == block_hash
        )
        result = self.checked.get(block_hash, "UNCHECKED")
        # "ConnectBlock <hash> failed, <reason>[,| (]<details>": the reason is one word.
        failure = f"ConnectBlock {block_hash[::-1].hex()} failed, "
        reasons = [
            re.split(r"[ ,]", line.split(failure, 1)[1], maxsplit=1)[0]
            for line in self.log
            if failure in line
        ]
        if connected:
            self.tip, self.height = block_hash, chain.height
            self.tip_time += 1
            txs = self._transactions(raw)
            self.coinbases[self.height] = txs[0]
            for tx in txs:
                for index, out in enumerate(tx.vout):
                    self.values[(tx.txid(), index)] = out.value
        return Verdict(connected, result, reasons[0] if reasons else "")

    def _transactions(self, raw: bytes) -> list[Transaction]:
        """The block's transactions, read back with the kernel's parser."""
        block = self.pbk.Block(raw)
        return [Transaction.parse(bytes(tx)) for tx in block.transactions]

    def mine(self, txs: Sequence[Transaction] = ()) -> None:
        verdict = self.submit(self.block(txs, sum(fee_of(tx, self.values) for tx in txs)))
        assert verdict == ACCEPTED, (verdict, self.log)

    def fund(self, payments: Iterable[tuple[bytes, int]], *, early: bool = False) -> Transaction:
        """A transaction for the next block spending the oldest unspent coinbase (OP_TRUE:
        no signature) to the given scripts, the rest being its fee. That coinbase must be
        mature at the next height, unless `early` (for a test of that very rule)."""
        height = min(self.coinbases)
        coinbase = self.coinbases.pop(height)
        assert early or self.height + 1 - height >= COINBASE_MATURITY
        return Transaction(
            version=2,
            vin=[TransactionInput(coinbase.txid(), 0)],
            vout=[TransactionOutput(units, Script(script)) for script, units in payments],
            locktime=0,
        )


@dataclass(frozen=True)
class HotWallet:
    """Paydesk's BTC keys of the test mnemonic: internal chain index → (address, key)."""

    keys: dict[int, tuple[str, bytes]]

    @classmethod
    def derive(cls, count: int) -> HotWallet:
        ring = key_ring(MNEMONIC)
        internal = ring.account("btc").Change(Bip44Changes.CHAIN_INT)
        keys = {}
        for index in range(count):
            node = internal.AddressIndex(index)
            public = node.PublicKey().RawCompressed().ToBytes()
            keys[index] = (REGTEST.from_public_key(public), node.PrivateKey().Raw().ToBytes())
        return cls(keys)

    def address(self, index: int) -> str:
        return self.keys[index][0]

    def script(self, index: int) -> bytes:
        return REGTEST.script_pubkey(self.address(index))

    @property
    def by_address(self) -> dict[str, bytes]:
        return dict(self.keys.values())


def payee(index: int, *, legacy: bool = False) -> str:
    """Someone else's address: the external chain of another account."""
    ring = key_ring(MNEMONIC)
    node = ring.account("ltc").Change(Bip44Changes.CHAIN_EXT).AddressIndex(index)
    public = node.PublicKey().RawCompressed().ToBytes()
    return (REGTEST_LEGACY if legacy else REGTEST).from_public_key(public)


def payout(
    coins: list[Coin], to: str, units: int, change_to: str, keys: dict[str, bytes]
) -> tuple[list[Coin], Transaction, int]:
    """What `UtxoPayoutSender.sign_transfer` does once it has its coins: select, add the
    change output, sign. Returns the coins spent, the transaction and its fee."""
    script = REGTEST.script_pubkey(to)
    ordered = sorted(coins, key=lambda coin: coin.units, reverse=True)
    chosen, fee, change = select_coins(ordered, units, len(script), FEE_PER_KVB, 8)
    assert chosen is not None
    outputs = [TransactionOutput(units, Script(script))]
    if change:
        outputs.append(TransactionOutput(change, Script(REGTEST.script_pubkey(change_to))))
    return chosen, sign_transaction(chosen, outputs, keys, REGTEST), fee


def tampered(tx: Transaction, change: str, index: int = 0) -> Transaction:
    """A copy of a signed transaction with one thing altered after signing: a byte of
    input `index`'s signature, or the first output's value."""
    copy = Transaction.parse(tx.serialize())
    if change == "signature":
        signature = bytearray(copy.vin[index].witness.items[0])
        signature[10] ^= 0x01  # inside r: still valid DER, no longer a valid signature
        copy.vin[index].witness.items[0] = bytes(signature)
    elif change == "value":
        copy.vout[0].value -= 1  # less to the payee, one unit more fee: still balanced
    return copy


@pytest.fixture
def chain(tmp_path: Path) -> KernelChain:
    """A fresh regtest chain of 101 blocks: the next may spend block 1's and 2's coinbases."""
    kernel = KernelChain(kernel_module(), tmp_path / "kernel")
    for _ in range(COINBASE_MATURITY + 1):
        kernel.mine()
    assert kernel.chainman.get_active_chain().height == COINBASE_MATURITY + 1
    return kernel


def test_the_hot_address_is_bip84s_published_change_address() -> None:
    """The regtest address Paydesk pays from is the BIP84 vector's key, spelled `bcrt`."""
    wallet = HotWallet.derive(1)
    assert wallet.address(0).startswith("bcrt1q")
    assert wallet.script(0) == MAINNET.script_pubkey(BIP84_FIRST_CHANGE)


def test_a_coinbase_is_spendable_100_blocks_later_not_99(tmp_path: Path) -> None:
    """The kernel judges context (coinbase maturity), not only well-formedness: block 100
    may not spend block 1's coinbase, block 101 may."""
    kernel = KernelChain(kernel_module(), tmp_path / "kernel")
    for _ in range(COINBASE_MATURITY - 1):
        kernel.mine()
    early = kernel.fund([(HotWallet.derive(1).script(0), COIN)], early=True)
    fee = fee_of(early, kernel.values)
    verdict = kernel.submit(kernel.block([early], fee))
    assert verdict == rejected("bad-txns-premature-spend-of-coinbase")
    kernel.mine()
    assert kernel.submit(kernel.block([early], fee)) == ACCEPTED
    assert kernel.height == COINBASE_MATURITY + 1


def test_a_payout_signed_by_paydesk_is_valid_and_tampering_is_not(chain: KernelChain) -> None:
    wallet = HotWallet.derive(3)
    funding = chain.fund([(wallet.script(0), COIN)])
    chain.mine([funding])  # block 102 pays the BIP84 hot address

    hot = Coin(funding.txid().hex(), 0, COIN, wallet.address(0))
    chosen, signed, fee = payout(
        [hot], payee(0, legacy=True), 30_000_000, wallet.address(1), wallet.by_address
    )
    assert chosen == [hot]
    assert [inp.sequence for inp in signed.vin] == [RBF_SEQUENCE]
    assert (signed.version, signed.locktime) == (2, 0)
    assert fee == fee_of(signed, chain.values)
    # The selection's size estimate covers the real size: the fee rate asked is paid.
    assert fee * 1000 >= vsize(signed) * FEE_PER_KVB.scaleb(8)

    for change in ("signature", "value"):
        bad = tampered(signed, change)
        verdict = chain.submit(chain.block([bad], fee_of(bad, chain.values)))
        assert verdict == rejected("block-script-verify-flag-failed"), change
    # The fee Paydesk records is the fee by the kernel's accounting, to the unit: a
    # coinbase claiming one more is refused.
    assert chain.submit(chain.block([signed], fee + 1)) == rejected("bad-cb-amount")

    raw = chain.block([signed], fee)
    assert chain.submit(raw) == ACCEPTED
    assert chain.height == 103
    # The kernel's txid of the block's payout is the one Paydesk records.
    kernel_txid = chain.pbk.Block(raw).transactions[1].txid
    assert str(kernel_txid) == signed.txid().hex()

    # The same coin again, in a correctly signed transaction: a double spend.
    _, again, again_fee = payout([hot], payee(1), 20_000_000, wallet.address(2), wallet.by_address)
    verdict = chain.submit(chain.block([again], again_fee))
    assert verdict == rejected("bad-txns-inputs-missingorspent")
    assert chain.height == 103


def test_two_inputs_of_two_keys_are_each_signed(chain: KernelChain) -> None:
    """A payout larger than any one coin spends the hot address's output and the change
    an earlier payout left at m/…/1/1: two P2WPKH inputs, two keys, each checked."""
    wallet = HotWallet.derive(3)
    funding = chain.fund([(wallet.script(0), COIN), (wallet.script(0), COIN // 2)])
    chain.mine([funding])
    first = Coin(funding.txid().hex(), 0, COIN, wallet.address(0))
    _, earlier, _ = payout([first], payee(0), 30_000_000, wallet.address(1), wallet.by_address)
    chain.mine([earlier])  # its change, to m/…/1/1, is output 1
    coins = [
        Coin(funding.txid().hex(), 1, COIN // 2, wallet.address(0)),
        Coin(earlier.txid().hex(), 1, earlier.vout[1].value, wallet.address(1)),
    ]
    chosen, signed, fee = payout(coins, payee(1), COIN, wallet.address(2), wallet.by_address)
    assert {coin.address for coin in chosen} == {wallet.address(0), wallet.address(1)}
    assert len({inp.witness.items[1] for inp in signed.vin}) == 2  # two public keys
    assert [inp.sequence for inp in signed.vin] == [RBF_SEQUENCE] * 2
    assert fee * 1000 >= vsize(signed) * FEE_PER_KVB.scaleb(8)

    # Input by input through the kernel's script interpreter: each witness satisfies its
    # own output, and no other (a segwit signature commits to the amount it spends).
    pbk = chain.pbk
    tx = pbk.Transaction(signed.serialize())
    flags = pbk.ScriptVerificationFlags.ALL & ~pbk.ScriptVerificationFlags.TAPROOT
    for index, coin in enumerate(chosen):
        script = pbk.ScriptPubkey(REGTEST.script_pubkey(coin.address))
        assert script.verify(coin.units, tx, None, index, flags)
        assert not script.verify(coin.units + 1, tx, None, index, flags)
        assert not script.verify(coin.units, tx, None, 1 - index, flags)

    for index in (0, 1):  # either signature spoilt spoils the block
        bad = tampered(signed, "signature", index)
        verdict = chain.submit(chain.block([bad], fee_of(bad, chain.values)))
        assert verdict == rejected("block-script-verify-flag-failed"), index
    chain.mine([signed])
    assert chain.height == 104


def test_signing_refuses_a_coin_it_has_no_key_for() -> None:
    """Every input is signed or nothing is returned: a missing or wrong key is an error,
    not a transaction the network would reject later."""
    wallet = HotWallet.derive(3)
    coins = [
        Coin("11" * 32, 0, COIN, wallet.address(0)),
        Coin("22" * 32, 1, COIN, wallet.address(1)),
    ]
    outputs = [TransactionOutput(COIN, Script(REGTEST.script_pubkey(payee(0))))]
    keys = wallet.by_address
    with pytest.raises(SigningFailed, match="no key"):
        sign_transaction(coins, outputs, {wallet.address(0): keys[wallet.address(0)]}, REGTEST)
    wrong = {**keys, wallet.address(1): keys[wallet.address(2)]}
    with pytest.raises(SigningFailed, match="signed 1 of 2"):
        sign_transaction(coins, outputs, wrong, REGTEST)


def test_a_legacy_input_is_signed_for_the_kernel(chain: KernelChain) -> None:
    """A BIP44 (P2PKH) hot wallet, as on the coins without segwit: the signature sits in
    the input script, over the legacy digest, and the kernel's interpreter accepts it."""
    wallet = HotWallet.derive(2)
    key = wallet.by_address[wallet.address(0)]
    public = ec.PrivateKey(key).get_public_key().sec()
    hot = REGTEST_LEGACY.from_public_key(public)
    funding = chain.fund([(REGTEST_LEGACY.script_pubkey(hot), COIN)])
    chain.mine([funding])

    coin = Coin(funding.txid().hex(), 0, COIN, hot, funding.serialize())
    outputs = [TransactionOutput(COIN - 40_000, Script(REGTEST.script_pubkey(payee(0))))]
    signed = sign_transaction([coin], outputs, {hot: key}, REGTEST_LEGACY)
    assert not signed.is_segwit and signed.vin[0].script_sig.data

    pbk = chain.pbk
    flags = pbk.ScriptVerificationFlags.ALL & ~pbk.ScriptVerificationFlags.TAPROOT
    script = pbk.ScriptPubkey(REGTEST_LEGACY.script_pubkey(hot))
    assert script.verify(COIN, pbk.Transaction(signed.serialize()), None, 0, flags)
    assert chain.submit(chain.block([signed], 40_000)) == ACCEPTED

    # Without its previous transaction, or with one that does not hold it, nothing is signed.
    with pytest.raises(SigningFailed, match="without its transaction"):
        sign_transaction([replace(coin, previous=None)], outputs, {hot: key}, REGTEST_LEGACY)
    with pytest.raises(SigningFailed, match="another amount"):
        sign_transaction([replace(coin, units=COIN * 2)], outputs, {hot: key}, REGTEST_LEGACY)
    other = chain.fund([(REGTEST_LEGACY.script_pubkey(hot), COIN)])
    with pytest.raises(SigningFailed, match="another one"):
        sign_transaction(
            [replace(coin, previous=other.serialize())], outputs, {hot: key}, REGTEST_LEGACY
        )
