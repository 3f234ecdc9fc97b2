"""EVM networks (Ethereum, BNB Smart Chain, Polygon, Arbitrum, Avalanche C-Chain...).

Reads a node over JSON-RPC: blocks with their full transactions for the native coin, and the
ERC-20 `Transfer` logs of the configured token contracts. A range of blocks costs one batched
request for the blocks (per `batch_size` blocks) and one `eth_getLogs` for the whole range.

What is reported:
* native coin: the value of every transaction with a recipient. Value a contract forwards
  during execution (an "internal transaction", e.g. a payment from a smart-contract wallet)
  does not appear in the block and is not seen. A plain transfer to an address without code
  (which deposit addresses are) cannot fail once mined, so no receipts are fetched.
* tokens: `Transfer(from, to, value)` logs of the configured contracts; a reverted
  transaction leaves no logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import pairwise
from typing import Any

import aiohttp
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound, Web3Exception

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import (
    NATIVE_VALUE_INDEX,
    Block,
    BlockHeader,
    ChainMismatch,
    ChainUnavailable,
    Transfer,
    network_coins,
    units_to_amount,
)

#: keccak256("Transfer(address,address,uint256)"): topic 0 of every ERC-20 transfer log.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
#: Enough digits for any uint256 (78 digits), so scaling an amount never rounds.

#: Transport and node failures worth retrying later.
_UNAVAILABLE = (
    aiohttp.ClientError,
    TimeoutError,
    OSError,
    json.JSONDecodeError,
    Web3Exception,
)


def normalize_evm_address(address: str) -> str | None:
    """EIP-55 checksummed spelling; None for anything but 0x and 40 hex digits, or for a
    mixed-case spelling whose checksum is wrong (a typo)."""
    if not isinstance(address, str) or not _HEX_ADDRESS.fullmatch(address):
        return None
    checksummed = to_checksum_address(address)
    body = address[2:]
    if body != body.lower() and body != body.upper() and address != checksummed:
        return None
    return checksummed


def _hex(value: bytes) -> str:
    return HexBytes(value).to_0x_hex()


class EvmAdapter:
    """One EVM network's node. `tokens` maps contract address → (currency, decimals)."""

    def __init__(
        self,
        network: str,
        url: str,
        native: str,
        tokens: dict[str, tuple[str, int]],
        native_decimals: int = 18,
        chain_id: int | None = None,
        *,
        batch_size: int = 100,
        timeout: float = 30.0,
    ) -> None:
        self.network = network
        self.native = native
        self.native_decimals = native_decimals
        self.chain_id = chain_id
        self.batch_size = batch_size
        self.tokens: dict[str, tuple[str, int]] = {}
        for contract, (currency, decimals) in tokens.items():
            address = self.normalize_address(contract)
            if address is None:
                raise ValueError(f"{network}: {currency} contract {contract!r} is no address")
            self.tokens[address] = (currency, decimals)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # Node failures are retried by the caller, which knows how long to wait: no retries
        # inside web3.
        self._provider = AsyncHTTPProvider(
            url,
            request_kwargs={"timeout": self._timeout},
            exception_retry_configuration=None,
        )
        # No middleware: only plain reads are made, and web3's validation middleware would
        # refuse the long `extraData` of proof-of-authority chains' blocks (BSC, Polygon).
        self._w3 = AsyncWeb3(self._provider, middleware=[])
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_catalogue(
        cls, network: Network, services: Iterable[Service], url: str, **options: Any
    ) -> EvmAdapter:
        """The adapter for a catalogue network: services with a contract are its tokens, the
        one whose currency is the network's native coin gives the native decimals.
        Services switched off for new invoices are kept: payments may still arrive."""
        if network.family != "evm":
            raise ValueError(f"{network.code} is not an EVM network (family {network.family})")
        coins = network_coins(network, services, 18)
        return cls(
            network.code,
            url,
            network.native,
            coins.tokens,
            native_decimals=coins.native_decimals,
            chain_id=network.chain_id,
            **options,
        )

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _unavailable(self, what: str) -> Iterator[None]:
        try:
            yield
        except _UNAVAILABLE as exc:
            raise ChainUnavailable(f"{self.network}: {what}: {exc!r}") from exc

    async def _connect(self) -> None:
        """Give the provider one keep-alive session (web3's own closes every connection)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(raise_for_status=True, timeout=self._timeout)
            await self._provider.cache_async_session(self._session)

    async def close(self) -> None:
        await self._provider.disconnect()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ reads
    async def check_node(self) -> None:
        await self.check_chain_id()

    async def check_chain_id(self) -> int:
        """The node's chain id; raises ChainMismatch if it is not the configured one."""
        await self._connect()
        with self._unavailable("eth_chainId"):
            node_chain_id = await self._w3.eth.chain_id
        if self.chain_id is not None and node_chain_id != self.chain_id:
            raise ChainMismatch(
                f"{self.network}: the node at {self._provider.endpoint_uri} serves chain id "
                f"{node_chain_id}, the network is configured for {self.chain_id}"
            )
        return node_chain_id

    async def tip(self) -> int:
        await self._connect()
        with self._unavailable("eth_blockNumber"):
            return int(await self._w3.eth.block_number)

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        return [self._header(block) for block in await self._fetch_blocks(start, end, False)]

    async def blocks(self, start: int, end: int) -> list[Block]:
        raw_blocks = await self._fetch_blocks(start, end, True)
        if not raw_blocks:
            return []
        # The logs are read after the blocks: should the chain move in between, the blocks
        # returned are the stale ones, which the watcher rolls back once it notices, rather
        # than current blocks missing their token transfers.
        token_transfers = await self._token_transfers(raw_blocks) if self.tokens else {}
        result = []
        for block in raw_blocks:
            transfers = [*self._native_transfers(block), *token_transfers.get(block["number"], [])]
            transfers.sort(key=lambda item: item[0])
            result.append(Block(self._header(block), [transfer for _, transfer in transfers]))
        return result

    async def pending(self) -> list[Transfer]:
        """Always empty. Confirmations count from the block a transfer is mined in, and the
        watcher already reports a mined but unconfirmed transfer as seen; the mempool would
        add little but transactions that may never be mined."""
        return []

    def normalize_address(self, address: str) -> str | None:
        return normalize_evm_address(address)

    # ------------------------------------------------------------------ internals
    async def _fetch_blocks(self, start: int, end: int, full: bool) -> list[dict[str, Any]]:
        """Blocks start..end (clamped to the tip), checked to form one chain."""
        start = max(start, 0)
        if end < start:
            return []
        blocks = await self._block_batches(start, end, full)
        if blocks is None:
            # Past the tip: read the tip and ask again for what exists.
            end = min(end, await self.tip())
            if end < start:
                return []
            blocks = await self._block_batches(start, end, full)
            if blocks is None:
                raise ChainUnavailable(f"{self.network}: the chain shrank while it was read")
        for parent, child in pairwise(blocks):
            if child["parentHash"] != parent["hash"]:
                raise ChainUnavailable(
                    f"{self.network}: the chain changed while blocks {start}..{end} were read"
                )
        return blocks

    async def _block_batches(self, start: int, end: int, full: bool) -> list[dict[str, Any]] | None:
        """Blocks start..end in batches of `batch_size`; None if one does not exist."""
        await self._connect()
        blocks: list[dict[str, Any]] = []
        with self._unavailable(f"eth_getBlockByNumber {start}..{end}"):
            for first in range(start, end + 1, self.batch_size):
                last = min(first + self.batch_size - 1, end)
                async with self._w3.batch_requests() as batch:
                    for height in range(first, last + 1):
                        batch.add(self._w3.eth.get_block(height, full))
                    try:
                        blocks.extend(await batch.async_execute())
                    except BlockNotFound:
                        return None
        for height, block in enumerate(blocks, start):
            if block["number"] != height:
                raise ChainUnavailable(f"{self.network}: asked for block {height}, got another")
        return blocks

    def _header(self, block: dict[str, Any]) -> BlockHeader:
        return BlockHeader(
            height=int(block["number"]),
            hash=_hex(block["hash"]),
            parent_hash=_hex(block["parentHash"]),
            timestamp=int(block["timestamp"]),
        )

    def _native_transfers(
        self, block: dict[str, Any]
    ) -> Iterator[tuple[tuple[int, int], Transfer]]:
        for tx in block["transactions"]:
            value = int(tx["value"])
            if value <= 0 or not tx.get("to"):
                continue
            yield (
                (int(tx["transactionIndex"]), NATIVE_VALUE_INDEX),
                Transfer(
                    txid=_hex(tx["hash"]),
                    output_index=NATIVE_VALUE_INDEX,
                    to_address=to_checksum_address(tx["to"]),
                    currency=self.native,
                    amount=units_to_amount(value, self.native_decimals),
                    from_address=to_checksum_address(tx["from"]),
                ),
            )

    async def _token_transfers(
        self, blocks: list[dict[str, Any]]
    ) -> dict[int, list[tuple[tuple[int, int], Transfer]]]:
        """Token transfers of the fetched blocks by height, read with one eth_getLogs."""
        start, end = blocks[0]["number"], blocks[-1]["number"]
        hashes = {block["number"]: block["hash"] for block in blocks}
        log_filter = {
            "fromBlock": start,
            "toBlock": end,
            "address": list(self.tokens),
            "topics": [TRANSFER_TOPIC],
        }
        await self._connect()
        with self._unavailable(f"eth_getLogs {start}..{end}"):
            async with self._w3.batch_requests() as batch:
                batch.add(self._w3.eth.get_logs(log_filter))
                # Asked after the logs: an unchanged newest block means an unchanged range.
                batch.add(self._w3.eth.get_block(end, False))
                logs, newest = await batch.async_execute()
        if newest["hash"] != hashes[end]:
            raise ChainUnavailable(f"{self.network}: the chain changed while {end} was read")
        found: dict[int, list[tuple[tuple[int, int], Transfer]]] = {}
        for log in logs:
            if log.get("removed"):
                continue
            height = log["blockNumber"]
            if hashes.get(height) != log["blockHash"]:
                raise ChainUnavailable(
                    f"{self.network}: a log of block {height} belongs to another block than "
                    "the one read: the chain changed"
                )
            transfer = self._token_transfer(log)
            if transfer is not None:
                key = (int(log["transactionIndex"]), transfer.output_index)
                found.setdefault(height, []).append((key, transfer))
        return found

    def _token_transfer(self, log: dict[str, Any]) -> Transfer | None:
        token = self.tokens.get(to_checksum_address(log["address"]))
        topics = log["topics"]
        data = bytes(log["data"])
        # Three topics and one word of data: an ERC-20 transfer (ERC-721 indexes a 4th).
        if token is None or len(topics) != 3 or len(data) != 32:
            return None
        currency, decimals = token
        return Transfer(
            txid=_hex(log["transactionHash"]),
            output_index=int(log["logIndex"]),
            to_address=to_checksum_address(bytes(topics[2])[-20:]),
            currency=currency,
            amount=units_to_amount(int.from_bytes(data, "big"), decimals),
            from_address=to_checksum_address(bytes(topics[1])[-20:]),
        )
