"""TRON: TRX and TRC-20 tokens, read over a node's HTTP API.

Speaks java-tron's HTTP API (`/wallet/*` of a full node, `/walletsolidity/*` for what is
solidified), which TronGrid-style providers serve too; a provider's key goes in the
`TRON-PRO-API-KEY` header. A self-hosted java-tron serves the solidity API on a second
port (8091 beside 8090): `solidity_url`; without one, `getnodeinfo` names the solidified
block. Requests leave `visible` unset, so the node writes addresses
as hex with the 0x41 prefix (event logs: 20 bytes without it) and messages as hex.

What is reported:
* TRX: every `TransferContract` of a block whose result is SUCCESS (a plain transfer
  cannot fail once in a block, but the result is checked all the same). TRX a contract
  forwards during execution (an internal transaction) is not seen, as on EVM networks.
* tokens: the `Transfer(from, to, value)` events the configured contracts emitted, read
  from the transactions' receipts (`gettransactioninfobyblocknum`, one call a block).
  Events are the truth of what moved, not the call data: a reverted `transfer` moves
  nothing (and its receipt is not trusted even if it lists events), a `transferFrom` moves
  another holder's tokens, and a contract paying through the token (an exchange, a
  multi-send) shows nothing in its own call data. Only receipts whose execution succeeded
  count. Zero-value transfers (the address-poisoning spam TRON is full of) are left out.

Confirmations: TRON's blocks are final once solidified, that is once 2/3 of the 27
super representatives have built on them: about 19 blocks (a minute) below the newest.
The watcher keeps counting blocks, as on every network: `tip()`, `headers()` and
`blocks()` all come from the full node's current chain (unsolidified blocks included, so
a replaced block shows as a parent-hash mismatch and is rolled back), and the
catalogue's `confirmations = 19` for tron makes "confirmed" mean "solidified".
`solid_tip()` tells what the node itself has solidified.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import pairwise
from typing import Any

import base58
import httpx

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

#: Genesis block ids of the public TRON networks (what `getblockbynum {"num": 0}` returns).
MAINNET_GENESIS = "00000000000000001ebf88508a03865c71d452e25f4d51194196a1d22b6653dc"
NILE_GENESIS = "0000000000000000d698d4192c56cb6be724a558448e2684802de4d6cd8690dc"
SHASTA_GENESIS = "0000000000000000de1aa88295e1fcf982742f773e0419c5a9c134c994a9059e"
#: The p2pVersion (`getnodeinfo`) each network's nodes run with: how a node that pruned
#: its genesis block (a lite full node) is told apart.
P2P_VERSIONS = {MAINNET_GENESIS: "11111", NILE_GENESIS: "201910292", SHASTA_GENESIS: "1"}

API_KEY_HEADER = "TRON-PRO-API-KEY"
#: Version byte of every TRON account and contract address.
ADDRESS_PREFIX = 0x41
#: 1 TRX = 1,000,000 sun.
TRX_DECIMALS = 6
#: keccak256("Transfer(address,address,uint256)"), as TRON writes topics (no 0x).
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#: `getblockbylimitnext` serves at most 100 blocks a call.
MAX_BLOCKS_PER_CALL = 100
#: Transaction kinds whose execution can emit token events.
CONTRACT_CALLS = frozenset({"TriggerSmartContract", "CreateSmartContract"})

_HEX = frozenset("0123456789abcdef")

#: Transport failures and unreadable or malformed answers: worth retrying later.
_UNAVAILABLE = (httpx.HTTPError, OSError, ValueError, KeyError, TypeError, IndexError)


class EndpointMissing(ChainUnavailable):
    """The node has no such endpoint (HTTP 404): an older java-tron, or a provider that
    does not serve it."""


def _is_hex(text: str) -> bool:
    return all(char in _HEX for char in text.lower())


def normalize_tron_address(address: str) -> str | None:
    """The base58check spelling (T…) of a TRON address; None unless it is one.

    Accepts the base58check form (checksum and version byte 0x41 checked) and the hex form
    the API writes ("41" and 20 bytes). An Ethereum-style 0x address is refused: the same
    20 bytes are a valid TRON address, but whoever typed it meant another network."""
    if not isinstance(address, str):
        return None
    if len(address) == 42 and address[:2] == "41" and _is_hex(address):
        return hex_to_base58(address)
    if len(address) != 34 or not address.startswith("T"):
        return None
    try:
        raw = base58.b58decode_check(address)
    except ValueError:
        return None
    if len(raw) != 21 or raw[0] != ADDRESS_PREFIX:
        return None
    return address


def hex_to_base58(address: str) -> str:
    """An address as the API writes it → T…: "41" and 20 bytes, or the bare 20 bytes of
    event logs (also left-padded to 32 bytes, as in topics)."""
    body = address[-40:] if len(address) in (40, 42, 64) else address
    raw = bytes([ADDRESS_PREFIX]) + bytes.fromhex(body)
    if len(raw) != 21:
        raise ValueError(f"{address!r} is no TRON address")
    return base58.b58encode_check(raw).decode()


def base58_to_hex(address: str) -> str:
    """T… → "41…", the form requests carry (`visible` unset)."""
    return bytes(base58.b58decode_check(address)).hex()


def _header(block: dict[str, Any]) -> BlockHeader:
    """A block's header; genesis leaves number and timestamp out (proto3 zero values)."""
    raw = block["block_header"]["raw_data"]
    height = int(raw.get("number", 0))
    block_id = str(block["blockID"]).lower()
    # A TRON block id starts with the block's number (8 bytes): an answer about another
    # block than the one asked for shows here.
    if len(block_id) != 64 or int(block_id[:16], 16) != height:
        raise ValueError(f"block id {block_id!r} does not belong to block {height}")
    return BlockHeader(
        height=height,
        hash=block_id,
        parent_hash=str(raw.get("parentHash", "")).lower(),
        timestamp=int(raw.get("timestamp", 0)) // 1000,
    )


