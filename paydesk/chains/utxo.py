"""A Bitcoin-family network read through its node's JSON-RPC (Bitcoin Core, Litecoin Core
and the forks that kept the same calls): blocks with their decoded transactions, every
output as a transfer to its address, and the mempool for payments not yet mined.

Which outputs matter (the watched addresses), confirmations and reorganisations are the
watcher's, as on every network; this module only reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import (
    Block,
    BlockHeader,
    ChainMismatch,
    ChainUnavailable,
    Transfer,
    network_coins,
)
from paydesk.chains.bitcoin_rpc import NOT_FOUND, BitcoinRpc, RpcError
from paydesk.chains.utxo_addresses import AddressFormat, address_format_of

#: Blocks fetched per batch call (a full block of decoded transactions can be megabytes).
BLOCK_BATCH = 10
#: Mempool transactions decoded per batch call.
MEMPOOL_BATCH = 200


class UtxoAdapter:
    """One UTXO network's node. `currency` is the coin (BTC, LTC…), `decimals` its
    places on chain (8 for all of them)."""

    #: The watcher asks for unmined transfers: a payment seen in the mempool is announced
    #: (`confirm_check`) long before its first block on these chains.
    has_mempool = True

    def __init__(
        self,
        network: str,
        url: str,
        currency: str,
        address_format: AddressFormat,
        *,
        node_chain: str | None = None,
        decimals: int = 8,
        timeout: float = 30.0,
    ) -> None:
        self.network = network
        self.currency = currency
        self.decimals = decimals
        self.address_format = address_format
        self.node_chain = node_chain
        self.rpc = BitcoinRpc(url, timeout=timeout)
        # Decoded mempool transactions by txid: each is fetched once while it waits.
        self._mempool: dict[str, list[Transfer]] = {}

    @classmethod
    def from_catalogue(
        cls, network: Network, services: Iterable[Service], url: str, **options: Any
    ) -> UtxoAdapter:
        if network.family != "utxo":
            raise ValueError(f"{network.code} is not a UTXO network (family {network.family})")
        decimals = network_coins(network, services, 8).native_decimals
        return cls(
            network.code,
            url,
            network.native,
            address_format_of(network),
            node_chain=network.node_chain,
            decimals=decimals,
            **options,
        )

    async def close(self) -> None:
        await self.rpc.close()

    # ------------------------------------------------------------------ reads
    async def check_node(self) -> None:
        info = await self._call("getblockchaininfo")
        chain = info.get("chain")
        if self.node_chain is not None and chain != self.node_chain:
            raise ChainMismatch(
                f"{self.network}: the node serves the {chain!r} chain, the network is "
                f"configured for {self.node_chain!r}"
            )

    async def tip(self) -> int:
        return int(await self._call("getblockcount"))

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        hashes = await self._hashes(start, end)
        raw = await self._batch([("getblockheader", [block_hash, True]) for block_hash in hashes])
        return [self._header(header) for header in raw]

    async def blocks(self, start: int, end: int) -> list[Block]:
        hashes = await self._hashes(start, end)
        result: list[Block] = []
        for offset in range(0, len(hashes), BLOCK_BATCH):
            chunk = hashes[offset : offset + BLOCK_BATCH]
            for raw in await self._batch([("getblock", [h, 2]) for h in chunk]):
                transfers = [
                    transfer
                    for tx in raw["tx"]
                    if not _is_coinbase(tx)
                    for transfer in self._outputs(tx)
                ]
                result.append(Block(self._header(raw), transfers))
        return result

    async def pending(self) -> list[Transfer]:
        """The outputs of every transaction now in the mempool. Each is decoded once and
        kept while it waits; those that left (mined or dropped) are forgotten."""
        txids = set(await self._call("getrawmempool"))
        for gone in set(self._mempool) - txids:
            del self._mempool[gone]
        new = [txid for txid in txids if txid not in self._mempool]
        for offset in range(0, len(new), MEMPOOL_BATCH):
            chunk = new[offset : offset + MEMPOOL_BATCH]
            calls = [("getrawtransaction", [txid, True]) for txid in chunk]
            try:
                decoded = await self.rpc.batch(calls)
            except RpcError as exc:
                if exc.code not in NOT_FOUND:
                    raise
                decoded = await self._each_still_there(calls)
            for txid, tx in zip(chunk, decoded, strict=True):
                if tx is not None:
                    self._mempool[txid] = self._outputs(tx)
        return [transfer for transfers in self._mempool.values() for transfer in transfers]

    def normalize_address(self, address: str) -> str | None:
        return self.address_format.normalize(address)

    # ------------------------------------------------------------------ internals
    async def _call(self, method: str, *params: Any) -> Any:
        try:
            return await self.rpc.call(method, *params)
        except RpcError as exc:
            raise ChainUnavailable(f"{self.network}: {method}: {exc}") from exc

    async def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        try:
            return await self.rpc.batch(calls)
        except RpcError as exc:
            raise ChainUnavailable(f"{self.network}: {calls[0][0]}: {exc}") from exc

    async def _each_still_there(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """One by one, for a batch where some transaction left the mempool meanwhile."""
        found: list[Any] = []
        for method, params in calls:
            try:
                found.append(await self.rpc.call(method, *params))
            except RpcError as exc:
                if exc.code not in NOT_FOUND:
                    raise
                found.append(None)
        return found

    async def _hashes(self, start: int, end: int) -> list[str]:
        """Hashes of heights start..end that exist (the chain may be shorter)."""
        tip = await self.tip()
        heights = range(max(start, 0), min(end, tip) + 1)
        # Should the chain shrink between the two calls (a reorganisation), the batch
        # fails as unavailable and the watcher asks again.
        return list(await self._batch([("getblockhash", [h]) for h in heights]))

    def _header(self, raw: dict[str, Any]) -> BlockHeader:
        return BlockHeader(
            height=int(raw["height"]),
            hash=raw["hash"],
            parent_hash=raw.get("previousblockhash") or "0" * 64,
            timestamp=int(raw["time"]),
        )

    def _outputs(self, tx: dict[str, Any]) -> list[Transfer]:
        transfers = []
        for output in tx.get("vout", []):
            address = _address_of(output.get("scriptPubKey", {}))
            if address is None:
                continue
            normalized = self.address_format.normalize(address)
            value = output.get("value")
            if normalized is None or not isinstance(value, Decimal | int) or value <= 0:
                continue
            transfers.append(
                Transfer(
                    txid=tx["txid"],
                    output_index=int(output["n"]),
                    to_address=normalized,
                    currency=self.currency,
                    amount=Decimal(value),
                )
            )
        return transfers


def _address_of(script: dict[str, Any]) -> str | None:
    """The output's address: `address` on recent nodes, `addresses` (one) on older ones."""
    if script.get("address"):
        return str(script["address"])
    addresses = script.get("addresses")
    if isinstance(addresses, list) and len(addresses) == 1:
        return str(addresses[0])
    return None


def _is_coinbase(tx: dict[str, Any]) -> bool:
    """A block reward: not a payment (and unspendable for 100 blocks anyway)."""
    inputs = tx.get("vin", [])
    return bool(inputs) and "coinbase" in inputs[0]
