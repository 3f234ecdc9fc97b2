"""A Bitcoin-family network read through an Electrum server (ElectrumX, Fulcrum) instead of
the node's JSON-RPC, for operators who run such a server and keep their node unexposed.

The Electrum protocol answers per address (per script hash), never "every transaction of
a block", so this adapter reports only transfers to the addresses a watch list names:
Paydesk's own list comes from the database (`database_watch_list`). A payment to an
address that is not on the list when its block is read is not seen; with the node's
JSON-RPC every output of every block is. Headers are read raw and hashed here (double
SHA-256), which excludes chains whose block hash is another function (Dash: X11);
`check_node` finds that out on the genesis block.

Reading is cheap on purpose. Every watched address is subscribed once per connection; the
server then pushes its status (a hash of its history) when it changes. A history is
fetched again only when the status differs from the one computed over the history held,
and a transaction is fetched and decoded once. Reading blocks asks every address's status
anew (a notification could still be on its way when the tip has moved), the mempool relies
on the notifications.

A mined transaction is checked against its block's header (its merkle branch) and each
transaction against its txid; the headers themselves are taken from the server as the
node adapter takes blocks from its node (no proof-of-work check): run the server you
trust, as you run the node.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from cachetools import LRUCache
from embit import compact
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from sqlalchemy import or_, select

from paydesk.catalogue.models import Network, Service
from paydesk.chains.adapter import (
    Block,
    BlockHeader,
    ChainMismatch,
    ChainUnavailable,
    Transfer,
    units_to_amount,
)
from paydesk.chains.electrum_client import ElectrumClient
from paydesk.chains.models import DepositAddress
from paydesk.chains.utxo_addresses import AddressFormat, address_format_of
from paydesk.db import Database, utcnow
from paydesk.invoices.models import Invoice
from paydesk.invoices.status import FINAL
from paydesk.wallets.models import StaticWallet

log = structlog.get_logger(__name__)

#: The set of addresses whose transfers matter, asked for on every read.
WatchList = Callable[[], Awaitable[set[str]]]

#: How long an invoice that can no longer be paid stays watched after its last change: a
#: late payment, or a reorganisation undoing its payment, within this window is seen.
RECENT = timedelta(days=7)
#: Headers per `blockchain.block.headers` call (ElectrumX and Fulcrum serve up to 2016).
HEADERS_CHUNK = 2016
#: Requests in flight at once (each is small; the server caps a session's cost anyway).
CONCURRENT_REQUESTS = 100
#: Decoded transactions kept (a transaction never changes; its block can).
TRANSACTIONS_KEPT = 20_000
HEADER_SIZE = 80
#: Genesis block hashes of the main networks, when the catalogue names none (`genesis_id`).
MAINNET_GENESIS = {
    "btc": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "ltc": "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2",
    "doge": "1a91e3dace36e2be3bf030a65679fe821aa1d6ef92e7c9902eb318182c355691",
    "dash": "00000ffd590b1485b3caadc19b22e6379c733355108f107a430458cdf3407ab6",
}
_COINBASE_PREVOUT = (b"\x00" * 32, 0xFFFFFFFF)
#: Key of the tip's notifications among the script hashes' (not a hex hash).
_TIP = "tip"


@dataclass(frozen=True, slots=True)
class _Output:
    index: int
    address: str
    value: int


@dataclass(frozen=True, slots=True)
class _History:
    """An address's history as the server listed it: (txid, height) in the server's order,
    height 0 or -1 for the mempool. `status` is computed from it as the protocol defines
    the status, so it compares exactly with what the server announces."""

    entries: tuple[tuple[str, int], ...]
    status: str | None

    @classmethod
    def of(cls, answer: Sequence[dict[str, Any]]) -> _History:
        entries = tuple((str(item["tx_hash"]), int(item["height"])) for item in answer)
        return cls(entries, history_status(entries))


def history_status(entries: Iterable[tuple[str, int]]) -> str | None:
    """The Electrum status of a history: sha256 of "txid:height:" for each entry, in the
    server's order; None for an empty history."""
    text = "".join(f"{txid}:{height:d}:" for txid, height in entries)
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def scripthash(script: bytes) -> str:
    """The key the Electrum protocol indexes by: sha256 of the output script, reversed."""
    return hashlib.sha256(script).digest()[::-1].hex()


