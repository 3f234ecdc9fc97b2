"""Payouts on a Bitcoin-family network: coin selection over the hot wallet's outputs, a
transaction signed by Paydesk (a PSBT signed with keys derived by bip-utils, finalized by
embit), change to a fresh internal address, replace-by-fee signalled.

The hot wallet's addresses are native segwit (P2WPKH) on a BIP84 key path and P2PKH on a
BIP44 one (the coins without segwit, such as Dogecoin and Dash): a legacy input signs no
amount, so its whole previous transaction is fetched and checked before it is signed.

The keys never reach the node. The node keeps a watch-only wallet of the hot wallet's
addresses (m/…/1/0 and the change addresses m/…/1/n), which is how Paydesk lists its
spendable outputs and follows its transactions without a database of its own UTXOs.

The payout worker's per-network counter ("nonce") numbers the change addresses: each
signed transaction gets the next one, so no change address is ever used twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from bip_utils import Bip44Changes
from bip_utils.bip.bip44_base import Bip44Base
from embit import ec
from embit.finalizer import finalize_psbt
from embit.psbt import PSBT
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import (
    BroadcastRejected,
    ChainMismatch,
    ChainUnavailable,
    HotWalletShort,
    NonceTaken,
    SentTransfer,
    SignedTransfer,
    TransferRefused,
    amount_to_units,
    network_coins,
    units_to_amount,
)
from paydesk.chains.bitcoin_rpc import NOT_FOUND, BitcoinRpc, RpcError
from paydesk.chains.utxo_addresses import UtxoAddressFormat

#: Blocks a payout should be mined within, by priority (what `estimatesmartfee` is asked).
CONFIRMATION_TARGETS = {"economy": 24, "recommended": 6, "high": 2, "highest": 1}
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
#: Answers of `sendrawtransaction` (Bitcoin Core's RPC codes).
_ALREADY_IN_CHAIN = -27
_REJECTED = (-25, -26)
_MISSING_INPUTS = ("missingorspent", "missing-inputs", "txn-mempool-conflict", "missing inputs")


@dataclass(frozen=True, slots=True)
class Coin:
    """An output the hot wallet can spend."""

    txid: str
    vout: int
    units: int
    address: str
    #: The raw transaction that created it: needed to sign a legacy (P2PKH) input.
    previous: bytes | None = None


class UtxoPayoutSender:
    """The hot wallet of one UTXO network. `account` is the network's BIP32 account node
    with its private key; `url` the node, which must run with its wallet enabled."""

    def __init__(
        self,
        network: str,
        url: str,
        native: str,
        address_format: UtxoAddressFormat,
        account: Bip44Base,
        *,
        node_chain: str | None = None,
        decimals: int = 8,
        fallback_fee_per_kvb: Decimal = Decimal("0.0001"),
        wallet: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.network = network
        self.native = native
        self.decimals = decimals
        self.address_format = address_format
        self.node_chain = node_chain
        self.fallback_fee_per_kvb = fallback_fee_per_kvb
        self._internal = account.Change(Bip44Changes.CHAIN_INT)
        self.wallet = wallet or f"paydesk-hot-{network}"
        self.rpc = BitcoinRpc(url, timeout=timeout)
        self.wallet_rpc = BitcoinRpc(url.rstrip("/") + "/wallet/" + quote(self.wallet),
                                     timeout=timeout)  # fmt: skip
        # Change index → (address, private key), derived once each.
        self._keys: dict[int, tuple[str, bytes]] = {}
        self._imported: set[str] = set()
        self._ready = False

    @classmethod
    def from_catalogue(
        cls, network: Network, services: Iterable[Service], url: str, account: Bip44Base,
        **options: Any,
    ) -> UtxoPayoutSender:  # fmt: skip
        decimals = network_coins(network, services, 8).native_decimals
        return cls(network.code, url, network.native, UtxoAddressFormat.of(network), account,
                   node_chain=network.node_chain, decimals=decimals, **options)  # fmt: skip

    # ------------------------------------------------------------------ keys and wallet
    def _key(self, index: int) -> tuple[str, bytes]:
        found = self._keys.get(index)
        if found is None:
            node = self._internal.AddressIndex(index)
            public = node.PublicKey().RawCompressed().ToBytes()
            found = (self.address_format.from_public_key(public),
                     node.PrivateKey().Raw().ToBytes())  # fmt: skip
            self._keys[index] = found
        return found

    @property
    def hot_address(self) -> str:
        return self._key(0)[0]

    async def _ensure_wallet(self) -> None:
        """The node's watch-only wallet of the hot wallet's addresses, made (or loaded)
        once per process; the hot address is imported with a rescan only when the wallet
        is new, so funds sent before it existed are found."""
        if self._ready:
            return
        info = await self._call(self.rpc, "getblockchaininfo")
        if self.node_chain is not None and info.get("chain") != self.node_chain:
            raise ChainMismatch(f"{self.network}: the node serves {info.get('chain')!r}")
        loaded = await self._call(self.rpc, "listwallets")
        created = False
        if self.wallet not in loaded:
            try:
                await self.rpc.call("loadwallet", self.wallet)
            except RpcError:
                await self._call(self.rpc, "createwallet", self.wallet, True, True)
                created = True
        if created:
            await self._import(self.hot_address, "hot", rescan=True)
        self._imported.add(self.hot_address)
        self._ready = True

    async def _watch(self, address: str) -> None:
        """Import a change address before any transaction pays it (nothing to rescan)."""
        if address not in self._imported:
            await self._import(address, "change", rescan=False)
            self._imported.add(address)

    async def _import(self, address: str, label: str, *, rescan: bool) -> None:
        """`importaddress` on a legacy wallet; an `addr()` descriptor on the descriptor
        wallets recent Bitcoin Core creates (which refuse the legacy call)."""
        try:
            await self.wallet_rpc.call("importaddress", address, label, rescan)
            return
        except RpcError as exc:
            if "legacy" not in exc.message.lower():
                raise ChainUnavailable(f"{self.network}: importaddress: {exc}") from exc
        described = await self._call(self.rpc, "getdescriptorinfo", f"addr({address})")
        request = {"desc": described["descriptor"], "label": label,
                   "timestamp": 0 if rescan else "now"}  # fmt: skip
        [result] = await self._call(self.wallet_rpc, "importdescriptors", [request])
        if not result.get("success"):
            raise ChainUnavailable(f"{self.network}: importdescriptors: {result.get('error')}")

    async def _known_change(self) -> dict[str, int]:
        """Addresses of the wallet (labelled by import) → change index, for the indices
        the node knows of (after a restart, the keys are derived again on demand)."""
        addresses: dict[str, int] = {self.hot_address: 0}
        for label in ("change",):
            try:
                found = await self.wallet_rpc.call("getaddressesbylabel", label)
            except RpcError as exc:
                if exc.code not in NOT_FOUND and exc.code != -11:
                    raise ChainUnavailable(f"{self.network}: {exc}") from exc
                found = {}
            wanted = set(found)
            index = 1
            # Change addresses are consecutive from 1: derive until every one is matched.
            while wanted and index < 1_000_000:
                address = self._key(index)[0]
                if address in wanted:
                    addresses[address] = index
                    wanted.discard(address)
                index += 1
        self._imported.update(addresses)
        return addresses

    # ------------------------------------------------------------------ the protocol
    async def next_nonce(self) -> int | None:
        """The next unused change index (1 and up), from what the node's wallet knows:
        the worker takes the larger of this and its own counter."""
        await self._ensure_wallet()
        return max((await self._known_change()).values()) + 1

    async def tip(self) -> int:
        return int(await self._call(self.rpc, "getblockcount"))

    async def balance(self, currency: str) -> Decimal | None:
        if currency != self.native:
            return Decimal(0)
        coins = await self._coins()
        return units_to_amount(sum(coin.units for coin in coins), self.decimals)

    async def sign_transfer(
        self, to: str, currency: str, amount: Decimal, *, nonce: int | None, priority: str
    ) -> SignedTransfer:
        if currency != self.native:
            raise TransferRefused(f"{self.network} carries no {currency}")
        try:
            script = self.address_format.script_pubkey(to)
            units = amount_to_units(amount, self.decimals)
        except ValueError as exc:
            raise TransferRefused(str(exc)) from None
        target = CONFIRMATION_TARGETS.get(priority)
        if target is None:
            raise TransferRefused(f"unknown priority {priority!r}")
        change_index = nonce if nonce is not None and nonce > 0 else await self.next_nonce()
        assert change_index is not None
        change_address, _ = self._key(change_index)
        fee_per_kvb = await self._fee_rate(target)
        coins = sorted(await self._coins(), key=lambda coin: coin.units, reverse=True)
        shape = P2WPKH_SHAPE if self.address_format.witness else P2PKH_SHAPE
        chosen, fee, change = select_coins(
            coins, units, len(script), fee_per_kvb, self.decimals, shape
        )
        if chosen is None:
            have = units_to_amount(sum(c.units for c in coins), self.decimals)
            raise HotWalletShort(
                f"{self.network}: the hot wallet {self.hot_address} holds {have} {self.native}, "
                f"less than {amount} plus the network fee"
            )
        outputs = [TransactionOutput(units, Script(script))]
        if change:
            await self._watch(change_address)
            change_script = self.address_format.script_pubkey(change_address)
            outputs.append(TransactionOutput(change, Script(change_script)))
        raw = await self._sign(chosen, outputs)
        return SignedTransfer(
            txid=raw.txid().hex(),
            raw=raw.serialize().hex(),
            from_address=self.hot_address,
            nonce=change_index,
            max_fee=units_to_amount(fee, self.decimals),
        )

    async def broadcast(self, transfer: SignedTransfer) -> None:
        try:
            await self.rpc.call("sendrawtransaction", transfer.raw)
        except RpcError as exc:
            message = exc.message.lower()
            if exc.code == _ALREADY_IN_CHAIN or "already" in message:
                return
            if any(marker in message for marker in _MISSING_INPUTS):
                # Its inputs are spent elsewhere: this transaction can never be mined.
                raise NonceTaken(f"{self.network}: {exc.message}") from exc
            if exc.code in _REJECTED:
                raise BroadcastRejected(f"{self.network}: {exc.message}") from exc
            raise ChainUnavailable(f"{self.network}: sendrawtransaction: {exc}") from exc

    async def lookup(self, txid: str) -> SentTransfer | None:
        await self._ensure_wallet()
        try:
            found = await self.wallet_rpc.call("gettransaction", txid, True)
        except RpcError as exc:
            if exc.code in NOT_FOUND:
                return None
            raise ChainUnavailable(f"{self.network}: gettransaction: {exc}") from exc
        confirmations = int(found.get("confirmations", 0))
        if confirmations < 0:  # in a block that lost a reorganisation, not yet re-mined
            return SentTransfer(block_height=None)
        height = found.get("blockheight")
        if height is None and confirmations > 0:
            height = await self.tip() - confirmations + 1
        fee = found.get("fee")
        return SentTransfer(
            block_height=int(height) if confirmations > 0 and height is not None else None,
            fee=-Decimal(fee) if isinstance(fee, Decimal) else Decimal(0),
        )

    async def close(self) -> None:
        await self.rpc.close()
        await self.wallet_rpc.close()

    # ------------------------------------------------------------------ internals
    async def _call(self, rpc: BitcoinRpc, method: str, *params: Any) -> Any:
        try:
            return await rpc.call(method, *params)
        except RpcError as exc:
            raise ChainUnavailable(f"{self.network}: {method}: {exc}") from exc

    async def _coins(self) -> list[Coin]:
        """Spendable outputs: confirmed ones, and unconfirmed change of the wallet's own
        transactions (the node marks those `safe`); none already spent in the mempool."""
        await self._ensure_wallet()
        known = await self._known_change()
        listed = await self._call(self.wallet_rpc, "listunspent", 0, 9_999_999,
                                  list(known), True)  # fmt: skip
        coins = []
        for entry in listed:
            if entry.get("confirmations", 0) < 1 and not entry.get("safe", False):
                continue
            coins.append(Coin(entry["txid"], int(entry["vout"]),
                              amount_to_units(Decimal(entry["amount"]), self.decimals),
                              entry["address"]))  # fmt: skip
        return coins

    async def _fee_rate(self, target: int) -> Decimal:
        """Coins per 1000 virtual bytes: the node's estimate for `target` blocks, never
        below its relay minimum; the configured fallback where it has no estimate yet."""
        estimate = await self._call(self.rpc, "estimatesmartfee", target)
        rate = estimate.get("feerate")
        network_info = await self._call(self.rpc, "getnetworkinfo")
        relay = Decimal(network_info.get("relayfee", 0))
        chosen = Decimal(rate) if isinstance(rate, Decimal) and rate > 0 else None
        return max(chosen or self.fallback_fee_per_kvb, relay)

    async def _sign(self, coins: list[Coin], outputs: list[TransactionOutput]) -> Transaction:
        """The chosen outputs signed with the keys of the addresses they belong to (hot
        or change, numbered as the node's wallet knows them)."""
        known = await self._known_change()
        keys = {coin.address: self._key(known[coin.address])[1] for coin in coins}
        if not self.address_format.witness:
            coins = await self._with_previous(coins)
        try:
            return sign_transaction(coins, outputs, keys, self.address_format)
        except SigningFailed as exc:
            raise BroadcastRejected(f"{self.network}: {exc}") from None

    async def _with_previous(self, coins: list[Coin]) -> list[Coin]:
        """The coins with the transactions that made them (from the wallet, one batch)."""
        calls = [("gettransaction", [coin.txid, True]) for coin in coins]
        try:
            found = await self.wallet_rpc.batch(calls)
        except RpcError as exc:
            raise ChainUnavailable(f"{self.network}: gettransaction: {exc}") from exc
        return [
            Coin(coin.txid, coin.vout, coin.units, coin.address, bytes.fromhex(entry["hex"]))
            for coin, entry in zip(coins, found, strict=True)
        ]


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
    per_vbyte = fee_per_kvb.scaleb(decimals) / Decimal(1000)
    payee_vbytes = 9 + script_length
    change_vbytes = shape.change_vbytes
    chosen: list[Coin] = []
    total = 0
    for coin in coins:
        chosen.append(coin)
        total += coin.units
        vbytes = shape.overhead_vbytes + shape.input_vbytes * len(chosen) + payee_vbytes
        fee_without_change = int((per_vbyte * vbytes).to_integral_value(rounding="ROUND_CEILING"))
        fee_with_change = int(
            (per_vbyte * (vbytes + change_vbytes)).to_integral_value(rounding="ROUND_CEILING")
        )
        if total < units + fee_without_change:
            continue
        change = total - units - fee_with_change
        if change >= shape.dust_units:
            return chosen, fee_with_change, change
        return chosen, total - units, 0
    return None, 0, 0