def _contract(tx: dict[str, Any]) -> dict[str, Any]:
    """The transaction's one contract (TRON transactions carry exactly one)."""
    contracts = tx.get("raw_data", {}).get("contract") or [{}]
    return contracts[0]  # type: ignore[no-any-return]


def _contract_ret(tx: dict[str, Any]) -> str | None:
    ret = tx.get("ret") or [{}]
    return ret[0].get("contractRet")  # type: ignore[no-any-return]


def receipt_succeeded(info: dict[str, Any]) -> bool:
    """Whether a TransactionInfo shows a successful execution. `result` is only written
    when FAILED; `receipt.result` only for contract calls (SUCCESS, REVERT, OUT_OF_ENERGY…)."""
    if info.get("result", "SUCESS") == "FAILED":
        return False
    return info.get("receipt", {}).get("result", "SUCCESS") in ("SUCCESS", "DEFAULT")


class TronAdapter:
    """One TRON network's node (a `ChainAdapter`). `tokens` maps a TRC-20 contract's
    address (T… or 41…) → (currency, decimals). `genesis_id` is the block id the node's
    block 0 must have (None: not checked)."""

    #: TRON nodes show their pending pool, but a transaction waits there ~3 seconds, and
    #: nothing in it is final before it is in a block: not worth following.
    has_mempool = False

    def __init__(
        self,
        network: str,
        url: str,
        tokens: dict[str, tuple[str, int]],
        *,
        native: str = "TRX",
        native_decimals: int = TRX_DECIMALS,
        genesis_id: str | None = MAINNET_GENESIS,
        api_key: str | None = None,
        solidity_url: str | None = None,
        batch_size: int = MAX_BLOCKS_PER_CALL,
        concurrency: int = 4,
        timeout: float = 30.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BLOCKS_PER_CALL:
            raise ValueError(f"batch_size must be 1..{MAX_BLOCKS_PER_CALL}, not {batch_size}")
        self.network = network
        self.url = url.rstrip("/")
        #: Where `/walletsolidity/*` is served: the same host on TronGrid-style providers,
        #: a second port (8091) on a self-hosted java-tron.
        self.solidity_url = (solidity_url or url).rstrip("/")
        self.native = native
        self.native_decimals = native_decimals
        self.genesis_id = genesis_id.lower() if genesis_id else None
        self.batch_size = batch_size
        #: base58 contract address → (currency, decimals)
        self.tokens: dict[str, tuple[str, int]] = {}
        #: the same by the 20-byte hex body event logs name the emitting contract with
        self._tokens_by_log_address: dict[str, tuple[str, str, int]] = {}
        for contract, (currency, decimals) in tokens.items():
            address = normalize_tron_address(contract)
            if address is None:
                raise ValueError(f"{network}: {currency} contract {contract!r} is no address")
            self.tokens[address] = (currency, decimals)
            self._tokens_by_log_address[base58_to_hex(address)[2:]] = (
                address,
                currency,
                decimals,
            )
        self._headers = {API_KEY_HEADER: api_key} if api_key else {}
        self._timeout = timeout
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._client: httpx.AsyncClient | None = None
        #: Whether `wallet` / `walletsolidity` have `getblock` (java-tron 4.7.1+): a
        #: header without the block's transactions. Absent until asked.
        self._has_getblock: dict[str, bool] = {}

    @classmethod
    def from_catalogue(
        cls, network: Network, services: Iterable[Service], url: str, **options: Any
    ) -> TronAdapter:
        """The adapter for a catalogue network: services with a contract are its tokens, the
        one whose currency is the native coin gives its decimals. Services switched off for
        new invoices are kept: payments may still arrive. `options` (genesis_id, api_key…)
        go to the constructor."""
        if network.family != "tron":
            raise ValueError(f"{network.code} is not a TRON network (family {network.family})")
        coins = network_coins(network, services, TRX_DECIMALS)
        return cls(
            network.code,
            url,
            coins.tokens,
            native=network.native,
            native_decimals=coins.native_decimals,
            **options,
        )

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _unavailable(self, what: str) -> Iterator[None]:
        try:
            yield
        except ChainUnavailable:
            raise
        except _UNAVAILABLE as exc:
            raise ChainUnavailable(f"{self.network}: {what}: {exc!r}") from exc

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout)
        return self._client

    async def post(
        self, path: str, body: dict[str, Any] | None = None, *, node_errors: bool = False
    ) -> Any:
        """POST to the node and return the decoded JSON. Transport failures, HTTP errors and
        the node's own `{"Error": …}` answers raise ChainUnavailable; with `node_errors` the
        latter are returned, for the callers that must tell them apart."""
        base = self.solidity_url if path.startswith("walletsolidity/") else self.url
        async with self._limit:
            with self._unavailable(path):
                response = await self._http().post(f"{base}/{path}", json=body or {})
        if response.status_code == 404:
            raise EndpointMissing(f"{self.network}: {path}: HTTP 404")
        if response.status_code >= 400:
            raise ChainUnavailable(
                f"{self.network}: {path}: HTTP {response.status_code} {response.text[:200]!r}"
            )
        with self._unavailable(path):
            answer = json.loads(response.text or "{}", parse_float=Decimal)
        if isinstance(answer, dict) and "Error" in answer and not node_errors:
            raise ChainUnavailable(f"{self.network}: {path}: {answer['Error']}")
        return answer

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ reads
    async def check_node(self) -> None:
        """Compare the node's genesis block with the configured one. A node that pruned its
        genesis (lite full node) is checked by its p2p version, where the network's is
        known."""
        if self.genesis_id is None:
            return
        genesis = await self.post("wallet/getblockbynum", {"num": 0})
        if genesis:
            node_genesis = str(genesis.get("blockID", "")).lower()
            if node_genesis != self.genesis_id:
                raise ChainMismatch(
                    f"{self.network}: the node at {self.url} serves the chain with genesis "
                    f"block {node_genesis or '?'}, the network is configured for "
                    f"{self.genesis_id}"
                )
            return
        expected = P2P_VERSIONS.get(self.genesis_id)
        if expected is None:
            return
        info = await self.post("wallet/getnodeinfo")
        p2p = str(info.get("configNodeInfo", {}).get("p2pVersion", ""))
        if p2p != expected:
            raise ChainMismatch(
                f"{self.network}: the node at {self.url} runs p2p version {p2p or '?'}, "
                f"the network configured (genesis {self.genesis_id}) uses {expected}"
            )

    async def tip(self) -> int:
        """Height of the full node's newest block (not yet final: see `solid_tip`)."""
        return (await self._newest("wallet")).height

    async def solid_tip(self) -> int:
        """Height of the node's newest solidified block: it and everything below are final."""
        return (await self.solid_header()).height

    async def solid_header(self) -> BlockHeader:
        """The node's newest solidified block: final, so what payouts refer to (TaPoS).
        Without a solidity API at hand, the full node's `getnodeinfo` names it (height and
        id only: the parent hash and time are then left empty)."""
        try:
            return await self._newest("walletsolidity")
        except EndpointMissing:
            pass
        info = await self.post("wallet/getnodeinfo")
        with self._unavailable("getnodeinfo solidityBlock"):
            number, block_id = str(info["solidityBlock"]).split(",")
            height = int(number.removeprefix("Num:"))
            block_id = block_id.removeprefix("ID:").lower()
            if len(block_id) != 64 or int(block_id[:16], 16) != height:
                raise ValueError(f"{info['solidityBlock']!r} names no block")
        return BlockHeader(height=height, hash=block_id, parent_hash="", timestamp=0)

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        start = max(start, 0)
        if end < start:
            return []
        if start == end:
            header = await self._header_at(start)
            return [] if header is None else [header]
        return [_header(block) for block in await self._fetch_blocks(start, end)]

    async def blocks(self, start: int, end: int) -> list[Block]:
        raw_blocks = await self._fetch_blocks(max(start, 0), end)
        if not raw_blocks:
            return []
        headers = [_header(block) for block in raw_blocks]
        infos: list[dict[str, dict[str, Any]]] = [{} for _ in raw_blocks]
        if self.tokens:
            wanted = [
                index
                for index, block in enumerate(raw_blocks)
                if any(_contract(tx).get("type") in CONTRACT_CALLS for tx in _txs(block))
            ]
            found = await asyncio.gather(
                *(self._infos(raw_blocks[index], headers[index].height) for index in wanted)
            )
            for index, block_infos in zip(wanted, found, strict=True):
                infos[index] = block_infos
            if wanted:
                # Read after the receipts: an unchanged newest block means the receipts
                # belong to the blocks read (the watcher rolls back stale ones).
                newest = await self._header_at(headers[-1].height)
                if newest is None or newest.hash != headers[-1].hash:
                    raise ChainUnavailable(
                        f"{self.network}: the chain changed while block "
                        f"{headers[-1].height} was read"
                    )
        with self._unavailable(f"transfers of blocks {headers[0].height}..{headers[-1].height}"):
            return [
                Block(header, self._transfers(block, block_infos))
                for header, block, block_infos in zip(headers, raw_blocks, infos, strict=True)
            ]

    async def pending(self) -> list[Transfer]:
        """Always empty (see `has_mempool`)."""
        return []

    def normalize_address(self, address: str) -> str | None:
        return normalize_tron_address(address)

    # ------------------------------------------------------------------ internals
    async def _newest(self, api: str) -> BlockHeader:
        """The newest block of the full node (`wallet`) or its solidified one
        (`walletsolidity`), without its transactions where the node can."""
        block = await self._block_header_request(api, None)
        if not block:
            raise ChainUnavailable(f"{self.network}: {api}: the node has no block")
        with self._unavailable(f"{api} newest block"):
            return _header(block)

    async def _header_at(self, height: int) -> BlockHeader | None:
        block = await self._block_header_request("wallet", height)
        if not block:
            return None
        with self._unavailable(f"block {height}"):
            header = _header(block)
        if header.height != height:
            raise ChainUnavailable(f"{self.network}: asked for block {height}, got another")
        return header

    async def _block_header_request(self, api: str, height: int | None) -> dict[str, Any]:
        """`getblock` with detail=false (the header alone), or on nodes without it the
        whole block (`getnowblock`, `getblockbynum`)."""
        if self._has_getblock.get(api, True):
            body: dict[str, Any] = {"detail": False}
            if height is not None:
                body["id_or_num"] = str(height)
            try:
                answer = await self.post(f"{api}/getblock", body)
            except EndpointMissing:
                if self._has_getblock.get(api):
                    raise
                self._has_getblock[api] = False
            else:
                self._has_getblock[api] = True
                return answer  # type: ignore[no-any-return]
        if height is None:
            return await self.post(f"{api}/getnowblock")  # type: ignore[no-any-return]
        return await self.post(f"{api}/getblockbynum", {"num": height})  # type: ignore[no-any-return]

    async def _fetch_blocks(self, start: int, end: int) -> list[dict[str, Any]]:
        """Blocks start..end with their transactions, up to the chain's end, checked to form
        one chain. A provider that serves fewer blocks a call than asked is asked again from
        where it stopped; an empty answer is the end of the chain."""
        blocks: list[dict[str, Any]] = []
        first = start
        while first <= end:
            stop = min(first + self.batch_size, end + 1)
            answer = await self.post(
                "wallet/getblockbylimitnext", {"startNum": first, "endNum": stop}
            )
            got = answer.get("block", []) if isinstance(answer, dict) else []
            if not got:
                break
            with self._unavailable(f"getblockbylimitnext {first}..{stop - 1}"):
                got.sort(key=lambda block: int(block["block_header"]["raw_data"].get("number", 0)))
                heights = [_header(block).height for block in got]
            if heights != list(range(first, first + len(got))) or len(got) > stop - first:
                raise ChainUnavailable(
                    f"{self.network}: asked for blocks {first}..{stop - 1}, got {heights}"
                )
            blocks.extend(got)
            first += len(got)
        for parent, child in pairwise(blocks):
            if _header(child).parent_hash != _header(parent).hash:
                raise ChainUnavailable(
                    f"{self.network}: the chain changed while blocks {start}..{end} were read"
                )
        return blocks

    async def _infos(self, block: dict[str, Any], height: int) -> dict[str, dict[str, Any]]:
        """The block's transaction receipts by txid, checked against its transactions."""
        answer = await self.post("wallet/gettransactioninfobyblocknum", {"num": height})
        infos = answer if isinstance(answer, list) else []
        txids = {str(tx.get("txID", "")).lower() for tx in _txs(block)}
        by_id: dict[str, dict[str, Any]] = {}
        for info in infos:
            txid = str(info.get("id", "")).lower()
            if txid not in txids or int(info.get("blockNumber", -1)) != height:
                raise ChainUnavailable(
                    f"{self.network}: the receipts of block {height} are of another block: "
                    "the chain changed"
                )
            by_id[txid] = info
        for tx in _txs(block):
            txid = str(tx.get("txID", "")).lower()
            if _contract(tx).get("type") in CONTRACT_CALLS and txid not in by_id:
                raise ChainUnavailable(
                    f"{self.network}: block {height} lacks the receipt of {txid}"
                )
        return by_id

    def _transfers(self, block: dict[str, Any], infos: dict[str, dict[str, Any]]) -> list[Transfer]:
        transfers: list[Transfer] = []
        for tx in _txs(block):
            txid = str(tx["txID"]).lower()
            if _contract_ret(tx) != "SUCCESS":
                continue
            contract = _contract(tx)
            if contract.get("type") == "TransferContract":
                transfer = self._native_transfer(txid, contract["parameter"]["value"])
                if transfer is not None:
                    transfers.append(transfer)
                continue
            info = infos.get(txid)
            if info is None or not receipt_succeeded(info):
                continue
            for index, log in enumerate(info.get("log", [])):
                transfer = self._token_transfer(txid, index, log)
                if transfer is not None:
                    transfers.append(transfer)
        return transfers

    def _native_transfer(self, txid: str, value: dict[str, Any]) -> Transfer | None:
        amount = int(value.get("amount", 0))
        if amount <= 0 or not value.get("to_address"):
            return None
        return Transfer(
            txid=txid,
            output_index=NATIVE_VALUE_INDEX,
            to_address=hex_to_base58(value["to_address"]),
            currency=self.native,
            amount=units_to_amount(amount, self.native_decimals),
            from_address=hex_to_base58(value["owner_address"]),
        )

    def _token_transfer(self, txid: str, index: int, log: dict[str, Any]) -> Transfer | None:
        token = self._tokens_by_log_address.get(str(log.get("address", "")).lower()[-40:])
        topics = [str(topic).lower() for topic in log.get("topics", [])]
        data = str(log.get("data", ""))
        # Three topics and one word of data: a TRC-20 transfer (TRC-721 indexes a 4th).
        if (
            token is None
            or len(topics) != 3
            or topics[0] != TRANSFER_TOPIC
            or any(len(topic) != 64 for topic in topics)
            or len(data) != 64
        ):
            return None
        _, currency, decimals = token
        value = int(data, 16)
        if value == 0:
            return None
        return Transfer(
            txid=txid,
            output_index=index,
            to_address=hex_to_base58(topics[2]),
            currency=currency,
            amount=units_to_amount(value, decimals),
            from_address=hex_to_base58(topics[1]),
        )


def _txs(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A block's transactions (an empty block has no `transactions` key at all)."""
    return block.get("transactions", [])  # type: ignore[no-any-return]