def parse_header(raw: bytes, height: int) -> BlockHeader:
    """An 80-byte block header; its hash is double SHA-256, as Bitcoin, Litecoin and
    Dogecoin have it."""
    return BlockHeader(
        height=height,
        hash=_sha256d(raw)[::-1].hex(),
        parent_hash=raw[4:36][::-1].hex(),
        timestamp=int.from_bytes(raw[68:72], "little"),
    )


def merkle_root(txid: str, branch: Sequence[str], position: int) -> bytes:
    """The merkle root (as in the header, bytes 36..68) that `branch` proves for the
    transaction at `position` of its block; the hashes are hex in display order."""
    node = bytes.fromhex(txid)[::-1]
    for sibling_hex in branch:
        sibling = bytes.fromhex(sibling_hex)[::-1]
        node = _sha256d(sibling + node) if position & 1 else _sha256d(node + sibling)
        position >>= 1
    return node


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def database_watch_list(db: Database, network: str, recent: timedelta = RECENT) -> WatchList:
    """The addresses of `network` Paydesk expects money at: invoices that can still be
    paid or changed in the last `recent`, every static wallet, and every address handed
    out in the last `recent` (an invoice that moved to another address keeps its first
    one watched that long). Older addresses of settled invoices are left out: a payment to
    one is not seen through an Electrum server (it is with the node's JSON-RPC)."""
    final = [status.value for status in FINAL]

    async def addresses() -> set[str]:
        since = utcnow() - recent
        async with db.reader() as session:
            invoices = await session.scalars(
                select(Invoice.address).where(
                    Invoice.network == network,
                    Invoice.address.is_not(None),
                    or_(Invoice.status.not_in(final), Invoice.updated_at >= since),
                )
            )
            wallets = await session.scalars(
                select(StaticWallet.address).where(StaticWallet.network == network)
            )
            assigned = await session.scalars(
                select(DepositAddress.address).where(
                    DepositAddress.network == network, DepositAddress.assigned_at >= since
                )
            )
            return {address for address in (*invoices, *wallets, *assigned) if address}

    return addresses


