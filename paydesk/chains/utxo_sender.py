"""Payouts on a Bitcoin-family network: coin selection over the hot wallet's outputs, a
transaction signed by Paydesk (`utxo_signing`; SIGHASH_FORKID on Bitcoin Cash), change to
a fresh internal address, replace-by-fee signalled where the chain has it.

The keys never reach the node. The node keeps a watch-only wallet of the hot wallet's
addresses (m/…/1/0 and the change addresses m/…/1/n), which is how Paydesk lists its
spendable outputs and follows its transactions without a database of its own UTXOs.

The payout worker's per-network counter ("nonce") numbers the change addresses: each
signed transaction gets the next one, so no change address is ever used twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from bip_utils import Bip44Changes
from bip_utils.bip.bip44_base import Bip44Base
from embit.script import Script
from embit.transaction import Transaction, TransactionOutput

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
from paydesk.chains.bitcoin_cash import sign_forkid_transaction
from paydesk.chains.bitcoin_rpc import METHOD_NOT_FOUND, NOT_FOUND, BitcoinRpc, RpcError
from paydesk.chains.utxo_addresses import AddressFormat, CashAddressFormat, address_format_of
from paydesk.chains.utxo_signing import (
    Coin,
    SigningFailed,
    select_coins,
    sign_transaction,
    spend_shape,
)

#: Blocks a payout should be mined within, by priority (what `estimatesmartfee` is asked).
CONFIRMATION_TARGETS = {"economy": 24, "recommended": 6, "high": 2, "highest": 1}
#: Answers of `sendrawtransaction` (Bitcoin Core's RPC codes).
_ALREADY_IN_CHAIN = -27
_REJECTED = (-25, -26)
_MISSING_INPUTS = ("missingorspent", "missing-inputs", "txn-mempool-conflict", "missing inputs")


class UtxoPayoutSender:
    """The hot wallet of one UTXO network. `account` is the network's BIP32 account node
    with its private key; `url` the node, which must run with its wallet enabled."""

    def __init__(
        self,
        network: str,
        url: str,
        native: str,
        address_format: AddressFormat,
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
        return cls(network.code, url, network.native, address_format_of(network), account,
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
        fee_per_kvb = await self.fee_rate(target)
        coins = sorted(await self._coins(), key=lambda coin: coin.units, reverse=True)
        shape = spend_shape(self.address_format)
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

    async def fee_rate(self, target: int) -> Decimal:
        """Coins per 1000 virtual bytes: the node's estimate for `target` blocks, never
        below its relay minimum; the configured fallback where it has no estimate yet."""
        try:
            estimate = await self.rpc.call("estimatesmartfee", target)
        except RpcError as exc:
            if exc.code != METHOD_NOT_FOUND:
                raise ChainUnavailable(f"{self.network}: estimatesmartfee: {exc}") from exc
            # Bitcoin Cash Node dropped it (blocks are rarely full): its one estimate.
            estimate = {"feerate": await self._call(self.rpc, "estimatefee")}
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
        return await self.sign_coins(coins, outputs, keys)

    async def sign_coins(
        self,
        coins: list[Coin],
        outputs: list[TransactionOutput],
        keys: Mapping[str, bytes],
        *,
        block_hashes: Mapping[str, str] | None = None,
    ) -> Transaction:
        """`coins` spent to `outputs` as this chain signs: SIGHASH_FORKID on Bitcoin Cash,
        else a PSBT, with each legacy input's previous transaction fetched first — from
        the wallet (the hot wallet's own coins), or by the block `block_hashes` gives for
        its txid (a deposit's, which the wallet does not hold). BroadcastRejected when it
        cannot be signed."""
        try:
            if isinstance(self.address_format, CashAddressFormat):
                # Its signatures commit to the amounts spent: no previous transactions.
                return sign_forkid_transaction(coins, outputs, keys, self.address_format)
            if not self.address_format.witness:
                coins = await self._with_previous(coins, block_hashes)
            return sign_transaction(coins, outputs, keys, self.address_format)
        except SigningFailed as exc:
            raise BroadcastRejected(f"{self.network}: {exc}") from None

    async def _with_previous(
        self, coins: list[Coin], block_hashes: Mapping[str, str] | None
    ) -> list[Coin]:
        """The coins with the transactions that made them (one batch)."""
        if block_hashes is None:
            rpc, method = self.wallet_rpc, "gettransaction"
            calls = [(method, [coin.txid, True]) for coin in coins]
        else:
            rpc, method = self.rpc, "getrawtransaction"
            calls = [(method, [coin.txid, False, block_hashes[coin.txid]]) for coin in coins]
        try:
            found = await rpc.batch(calls)
        except RpcError as exc:
            raise ChainUnavailable(f"{self.network}: {method}: {exc}") from exc
        return [
            Coin(coin.txid, coin.vout, coin.units, coin.address,
                 bytes.fromhex(entry["hex"] if isinstance(entry, dict) else entry))
            for coin, entry in zip(coins, found, strict=True)
        ]  # fmt: skip
