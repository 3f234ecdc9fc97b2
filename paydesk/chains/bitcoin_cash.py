"""Bitcoin Cash transactions, signed as the chain requires since its fork from Bitcoin
(the BIP143 digest with SIGHASH_FORKID, no segwit, no replace-by-fee). Its addresses
(CashAddr) are spelled by `utxo_addresses.CashAddressFormat`.

Every signature commits to the value of the output it spends and carries the fork id bit
(0x40) in its sighash type, which makes it invalid on Bitcoin (replay protection). The
digest is the BIP143 one, the spent coins are plain P2PKH outputs, and the signed inputs
carry `<signature> <compressed public key>` in their scriptSig.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from embit import compact, ec
from embit.hashes import double_sha256, hash160
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from paydesk.chains.utxo_addresses import CashAddressFormat, p2pkh_script
from paydesk.chains.utxo_signing import Coin, SigningFailed

#: Bitcoin Cash has no replace-by-fee: every input is final (a stuck payout waits for its
#: fee to be enough, it is never bumped).
FINAL_SEQUENCE = 0xFFFFFFFF
#: Sighash type bits. Bitcoin Cash signatures must carry SIGHASH_FORKID (with fork id 0
#: in the upper 24 bits); SIGHASH_UTXOS (since the 2023 upgrade) commits to every spent
#: output, which `forkid_sighash` is not given, so it refuses it.
SIGHASH_ALL = 0x01
SIGHASH_NONE = 0x02
SIGHASH_SINGLE = 0x03
SIGHASH_UTXOS = 0x20
SIGHASH_FORKID = 0x40
SIGHASH_ANYONECANPAY = 0x80
SIGHASH_ALL_FORKID = SIGHASH_ALL | SIGHASH_FORKID


def forkid_sighash(
    tx: Transaction,
    index: int,
    script_code: bytes,
    value: int,
    sighash_type: int = SIGHASH_ALL_FORKID,
) -> bytes:
    """The 32-byte digest a Bitcoin Cash signature of input `index` signs: BIP143's
    layout over the spent output's `script_code` and `value` (in satoshis), with the
    sighash type as given (the fork id bit set, the fork id in the upper 24 bits; 0 on
    Bitcoin Cash). Raises ValueError for a type without the fork id bit or with
    SIGHASH_UTXOS, and for an input the transaction does not have."""
    if not 0 <= sighash_type <= 0xFFFFFFFF:
        raise ValueError(f"sighash type {sighash_type} does not fit in 32 bits")
    if not sighash_type & SIGHASH_FORKID:
        raise ValueError("without SIGHASH_FORKID the signature is not valid on Bitcoin Cash")
    if sighash_type & SIGHASH_UTXOS:
        raise ValueError("SIGHASH_UTXOS commits to the spent outputs, which are not given")
    return _bip143_digest(tx, index, script_code, value, sighash_type)


def _bip143_digest(
    tx: Transaction, index: int, script_code: bytes, value: int, sighash_type: int
) -> bytes:
    """BIP143's digest, which Bitcoin Cash took over for its fork id signatures. Base
    types other than NONE and SINGLE hash as ALL does, as the nodes' digest function
    does (their script check refuses undefined types anyway)."""
    if not 0 <= index < len(tx.vin):
        raise ValueError(f"the transaction has no input {index}")
    base = sighash_type & 0x1F
    anyone_can_pay = bool(sighash_type & SIGHASH_ANYONECANPAY)
    zero = bytes(32)
    # embit keeps txids in display order; the wire (and the digest) has them reversed.
    prevouts = zero
    if not anyone_can_pay:
        prevouts = double_sha256(
            b"".join(inp.txid[::-1] + inp.vout.to_bytes(4, "little") for inp in tx.vin)
        )
    sequences = zero
    if not anyone_can_pay and base not in (SIGHASH_NONE, SIGHASH_SINGLE):
        sequences = double_sha256(b"".join(inp.sequence.to_bytes(4, "little") for inp in tx.vin))
    outputs = zero
    if base not in (SIGHASH_NONE, SIGHASH_SINGLE):
        outputs = double_sha256(b"".join(out.serialize() for out in tx.vout))
    elif base == SIGHASH_SINGLE and index < len(tx.vout):
        outputs = double_sha256(tx.vout[index].serialize())
    spent = tx.vin[index]
    preimage = b"".join(
        [
            (tx.version & 0xFFFFFFFF).to_bytes(4, "little"),
            prevouts,
            sequences,
            spent.txid[::-1],
            spent.vout.to_bytes(4, "little"),
            compact.to_bytes(len(script_code)),
            script_code,
            value.to_bytes(8, "little"),
            spent.sequence.to_bytes(4, "little"),
            outputs,
            tx.locktime.to_bytes(4, "little"),
            sighash_type.to_bytes(4, "little"),
        ]
    )
    return double_sha256(preimage)


def _push(data: bytes) -> bytes:
    """A direct push (signatures and compressed keys are always under 76 bytes)."""
    assert len(data) < 0x4C
    return bytes([len(data)]) + data


def sign_forkid_transaction(
    coins: Sequence[Coin],
    outputs: Sequence[TransactionOutput],
    keys: Mapping[str, bytes],
    address_format: CashAddressFormat,
    *,
    version: int = 2,
) -> Transaction:
    """A transaction spending `coins` (P2PKH outputs) to `outputs`, version 2 unless told
    otherwise, every input final (no replace-by-fee on Bitcoin Cash), no locktime, each
    input signed SIGHASH_ALL|SIGHASH_FORKID with the private key `keys` holds for the
    address of its coin.

    Signatures are RFC6979 deterministic and low-S (libsecp256k1), without grinding for a
    short R, so the same coins, outputs and keys always give the same bytes, the ones
    other RFC6979 signers produce. Pure (no node). Raises SigningFailed when a key is
    missing, invalid, or not the key of its coin's address."""
    if not coins:
        raise SigningFailed("no coins to spend")
    missing = sorted({coin.address for coin in coins} - set(keys))
    if missing:
        raise SigningFailed(f"no key for {', '.join(missing)}")
    signers: list[tuple[bytes, ec.PrivateKey, bytes]] = []
    for coin in coins:
        try:
            script = address_format.script_pubkey(coin.address)
        except ValueError as exc:
            raise SigningFailed(
                f"{coin.address} is not a {address_format.prefix} address: {exc}"
            ) from None
        try:
            private = ec.PrivateKey(keys[coin.address])
        except ec.ECError as exc:
            raise SigningFailed(f"the key for {coin.address} is not a private key: {exc}") from None
        public = private.get_public_key().sec()
        if script != p2pkh_script(hash160(public)):
            raise SigningFailed(f"the key given for {coin.address} is not its key")
        signers.append((script, private, public))
    inputs = [
        TransactionInput(bytes.fromhex(coin.txid), coin.vout, sequence=FINAL_SEQUENCE)
        for coin in coins
    ]
    tx = Transaction(version=version, vin=inputs, vout=list(outputs), locktime=0)
    # The digest leaves every scriptSig out, so the inputs can be signed in any order.
    for index, (coin, (script, private, public)) in enumerate(zip(coins, signers, strict=True)):
        digest = forkid_sighash(tx, index, script, coin.units, SIGHASH_ALL_FORKID)
        signature = private.sign(digest, grind=False).serialize()
        unlocking = _push(signature + bytes([SIGHASH_ALL_FORKID])) + _push(public)
        tx.vin[index].script_sig = Script(unlocking)
    return tx
