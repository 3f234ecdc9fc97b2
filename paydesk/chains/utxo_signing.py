"""Spending Bitcoin-family outputs, without a node: which coins a payout takes, and the
transaction signed over them (a PSBT signed with keys derived by bip-utils, finalized by
embit). Pure, so what Paydesk broadcasts can be checked against a consensus
implementation on its own.

Paydesk's addresses are native segwit (P2WPKH) on a BIP84 key path and P2PKH on a BIP44
one (the coins without segwit, such as Dogecoin and Dash). A legacy input signs no
amount, so its whole previous transaction is given and checked before it is signed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from embit import ec
from embit.finalizer import finalize_psbt
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

if TYPE_CHECKING:
    from paydesk.chains.utxo_addresses import AddressFormat, UtxoAddressFormat

#: nSequence that signals BIP125 replaceability: a stuck payout can be bumped.
RBF_SEQUENCE = 0xFFFFFFFD


@dataclass(frozen=True, slots=True)
class SpendShape:
    """Sizes (virtual bytes, rounded up) of what a hot wallet's transaction is made of,
    and the change too small to be worth an output (Bitcoin Core's dust threshold for the
    output type at its default relay fee): such change goes to the fee instead."""

    overhead_vbytes: int
    input_vbytes: int
    change_vbytes: int
    dust_units: int


#: P2WPKH: an input is outpoint, sequence and a witness of signature and key; the fixed
#: part carries the segwit marker.
P2WPKH_SHAPE = SpendShape(overhead_vbytes=11, input_vbytes=68, change_vbytes=31, dust_units=294)
#: P2PKH: the signature and key sit in the input's script.
P2PKH_SHAPE = SpendShape(overhead_vbytes=10, input_vbytes=148, change_vbytes=34, dust_units=546)


def spend_shape(address_format: AddressFormat) -> SpendShape:
    """What spending Paydesk's own addresses of that spelling is made of."""
    return P2WPKH_SHAPE if address_format.witness else P2PKH_SHAPE


@dataclass(frozen=True, slots=True)
class Coin:
    """An output the hot wallet can spend."""

    txid: str
    vout: int
    units: int
    address: str
    #: The raw transaction that created it: needed to sign a legacy (P2PKH) input.
    previous: bytes | None = None


class SigningFailed(ValueError):
    """A transaction could not be fully signed: a key is missing or matches no input."""


def sign_transaction(
    coins: Sequence[Coin],
    outputs: Sequence[TransactionOutput],
    keys: Mapping[str, bytes],
    address_format: UtxoAddressFormat,
) -> Transaction:
    """A PSBT spending `coins` to `outputs` (version 2, every input signalling
    replace-by-fee, no locktime), signed input by input with the private key `keys` holds
    for the address each coin belongs to, then finalized into the raw transaction. A
    P2PKH coin must come with its previous transaction, which must hold that output.

    Pure (no node): what Paydesk broadcasts is exactly what this returns, so it can be
    checked against a consensus implementation on its own."""
    inputs = [
        TransactionInput(bytes.fromhex(coin.txid), coin.vout, sequence=RBF_SEQUENCE)
        for coin in coins
    ]
    tx = Transaction(version=2, vin=inputs, vout=list(outputs), locktime=0)
    psbt = PSBT(tx)
    for slot, coin in zip(psbt.inputs, coins, strict=True):
        script = Script(address_format.script_pubkey(coin.address))
        if script.script_type() == "p2wpkh":
            slot.witness_utxo = TransactionOutput(coin.units, script)
        else:
            slot.non_witness_utxo = _previous_output(coin, script)
    missing = sorted({coin.address for coin in coins} - set(keys))
    if missing:
        raise SigningFailed(f"no key for {', '.join(missing)}")
    signed = 0
    # One pass per distinct key: embit signs every input whose script the key matches.
    for private in {keys[coin.address] for coin in coins}:
        signed += psbt.sign_with(ec.PrivateKey(private))
    if signed != len(coins):
        raise SigningFailed(f"signed {signed} of {len(coins)} inputs")
    final = finalize_psbt(psbt)
    if final is None:
        raise SigningFailed("the transaction could not be finalized")
    return final


def _previous_output(coin: Coin, script: Script) -> Transaction:
    """The coin's previous transaction, checked: its id is the coin's and its output pays
    the coin's amount to the coin's script (a node lying about the amount would otherwise
    make Paydesk sign away the difference as fee)."""
    if coin.previous is None:
        raise SigningFailed(f"{coin.txid}:{coin.vout} is a legacy input without its transaction")
    previous = Transaction.parse(coin.previous)
    if previous.txid().hex() != coin.txid or coin.vout >= len(previous.vout):
        raise SigningFailed(f"the transaction given for {coin.txid}:{coin.vout} is another one")
    output = previous.vout[coin.vout]
    if output.value != coin.units or output.script_pubkey.data != script.data:
        raise SigningFailed(f"{coin.txid}:{coin.vout} holds another amount or script")
    return previous


def fee_units(
    shape: SpendShape,
    inputs: int,
    script_length: int,
    fee_per_kvb: Decimal,
    decimals: int,
    *,
    change: bool = False,
) -> int:
    """The fee, in units rounded up, of spending `inputs` coins to one payee whose output
    script is `script_length` bytes long (and a change output); `fee_per_kvb` is in coins
    per 1000 virtual bytes."""
    vbytes = shape.overhead_vbytes + shape.input_vbytes * inputs + 9 + script_length
    if change:
        vbytes += shape.change_vbytes
    per_vbyte = fee_per_kvb.scaleb(decimals) / Decimal(1000)
    return int((per_vbyte * vbytes).to_integral_value(rounding=ROUND_CEILING))


def select_coins(
    coins: list[Coin],
    units: int,
    script_length: int,
    fee_per_kvb: Decimal,
    decimals: int,
    shape: SpendShape = P2WPKH_SHAPE,
) -> tuple[list[Coin] | None, int, int]:
    """Coins taken in the order given (the sender sorts them largest first) until the
    amount and the fee of the inputs so far are covered; the change output is dropped (its
    value added to the fee) when it would be dust. Returns (chosen or None, fee, change),
    in units; `fee_per_kvb` is in coins per 1000 virtual bytes."""
    chosen: list[Coin] = []
    total = 0
    for coin in coins:
        chosen.append(coin)
        total += coin.units
        fee_without_change = fee_units(shape, len(chosen), script_length, fee_per_kvb, decimals)
        if total < units + fee_without_change:
            continue
        fee_with_change = fee_units(
            shape, len(chosen), script_length, fee_per_kvb, decimals, change=True
        )
        change = total - units - fee_with_change
        if change >= shape.dust_units:
            return chosen, fee_with_change, change
        return chosen, total - units, 0
    return None, 0, 0