class ElectrumUtxoAdapter:
    """One UTXO network read through an Electrum server, for the addresses `watch_list`
    names. `genesis_hash`: the block 0 the server must serve (None: not checked)."""

    #: Unconfirmed payments are shown (`confirm_check`) as with the node.
    has_mempool = True

    def __init__(
        self,
        network: str,
        url: str,
        currency: str,
        address_format: AddressFormat,
        watch_list: WatchList,
        *,
        genesis_hash: str | None = None,
        decimals: int = 8,
        timeout: float = 30.0,
    ) -> None:
        self.network = network
        self.currency = currency
        self.decimals = decimals
        self.address_format = address_format
        self.watch_list = watch_list
        self.genesis_hash = genesis_hash.lower() if genesis_hash else None
        self.client = ElectrumClient(url, timeout=timeout, on_notification=self._notified)
        # Spelling of addresses for embit (p2pkh/p2sh version bytes, bech32 prefix).
        self._embit_network = {
            "bech32": address_format.bech32_hrp or "",
            "p2pkh": bytes([address_format.p2pkh_version]),
            "p2sh": bytes([address_format.p2sh_version or 0]),
        }
        self._scripthashes: dict[str, str] = {}
        # Per connection: the subscribed script hashes with their latest status, and the
        # tip as the server last announced it (both kept current by notifications).
        self._generation = 0
        self._status: dict[str, str | None] = {}
        self._tip: int | None = None
        # Notifications received per script hash (and for the tip): an answer to a
        # subscription must not overwrite a notification that overtook it.
        self._notices: Counter[str] = Counter()
        # Across connections: histories (valid while the status matches) and decoded
        # transactions.
        self._held: dict[str, _History] = {}
        self._transactions: LRUCache[str, tuple[_Output, ...]] = LRUCache(TRANSACTIONS_KEPT)

    @classmethod
    def from_catalogue(
        cls,
        network: Network,
        services: Iterable[Service],
        url: str,
        watch_list: WatchList,
        **options: Any,
    ) -> ElectrumUtxoAdapter:
        if network.family != "utxo":
            raise ValueError(f"{network.code} is not a UTXO network (family {network.family})")
        decimals = next(
            (s.decimals for s in services
             if s.network == network.code and s.currency == network.native), 8,
        )  # fmt: skip
        genesis = network.genesis_id
        if genesis is None and network.node_chain == "main":
            genesis = MAINNET_GENESIS.get(network.code)
        return cls(
            network.code,
            url,
            network.native,
            address_format_of(network),
            watch_list,
            genesis_hash=genesis,
            decimals=decimals,
            **options,
        )

    async def close(self) -> None:
        await self.client.close()

    def normalize_address(self, address: str) -> str | None:
        return self.address_format.normalize(address)

    # ------------------------------------------------------------------ reads
    async def check_node(self) -> None:
        """The server's genesis block must be the network's, and hash as its headers are
        hashed here (double SHA-256)."""
        features = await self.client.request("server.features")
        served = str(features.get("genesis_hash", "")).lower()
        if self.genesis_hash is not None and served != self.genesis_hash:
            raise ChainMismatch(
                f"{self.network}: the Electrum server serves the chain of genesis block "
                f"{served or '?'}, the network is configured for {self.genesis_hash}"
            )
        genesis = await self.headers(0, 0)
        if not genesis or genesis[0].hash != served:
            raise ChainMismatch(
                f"{self.network}: block 0 of the Electrum server does not hash to "
                f"{served}: its chain's block hashes are not double SHA-256 (Dash's are "
                "X11), so it cannot be followed through an Electrum server"
            )

    async def tip(self) -> int:
        """The server's tip: asked once per connection (which subscribes to new tips),
        then as the server announces it. ElectrumX sends a block's header notification
        before the statuses it changed, so a history read after a status change never
        belongs to a block newer than this tip."""
        await self._connection()
        if self._tip is None:
            before = self._notices[_TIP]
            answer = await self.client.request("blockchain.headers.subscribe")
            if self._notices[_TIP] == before:
                self._tip = int(answer["height"])
        assert self._tip is not None
        return self._tip

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        return [parse_header(raw, height) for height, raw in await self._raw_headers(start, end)]

    async def blocks(self, start: int, end: int) -> list[Block]:
        """Blocks start..end (up to the server's tip) with the transfers of the
        transactions that touch a watched address, each proven in its block by its merkle
        branch (which also gives its position: transfers come in chain order).

        An Electrum server may hold back small answers for up to a second (ElectrumX pads
        its traffic), so independent requests go out together: the headers with the
        statuses, the transactions with their proofs and the final check of the chain."""
        end = min(end, await self.tip())
        if end < max(start, 0):
            return []
        watched = await self.watch_list()
        raw_headers, histories = await _all(
            self._raw_headers(start, end), self._read_histories(watched, fresh=True)
        )
        if not raw_headers:
            return []
        headers = [parse_header(raw, height) for height, raw in raw_headers]
        roots = {height: raw[36:68] for height, raw in raw_headers}
        first, last = headers[0].height, headers[-1].height
        mined: dict[str, int] = {}
        for history in histories:
            for txid, height in history.entries:
                if first <= height <= last:
                    mined.setdefault(txid, height)
        # The histories may have been read after the headers: should the chain have been
        # replaced meanwhile, they could describe another branch. The watcher asks again.
        outputs, positions, again = await _all(
            self._outputs(list(mined)), self._positions(mined, roots), self.headers(last, last)
        )
        if not again or again[0].hash != headers[-1].hash:
            raise ChainUnavailable(f"{self.network}: the chain moved while it was read")
        by_height: dict[int, list[Transfer]] = {}
        for txid in sorted(mined, key=lambda txid: (mined[txid], positions[txid])):
            by_height.setdefault(mined[txid], []).extend(self._transfers(txid, outputs[txid]))
        return [Block(header, by_height.get(header.height, [])) for header in headers]

    async def pending(self) -> list[Transfer]:
        """Transfers of mempool transactions touching a watched address."""
        histories = await self._read_histories(await self.watch_list(), fresh=False)
        mined = {txid for h in histories for txid, height in h.entries if height > 0}
        waiting = list(
            dict.fromkeys(
                txid
                for history in histories
                for txid, height in history.entries
                if height <= 0 and txid not in mined
            )
        )
        outputs = await self._outputs(waiting)
        return [transfer for txid in waiting for transfer in self._transfers(txid, outputs[txid])]

    async def _raw_headers(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(height, 80-byte header) of heights start..end that exist."""
        start = max(start, 0)
        found: list[tuple[int, bytes]] = []
        height = start
        while height <= end:
            wanted = min(end - height + 1, HEADERS_CHUNK)
            answer = await self.client.request("blockchain.block.headers", height, wanted)
            raw = _headers_bytes(answer)
            count = len(raw) // HEADER_SIZE
            if len(raw) % HEADER_SIZE or count > wanted:
                raise ChainUnavailable(f"{self.network}: the server sent malformed headers")
            for offset in range(count):
                found.append(
                    (height + offset, raw[offset * HEADER_SIZE : (offset + 1) * HEADER_SIZE])
                )
            if count < wanted:  # the chain is shorter
                break
            height += count
        return found

    async def _positions(self, mined: dict[str, int], roots: dict[int, bytes]) -> dict[str, int]:
        """Each transaction's position in its block, once its merkle branch leads to the
        root in the block's header: the server cannot place a transaction in a block that
        does not hold it."""
        txids = list(mined)
        positions: dict[str, int] = {}
        for offset in range(0, len(txids), CONCURRENT_REQUESTS):
            chunk = txids[offset : offset + CONCURRENT_REQUESTS]
            proofs = await self.client.requests(
                [("blockchain.transaction.get_merkle", [txid, mined[txid]]) for txid in chunk]
            )
            for txid, proof in zip(chunk, proofs, strict=True):
                position = int(proof["pos"])
                if merkle_root(txid, proof["merkle"], position) != roots[mined[txid]]:
                    raise ChainUnavailable(
                        f"{self.network}: the server's proof does not put {txid} in block "
                        f"{mined[txid]}"
                    )
                positions[txid] = position
        return positions

    # ------------------------------------------------------------------ histories
    async def _read_histories(self, addresses: set[str], *, fresh: bool) -> list[_History]:
        """The current history of each address. `fresh`: ask the server every status now
        rather than trust the notifications received so far."""
        await self._connection()
        known = self._scripthashes
        self._scripthashes = {a: known[a] for a in addresses if a in known}  # drop old ones
        hashes: list[str] = []
        for address in addresses:
            scripthash_ = self._scripthash(address)
            if scripthash_ is not None:
                hashes.append(scripthash_)
        wanted = set(hashes)
        await self._forget([sh for sh in self._status if sh not in wanted])
        to_ask = hashes if fresh else [sh for sh in hashes if sh not in self._status]
        for offset in range(0, len(to_ask), CONCURRENT_REQUESTS):
            chunk = to_ask[offset : offset + CONCURRENT_REQUESTS]
            before = {sh: self._notices[sh] for sh in chunk}
            statuses = await self.client.requests(
                [("blockchain.scripthash.subscribe", [sh]) for sh in chunk]
            )
            for sh, status in zip(chunk, statuses, strict=True):
                if self._notices[sh] == before[sh]:
                    self._status[sh] = status
        if self.client.generation != self._generation:
            # Reconnected meanwhile: some subscriptions went with the old connection.
            raise ChainUnavailable(f"{self.network}: the Electrum connection was renewed")
        stale = []
        for sh in hashes:
            status = self._status.get(sh)
            if sh in self._held and self._held[sh].status == status:
                continue
            if status is None:  # no history at all (a new address): nothing to fetch
                self._held[sh] = _History((), None)
            else:
                stale.append(sh)
        for offset in range(0, len(stale), CONCURRENT_REQUESTS):
            chunk = stale[offset : offset + CONCURRENT_REQUESTS]
            answers = await self.client.requests(
                [("blockchain.scripthash.get_history", [sh]) for sh in chunk]
            )
            for sh, answer in zip(chunk, answers, strict=True):
                self._held[sh] = _History.of(answer)
        return [self._held[sh] for sh in hashes]

    async def _forget(self, hashes: list[str]) -> None:
        """Unsubscribe addresses no longer watched (the server keeps fewer subscriptions;
        servers older than protocol 1.4.2 cannot, and keep them until reconnection)."""
        for sh in hashes:
            self._status.pop(sh, None)
            self._notices.pop(sh, None)
            self._held.pop(sh, None)
        if not hashes or _version(self.client.protocol) < (1, 4, 2):
            return
        try:
            await self.client.requests(
                [("blockchain.scripthash.unsubscribe", [sh]) for sh in hashes]
            )
        except ChainUnavailable as exc:
            log.info("electrum.unsubscribe_failed", network=self.network, error=str(exc))

    async def _connection(self) -> None:
        """Connect when needed; a new connection starts without subscriptions."""
        generation = await self.client.connect()
        if generation != self._generation:
            self._status.clear()
            self._notices.clear()
            self._tip = None
            self._generation = generation

    def _notified(self, method: str, params: Sequence[Any]) -> None:
        """The server announced a new tip, or a subscribed script hash changed (its
        history is fetched on the next read)."""
        if method == "blockchain.headers.subscribe" and params:
            header = params[0]
            if isinstance(header, dict) and "height" in header:
                self._tip = int(header["height"])
                self._notices[_TIP] += 1
            return
        if method != "blockchain.scripthash.subscribe" or len(params) != 2:
            return
        sh, status = params
        if sh in self._status:
            self._status[sh] = status
            self._notices[sh] += 1

    def _scripthash(self, address: str) -> str | None:
        found = self._scripthashes.get(address)
        if found is None:
            try:
                found = scripthash(self.address_format.script_pubkey(address))
            except ValueError:
                log.warning("electrum.bad_watched_address", network=self.network, address=address)
                return None
            self._scripthashes[address] = found
        return found

    # ------------------------------------------------------------------ transactions
    async def _outputs(self, txids: list[str]) -> dict[str, tuple[_Output, ...]]:
        """The payment outputs of each transaction (none for a block reward), fetched
        once."""
        missing = [txid for txid in dict.fromkeys(txids) if txid not in self._transactions]
        for offset in range(0, len(missing), CONCURRENT_REQUESTS):
            chunk = missing[offset : offset + CONCURRENT_REQUESTS]
            raws = await self.client.requests(
                [("blockchain.transaction.get", [txid]) for txid in chunk]
            )
            for txid, raw in zip(chunk, raws, strict=True):
                self._transactions[txid] = self._decode(txid, raw)
        return {txid: self._transactions[txid] for txid in txids}

    def _decode(self, txid: str, raw: Any) -> tuple[_Output, ...]:
        try:
            data = bytes.fromhex(str(raw))
            inputs, outputs = _read_transaction(data, txid)
        except Exception as exc:  # embit raises several types for malformed bytes
            raise ChainUnavailable(
                f"{self.network}: transaction {txid} from the server does not decode: {exc}"
            ) from None
        if inputs and (inputs[0].txid, inputs[0].vout) == _COINBASE_PREVOUT:
            return ()  # a block reward: not a payment
        found = []
        for index, output in enumerate(outputs):
            address = self._address(output.script_pubkey)
            if address is not None and output.value > 0:
                found.append(_Output(index, address, output.value))
        return tuple(found)

    def _address(self, script: Script) -> str | None:
        """The output's address spelled as the network spells it; None for scripts without
        one (OP_RETURN, bare multisig) or of a kind the network lacks (segwit on Doge)."""
        kind = script.script_type()
        if (kind == "p2sh" and self.address_format.p2sh_version is None) or (
            kind in ("p2wpkh", "p2wsh", "p2tr") and not self.address_format.segwit
        ):
            return None
        try:
            spelled = script.address(self._embit_network)
        except Exception:  # embit raises ValueError, or fails encoding without an HRP
            return None
        return self.address_format.normalize(spelled)

    def _transfers(self, txid: str, outputs: tuple[_Output, ...]) -> list[Transfer]:
        return [
            Transfer(
                txid=txid,
                output_index=output.index,
                to_address=output.address,
                currency=self.currency,
                amount=units_to_amount(output.value, self.decimals),
            )
            for output in outputs
        ]


async def _all(*awaitables: Awaitable[Any]) -> list[Any]:
    """Every result, the requests of each sent without waiting for the others'; the first
    failure is raised once all have finished."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _headers_bytes(answer: dict[str, Any]) -> bytes:
    """Protocol 1.4 sends the headers as one hex string, 1.6 as a list."""
    if "hex" in answer:
        return bytes.fromhex(answer["hex"])
    return b"".join(bytes.fromhex(header) for header in answer.get("headers", []))


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()


def _read_transaction(
    data: bytes, txid: str
) -> tuple[list[TransactionInput], list[TransactionOutput]]:
    """Inputs and outputs of a raw transaction. embit reads the usual serialization, and
    the txid is checked against it. Litecoin's MWEB transactions carry another flag (8)
    and extension data after the outputs, which embit does not know: of those, only the
    part up to the outputs is read."""
    if len(data) > 6 and data[4] == 0 and data[5] & 0x08:
        stream = io.BytesIO(data[6:])
        inputs = [TransactionInput.read_from(stream) for _ in range(compact.read_from(stream))]
        outputs = [TransactionOutput.read_from(stream) for _ in range(compact.read_from(stream))]
        return inputs, outputs
    tx = Transaction.parse(data)
    if tx.txid().hex() != txid:
        raise ValueError(f"its txid is {tx.txid().hex()}")
    return list(tx.vin), list(tx.vout)
