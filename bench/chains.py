"""Chain benchmarks: address matching, address derivation, the watcher on a real node.

    .venv/bin/python bench/chains.py [--sqlite] [--only a|b|c] [--blocks 1000]

Each figure is printed beside a bare ceiling measured in the same run, and their ratio:

(a) matching: one block of 5,000 transfers (1 % to watched addresses) against 1,000,000
    watched addresses through the watcher's own lookup (`Watcher._watched`), against the
    same lookup as one raw query (asyncpg `= ANY($2)` and `JOIN unnest($2)`, sqlite3
    `IN (...)`; the faster is the ceiling); a Python set is shown for context;
(b) derivation: `KeyRing.deriver(network).derive(i)` for eth, btc and tron, and the worker's
    pool refill into the database, against bip-utils' bare child derivation (public and
    private; the faster is the ceiling) and address encoding on the same account node;
(c) the watcher: `Watcher.step()` from block 0 of a fresh anvil chain (empty blocks, native
    and ERC-20 transfers, a few paying invoices) to its tip, against the same blocks fetched
    by `EvmAdapter.blocks` alone (no database);
(d) the same on Litecoin Core in regtest (`--blocks`/4 blocks of wallet payments, decoded
    with `getblock` verbosity 2), against `UtxoAdapter.blocks` alone.

PostgreSQL (127.0.0.1:5432, user postgres) gets a throwaway database `paydesk_bench_chains`;
`--sqlite` uses a temporary file instead. Everything is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from bip_utils import (
    Bip32Secp256k1,
    Bip44Changes,
    EthAddrEncoder,
    P2WPKHAddrEncoder,
    TrxAddrEncoder,
)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import delete, func, select

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.run import PG, log, sql  # noqa: E402
from paydesk.catalogue.models import Network  # noqa: E402
from paydesk.catalogue.service import load_catalogue  # noqa: E402
from paydesk.chains.adapter import (  # noqa: E402
    NATIVE_VALUE_INDEX,
    Block,
    BlockHeader,
    ChainAdapter,
    Transfer,
)
from paydesk.chains.keys import KeyRing  # noqa: E402
from paydesk.chains.models import ChainBlock, ChainCursor, DepositAddress  # noqa: E402
from paydesk.chains.registry import build_adapter  # noqa: E402
from paydesk.chains.service import REFILL_BATCH  # noqa: E402
from paydesk.chains.watcher import Watcher  # noqa: E402
from paydesk.chains.worker import LOW_WATER, TARGET  # noqa: E402
from paydesk.chains.worker import _refill as worker_refill  # noqa: E402
from paydesk.config import Settings  # noqa: E402
from paydesk.context import Context, build_context  # noqa: E402
from paydesk.db import utcnow  # noqa: E402
from paydesk.deposits.models import Deposit  # noqa: E402
from paydesk.invoices.models import Invoice  # noqa: E402
from paydesk.invoices.schemas import InvoiceDraft  # noqa: E402
from paydesk.logs import configure_logging  # noqa: E402
from paydesk.merchants.service import create_merchant  # noqa: E402
from paydesk.migrations import upgrade  # noqa: E402
from paydesk.vault import generate_master_key  # noqa: E402

T = TypeVar("T")
DATABASE = "paydesk_bench_chains"
NETWORK = "eth"
#: The BIP39 test mnemonic: every figure of (b) derives the same, well-known addresses.
MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
#: A node URL that is never called ((a) and (b) need an eth network, not its node).
NO_NODE = "http://127.0.0.1:9"

WATCHED = 1_000_000
BLOCK_TRANSFERS = 5_000
WATCHED_SHARE = 0.01
MATCH_ROUNDS = 7
INSERT_CHUNK = 50_000

DERIVE_COUNT = 500
DERIVE_ROUNDS = 8
DERIVE_NETWORKS = ("eth", "btc", "tron")
REFILL_ROUNDS = 3

BATCH_BLOCKS = 100
#: Watched addresses in (c) besides the invoices' own, so the lookups hit a real index.
WATCHER_FILLER = 100_000
USDT_INVOICES = 8
ETH_INVOICES = 4
USDT_DECIMALS = 6


@dataclass
class Figure:
    label: str
    rate: float
    unit: str
    note: str = ""


@dataclass
class Section:
    title: str
    figures: list[Figure] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)

    def add(self, label: str, rate: float, unit: str, note: str = "") -> Figure:
        figure = Figure(label, rate, unit, note)
        self.figures.append(figure)
        return figure

    def print(self) -> None:
        log("")
        log(self.title)
        width = max(len(f.label) for f in self.figures)
        for f in self.figures:
            note = f"  ({f.note})" if f.note else ""
            log(f"  {f.label:{width}}  {f.rate:12,.0f} {f.unit}{note}")
        for name, ratio in self.ratios.items():
            log(f"  ratio {name}: {ratio:.2f}")


@dataclass
class Db:
    url: str
    #: The SQLite file, or None on PostgreSQL.
    path: Path | None

    @property
    def kind(self) -> str:
        return "SQLite" if self.path else "PostgreSQL"


def progress() -> Progress:
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stdout.isatty(),  # piped: the section lines only
    )


def median_rate(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


# --------------------------------------------------------------------------- databases
@contextmanager
def database(use_sqlite: bool, work: Path, name: str) -> Iterator[Db]:
    """A freshly migrated database, dropped (or deleted) afterwards."""
    if use_sqlite:
        path = work / f"{name}.db"
        db = Db(f"sqlite+aiosqlite:///{path}", path)
        upgrade(db.url)
        try:
            yield db
        finally:
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        return
    drop = f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'
    sql(drop, f'CREATE DATABASE "{DATABASE}"', database="postgres")
    db = Db(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DATABASE}", None)
    try:
        upgrade(db.url)
        yield db
    finally:
        sql(drop, database="postgres")


def settings(
    db: Db, work: Path, node: str = NO_NODE, catalogue: Path | None = None, code: str = NETWORK
) -> Settings:
    return Settings(
        database_url=db.url,
        networks=[code],
        chain_nodes={code: node},
        catalogue_file=catalogue,
        master_key=generate_master_key(),
        data_dir=work / "data",
        rate_providers=[],
        log_level="warning",
    )


def random_addresses(count: int) -> list[str]:
    """Random EVM addresses, lower-case (the spelling the DB rows and transfers share)."""
    raw = os.urandom(20 * count).hex()
    return ["0x" + raw[i : i + 40] for i in range(0, 40 * count, 40)]


def insert_watched(
    db: Db, addresses: list[str], first_index: int, bar: Progress, network: str = NETWORK
) -> float:
    """Assigned rows for `addresses` (COPY / executemany); seconds taken. Their key owner
    is made up: they are watched like any address, but derive from no key Paydesk has."""
    task = bar.add_task(f"inserting {len(addresses):,} watched addresses", total=len(addresses))
    started = time.perf_counter()
    if db.path is not None:
        stamp = "2025-01-01 00:00:00.000000"
        connection = sqlite3.connect(db.path)
        try:
            with connection:
                for offset in range(0, len(addresses), INSERT_CHUNK):
                    chunk = addresses[offset : offset + INSERT_CHUNK]
                    connection.executemany(
                        "INSERT INTO deposit_addresses (network, address, derivation_index,"
                        " key_owner, purpose, assigned_at, created_at)"
                        " VALUES (?, ?, ?, 'filler', 'invoice', ?, ?)",
                        [
                            (network, address, first_index + offset + i, stamp, stamp)
                            for i, address in enumerate(chunk)
                        ],
                    )
                    bar.advance(task, len(chunk))
            connection.execute("ANALYZE")
        finally:
            connection.close()
    else:
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        asyncio.run(_copy_watched(addresses, first_index, network, advance))
    bar.remove_task(task)
    return time.perf_counter() - started


async def _copy_watched(
    addresses: list[str], first_index: int, network: str, advance: Callable[[int], None]
) -> None:
    connection = await asyncpg.connect(database=DATABASE, **PG)
    now = datetime.now(UTC)
    columns = ["network", "address", "derivation_index", "key_owner", "purpose"]
    columns += ["assigned_at", "created_at"]
    try:
        for offset in range(0, len(addresses), INSERT_CHUNK):
            chunk = addresses[offset : offset + INSERT_CHUNK]
            await connection.copy_records_to_table(
                "deposit_addresses",
                columns=columns,
                records=[
                    (network, address, first_index + offset + i, "filler", "invoice", now, now)
                    for i, address in enumerate(chunk)
                ],
            )
            advance(len(chunk))
        await connection.execute("ANALYZE deposit_addresses")
    finally:
        await connection.close()


# --------------------------------------------------------------------------- (a) matching
def random_transfer(to: str) -> Transfer:
    token = random.random() < 0.5
    return Transfer(
        txid="0x" + os.urandom(32).hex(),
        output_index=random.randrange(200) if token else NATIVE_VALUE_INDEX,
        to_address=to,
        currency="USDT" if token else "ETH",
        amount=Decimal(random.randrange(1, 10**6)).scaleb(-6),
        from_address="0x" + os.urandom(20).hex(),
    )


def bench_matching(args: argparse.Namespace, work: Path) -> Section:
    with database(args.sqlite, work, "matching") as db:
        addresses = sorted(random_addresses(WATCHED))  # sorted: the index grows at its end
        with progress() as bar:
            inserted = insert_watched(db, addresses, 0, bar)
        log(f"  inserted {WATCHED:,} watched addresses in {inserted:.1f} s")
        hits = int(BLOCK_TRANSFERS * WATCHED_SHARE)
        targets = random.sample(addresses, hits) + random_addresses(BLOCK_TRANSFERS - hits)
        random.shuffle(targets)
        transfers = [random_transfer(to) for to in targets]
        memory = set(addresses)
        del addresses
        times = asyncio.run(_match_rounds(db, work, transfers, hits, memory))

    section = Section(
        f"(a) matching, {db.kind}: a block of {BLOCK_TRANSFERS:,} transfers ({hits} to watched "
        f"addresses) against {WATCHED:,} watched addresses, median of {MATCH_ROUNDS} rounds"
    )

    def add(label: str, name: str) -> Figure:
        seconds = times[name]
        return section.add(
            label,
            median_rate(BLOCK_TRANSFERS, seconds),
            "transfers/s",
            f"{statistics.median(seconds) * 1000:.1f} ms per block, "
            f"range {min(seconds) * 1000:.1f}-{max(seconds) * 1000:.1f}",
        )

    paydesk = add("paydesk Watcher._watched", "paydesk")
    bare = [add(f"ceiling: bare {name}", name) for name in times if name in BARE_QUERIES]
    section.add(
        "context: Python set membership",
        median_rate(BLOCK_TRANSFERS, times["memory"]),
        "transfers/s",
    )
    section.ratios["paydesk/bare SQL (the faster bare query)"] = paydesk.rate / max(
        f.rate for f in bare
    )
    return section


#: The lookup as one raw query. PostgreSQL: the `= ANY($2)` the watcher's IN list amounts
#: to, and the same as a join on the unnested array (the planner picks a parallel seq scan
#: for a custom plan of a 5,000-element ANY, and switches to the index once asyncpg's
#: prepared statement gets a generic plan: both are shown).
BARE_QUERIES = {
    "asyncpg = ANY($2)": (
        "SELECT address FROM deposit_addresses WHERE network = $1 AND address = ANY($2)"
    ),
    "asyncpg JOIN unnest($2)": (
        "SELECT d.address FROM unnest($2::varchar[]) AS c(address) JOIN deposit_addresses d"
        " ON d.network = $1 AND d.address = c.address"
    ),
    "sqlite3 IN (?, ...)": (
        "SELECT address FROM deposit_addresses WHERE network = ? AND address IN ({marks})"
    ),
}


async def _match_rounds(
    db: Db, work: Path, transfers: list[Transfer], hits: int, memory: set[str]
) -> dict[str, list[float]]:
    context = build_context(settings(db, work))
    network = context.catalogue.network(NETWORK)
    assert network is not None
    adapter = build_adapter(network, context.catalogue, context.settings, context.db)
    watcher = Watcher(context, network, adapter)  # the adapter is never called
    bare = BareLookup(db)
    await bare.connect()
    times: dict[str, list[float]] = {"paydesk": [], **{name: [] for name in bare.names}}
    times["memory"] = []
    try:
        with progress() as bar:
            task = bar.add_task("matching (paydesk, bare SQL, set)", total=MATCH_ROUNDS + 1)
            for round_number in range(MATCH_ROUNDS + 1):  # the first round warms up
                found: dict[str, int] = {}
                seconds: dict[str, float] = {}
                async with context.db.reader() as session:
                    started = time.perf_counter()
                    found["paydesk"] = len(await watcher._watched(session, transfers))
                    seconds["paydesk"] = time.perf_counter() - started
                for name in bare.names:
                    started = time.perf_counter()
                    found[name] = len(await bare.watched(name, transfers))
                    seconds[name] = time.perf_counter() - started
                started = time.perf_counter()
                found["memory"] = len([t for t in transfers if t.to_address in memory])
                seconds["memory"] = time.perf_counter() - started
                if set(found.values()) != {hits}:
                    sys.exit(f"the lookups disagree (expected {hits}): {found}")
                if round_number:
                    for name, value in seconds.items():
                        times[name].append(value)
                bar.advance(task)
    finally:
        await bare.close()
        await adapter.close()
        await context.close()
    return times


class BareLookup:
    """The lookup as raw queries on one driver connection: candidates in, the watched
    transfers out (the same Python around the query as the watcher's)."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.names = [n for n in BARE_QUERIES if n.startswith("sqlite3" if db.path else "asyncpg")]
        self._pg: asyncpg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None

    async def connect(self) -> None:
        if self.db.path is not None:
            self._sqlite = sqlite3.connect(self.db.path)
        else:
            self._pg = await asyncpg.connect(database=DATABASE, **PG)

    async def watched(self, name: str, transfers: list[Transfer]) -> list[Transfer]:
        candidates = sorted({t.to_address for t in transfers})
        query = BARE_QUERIES[name]
        if self._pg is not None:
            rows = await self._pg.fetch(query, NETWORK, candidates)
        else:
            assert self._sqlite is not None
            marks = ", ".join("?" * len(candidates))
            rows = self._sqlite.execute(query.format(marks=marks), [NETWORK, *candidates])
        watched = {row[0] for row in rows}
        return [t for t in transfers if t.to_address in watched]

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()


# --------------------------------------------------------------------------- (b) derivation
ENCODERS: dict[str, Callable[[Any], str]] = {
    "eth": EthAddrEncoder.EncodeKey,
    "btc": lambda key: P2WPKHAddrEncoder.EncodeKey(key, hrp="bc"),
    "tron": TrxAddrEncoder.EncodeKey,
}


def bench_derivation(args: argparse.Namespace, work: Path) -> Section:
    # The mnemonic is given, not stored: no vault.
    networks = load_catalogue(list(DERIVE_NETWORKS)).networks
    keys = KeyRing.for_networks(None, networks)  # type: ignore[arg-type]
    keys.use_mnemonic(MNEMONIC)
    times: dict[str, list[float]] = {}
    with progress() as bar:
        task = bar.add_task("deriving", total=len(DERIVE_NETWORKS) * DERIVE_ROUNDS)
        for network in DERIVE_NETWORKS:
            deriver = keys.deriver(network)
            ways = {"paydesk": deriver.derive, **bare_derivers(keys, network)}
            for index in (0, 1, 2**31 - 1):
                if len({derive(index) for derive in ways.values()}) != 1:
                    sys.exit(f"{network}: the bare derivations disagree at index {index}")
            for number in range(DERIVE_ROUNDS):
                first = 1000 + number * DERIVE_COUNT
                for name, derive in ways.items():
                    started = time.perf_counter()
                    for index in range(first, first + DERIVE_COUNT):
                        derive(index)
                    times.setdefault(f"{network} {name}", []).append(time.perf_counter() - started)
                bar.advance(task)

    with database(args.sqlite, work, "derivation") as db:
        refill, added = asyncio.run(_refill_rounds(db, work))

    section = Section(
        f"(b) address derivation ({DERIVE_COUNT:,} indices x {DERIVE_ROUNDS} rounds per "
        f"network, median), pool refill on {db.kind}"
    )
    ceilings: dict[str, float] = {}
    for network in DERIVE_NETWORKS:
        paydesk = section.add(
            f"{network:4} paydesk KeyRing.deriver().derive",
            median_rate(DERIVE_COUNT, times[f"{network} paydesk"]),
            "addresses/s",
        )
        bare = [
            section.add(
                f"{network:4} ceiling: {name}",
                median_rate(DERIVE_COUNT, times[f"{network} {name}"]),
                "addresses/s",
            )
            for name in BARE_DERIVATIONS
        ]
        ceilings[network] = max(f.rate for f in bare)
        section.ratios[f"{network} paydesk/ceiling (the faster bare way)"] = (
            paydesk.rate / ceilings[network]
        )
    pool = section.add(
        "eth  paydesk pool refill into the DB",
        median_rate(added, refill),
        "addresses/s",
        f"the worker's refill of an empty pool: {added:,} rows in "
        f"{added // REFILL_BATCH} transactions, median of {REFILL_ROUNDS}",
    )
    section.ratios["eth pool refill/ceiling"] = pool.rate / ceilings["eth"]
    return section


#: bip-utils' lowest level, on the same account's external chain node (m/…/0): one child
#: derivation and one address encoding per index. Public derivation (what an xpub allows)
#: and private derivation (what paydesk's own node does: it holds the private key) differ
#: in cost, so both are shown and the faster is the ceiling.
BARE_DERIVATIONS = ("public ChildKey + encoder", "private ChildKey + encoder")


def bare_derivers(keys: KeyRing, network: str) -> dict[str, Callable[[int], str]]:
    private = keys.account(network).Change(Bip44Changes.CHAIN_EXT).Bip32Object()
    key = private.PublicKey()
    public = Bip32Secp256k1.FromPublicKey(key.KeyObject(), key.Data())
    encode = ENCODERS[network]

    def via(node: Any) -> Callable[[int], str]:
        return lambda index: encode(node.ChildKey(index).PublicKey().KeyObject())

    return dict(zip(BARE_DERIVATIONS, (via(public), via(private)), strict=True))


async def _refill_rounds(db: Db, work: Path) -> tuple[list[float], int]:
    """The worker's refill of an empty eth pool (LOW_WATER → TARGET), a few times."""
    context = build_context(settings(db, work))
    context.addresses.keys.use_mnemonic(MNEMONIC)
    seconds: list[float] = []
    added = 0
    try:
        with progress() as bar:
            task = bar.add_task(f"refilling the pool to {TARGET:,}", total=REFILL_ROUNDS)
            for _ in range(REFILL_ROUNDS):
                async with context.db.transaction() as session:
                    await session.execute(delete(DepositAddress))
                started = time.perf_counter()
                level = await worker_refill(context, NETWORK)
                seconds.append(time.perf_counter() - started)
                added = level.added
                async with context.db.reader() as session:
                    count = await session.scalar(select(func.count()).select_from(DepositAddress))
                if count != added or added < LOW_WATER:
                    sys.exit(f"the refill added {added} addresses, the table holds {count}")
                bar.advance(task)
    finally:
        await context.close()
    return seconds, added


# --------------------------------------------------------------------------- (c) watcher
def bench_watcher(args: argparse.Namespace, work: Path) -> Section | None:
    from tests.chains.anvil import ANVIL_BINARY, REPO_ROOT, Anvil

    if not ANVIL_BINARY.exists():
        where = ANVIL_BINARY.relative_to(REPO_ROOT)
        log(f"\n(c) skipped: anvil is not installed ({where}): run `npm ci --prefix tools`")
        return None
    with Anvil(chain_id=1) as anvil, database(args.sqlite, work, "watcher") as db:
        usdt = anvil.deploy_token("USDT", USDT_DECIMALS)
        catalogue = work / "catalogue.toml"
        catalogue.write_text(
            f'[[services]]\nnetwork = "{NETWORK}"\ncurrency = "USDT"\ncontract = "{usdt}"\n'
        )
        with progress() as bar:
            insert_watched(db, random_addresses(WATCHER_FILLER), 10**9, bar)
        config = settings(db, work, anvil.url, catalogue)
        invoices = asyncio.run(_create_invoices(config))
        with progress() as bar:
            sent = build_chain(anvil, usdt, invoices, args.blocks, bar)
        tip = anvil.block_number()
        result = asyncio.run(_watch(config, tip))

    title = (
        f"(c) watcher on anvil, {db.kind}: blocks 1..{tip} ({sent['empty']} empty, "
        f"{sent['native']} native and {sent['token']} ERC-20 transfers, "
        f"{len(invoices)} paying invoices; {WATCHER_FILLER:,} more watched addresses), "
        f"batches of {BATCH_BLOCKS}"
    )
    return watcher_section(title, tip, result, "EvmAdapter")


def watcher_section(title: str, tip: int, result: dict[str, Any], adapter: str) -> Section:
    """The watcher's blocks per second against its adapter's alone (see `_watch`)."""
    section = Section(title)
    watcher = section.add(
        "paydesk Watcher.step() loop",
        tip / result["watcher"],
        "blocks/s",
        f"{result['watcher']:.2f} s, of which node reads {result['watcher_node']:.2f} s; "
        f"deposits {result['deposits']}",
    )
    ceiling = section.add(
        f"ceiling: {adapter}.blocks alone, no DB",
        tip / min(result["adapter"]),
        "blocks/s",
        "best of " + ", ".join(f"{s:.2f} s" for s in result["adapter"]),
    )
    section.ratios["watcher/adapter-only"] = watcher.rate / ceiling.rate
    return section


async def _create_invoices(config: Settings) -> list[tuple[str, str, int]]:
    """Invoices to pay on chain: (address, currency, amount in the smallest unit)."""
    context = build_context(config)
    plan = [("USDT", Decimal(15), USDT_DECIMALS)] * USDT_INVOICES
    plan += [("ETH", Decimal("0.01"), 18)] * ETH_INVOICES
    invoices = []
    try:
        async with context.db.transaction() as session:
            shop = await create_merchant(session, context.vault, name="Bench", email="b@bench.test")
        for number, (currency, amount, decimals) in enumerate(plan):
            draft = InvoiceDraft(
                amount=amount, currency=currency, order_id=f"chains-{number}", network=NETWORK
            )
            async with context.db.transaction() as session:
                created = await context.invoices.create(session, shop.merchant_id, draft)
            assert created.invoice.address is not None
            invoices.append((created.invoice.address, currency, int(amount.scaleb(decimals))))
    finally:
        await context.close()
    return invoices


def build_chain(
    anvil: Any, usdt: str, invoices: list[tuple[str, str, int]], blocks: int, bar: Progress
) -> Counter[str]:
    """Mine up to `blocks` blocks: runs of empty ones, and blocks of 1-8 native or token
    transfers to fresh addresses; each invoice is paid in one of them (not in the last
    confirmations' worth, so the watcher credits it)."""
    rng = random.Random(1)
    start = anvil.block_number()
    target = start + blocks
    task = bar.add_task(f"mining {blocks:,} blocks on anvil", total=blocks)
    heights = rng.sample(range(start + 5, target - 20), len(invoices))
    pay_at = dict(zip(heights, invoices, strict=True))
    counts: Counter[str] = Counter()
    anvil.set_automine(False)
    nonce = anvil.nonce()
    height = start
    try:
        while height < target:
            payment = pay_at.get(height + 1)
            if payment is None and rng.random() < 0.25:
                due = [h for h in pay_at if h > height]
                run = min(rng.randint(1, 4), target - height, min(due, default=target) - height - 1)
                if run > 0:
                    anvil.mine(run)
                    counts["empty"] += run
                    height += run
                    bar.advance(task, run)
                    continue
            raws = []
            for _ in range(rng.randint(1, 8)):
                to = "0x" + rng.randbytes(20).hex()
                if rng.random() < 0.5:
                    raws.append(anvil.sign_native(to, rng.randrange(10**14, 10**17), nonce))
                    counts["native"] += 1
                else:
                    amount = rng.randrange(1, 10**4) * 10**USDT_DECIMALS
                    raws.append(anvil.sign_token_transfer(usdt, to, amount, nonce))
                    counts["token"] += 1
                nonce += 1
            if payment is not None:
                address, currency, amount = payment
                if currency == "USDT":
                    raws.append(anvil.sign_token_transfer(usdt, address, amount, nonce))
                    counts["token"] += 1
                else:
                    raws.append(anvil.sign_native(address, amount, nonce))
                    counts["native"] += 1
                nonce += 1
            for raw in raws:
                anvil.w3.eth.send_raw_transaction(raw)
            anvil.mine()
            height += 1
            bar.advance(task)
    finally:
        anvil.set_automine(True)
        bar.remove_task(task)
    mined = sum(len(anvil.w3.eth.get_block(h)["transactions"]) for h in sorted(pay_at))
    if mined < len(pay_at) or anvil.block_number() != target:
        sys.exit("anvil did not mine the planned chain")
    return counts


async def _watch(config: Settings, tip: int, code: str = NETWORK) -> dict[str, Any]:
    """After an untimed warm-up pass: the adapter alone, the watcher from block 0 to the
    tip, the adapter alone again."""
    context = build_context(config)
    network = context.catalogue.network(code)
    assert network is not None
    adapter = build_adapter(network, context.catalogue, config, context.db)
    result: dict[str, Any] = {"adapter": []}
    try:
        with progress() as bar:
            await _adapter_only(adapter, tip, bar)
            result["adapter"].append(await _adapter_only(adapter, tip, bar))
            watched = await _watcher_run(context, network, adapter, tip, bar)
            result["watcher"], result["watcher_node"] = watched
            result["adapter"].append(await _adapter_only(adapter, tip, bar))
        async with context.db.reader() as session:
            deposits = select(Deposit.status).where(Deposit.network == code)
            statuses = Counter(await session.scalars(deposits))
            paid = Counter(await session.scalars(select(Invoice.status)))
        result["deposits"] = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        result["deposits"] += "; invoices " + ", ".join(f"{n} {s}" for s, n in paid.items())
    finally:
        await adapter.close()
        await context.close()
    return result


async def _adapter_only(adapter: ChainAdapter, tip: int, bar: Progress) -> float:
    task = bar.add_task(f"{type(adapter).__name__}.blocks alone", total=tip)
    started = time.perf_counter()
    for first in range(1, tip + 1, BATCH_BLOCKS):
        last = min(first + BATCH_BLOCKS - 1, tip)
        blocks = await adapter.blocks(first, last)
        assert len(blocks) == last - first + 1
        bar.advance(task, len(blocks))
    seconds = time.perf_counter() - started
    bar.remove_task(task)
    return seconds


async def _watcher_run(
    context: Context, network: Network, adapter: ChainAdapter, tip: int, bar: Progress
) -> tuple[float, float]:
    """Seed the cursor at block 0 (a fresh watcher would start near the tip), then step
    to the tip; (seconds, of which in node reads)."""
    [genesis] = await adapter.headers(0, 0)
    async with context.db.transaction() as session:
        session.add(
            ChainCursor(network=network.code, height=0, hash=genesis.hash, updated_at=utcnow())
        )
        session.add(ChainBlock(network=network.code, height=0, hash=genesis.hash,
                               parent_hash=genesis.parent_hash))  # fmt: skip
    timed = NodeTimer(adapter)
    watcher = Watcher(context, network, timed, batch_blocks=BATCH_BLOCKS)
    task = bar.add_task("Watcher.step() from block 0", total=tip)
    done = 0
    started = time.perf_counter()
    while done < tip:
        step = await watcher.step()
        if not step.blocks:
            sys.exit(f"the watcher stopped at block {done} of {tip}: {step}")
        done += step.blocks
        bar.advance(task, step.blocks)
    seconds = time.perf_counter() - started
    await watcher.release()
    bar.remove_task(task)
    return seconds, timed.seconds


class NodeTimer:
    """The adapter as the watcher sees it, adding up the time spent in node reads."""

    def __init__(self, adapter: ChainAdapter) -> None:
        self.adapter = adapter
        self.network = adapter.network
        self.seconds = 0.0

    async def _timed(self, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self.seconds += time.perf_counter() - started

    async def tip(self) -> int:
        return await self._timed(self.adapter.tip())

    async def headers(self, start: int, end: int) -> list[BlockHeader]:
        return await self._timed(self.adapter.headers(start, end))

    async def blocks(self, start: int, end: int) -> list[Block]:
        return await self._timed(self.adapter.blocks(start, end))

    async def pending(self) -> list[Transfer]:
        return await self._timed(self.adapter.pending())

    async def check_node(self) -> None:
        await self._timed(self.adapter.check_node())

    def normalize_address(self, address: str) -> str | None:
        return self.adapter.normalize_address(address)

    async def close(self) -> None:
        await self.adapter.close()


# --------------------------------------------------------------------------- (d) utxo
def bench_utxo_watcher(args: argparse.Namespace, work: Path) -> Section | None:
    """The Bitcoin-family watcher on Litecoin Core in regtest: blocks of wallet payments
    (each a decoded transaction with its inputs and outputs), some paying invoices."""
    if shutil.which("litecoind") is None:
        log("\n(d) skipped: litecoind is not installed (scripts/test installs it)")
        return None
    from tests.litecoin import REGTEST_CATALOGUE, litecoind

    blocks = max(100, args.blocks // 4)
    with litecoind(work / "litecoind") as node, database(args.sqlite, work, "utxo") as db:
        catalogue = work / "ltc.toml"
        catalogue.write_text(REGTEST_CATALOGUE)
        with progress() as bar:
            insert_watched(db, random_addresses(WATCHER_FILLER), 10**9, bar, "ltc")
        config = settings(db, work, node.url, catalogue, "ltc")
        invoices = asyncio.run(_create_ltc_invoices(config))
        with progress() as bar:
            sent = build_utxo_chain(node, invoices, blocks, bar)
        tip = int(node.rpc("getblockcount"))
        result = asyncio.run(_watch(config, tip, "ltc"))

    title = (
        f"(d) watcher on litecoind regtest, {db.kind}: blocks 1..{tip} (101 coinbase-only, "
        f"{blocks} with {sent} wallet payments, {len(invoices)} paying invoices; "
        f"{WATCHER_FILLER:,} more watched addresses), batches of {BATCH_BLOCKS}"
    )
    return watcher_section(title, tip, result, "UtxoAdapter")


async def _create_ltc_invoices(config: Settings) -> list[tuple[str, Decimal]]:
    context = build_context(config)
    invoices = []
    try:
        async with context.db.transaction() as session:
            shop = await create_merchant(session, context.vault, name="Bench", email="b@bench.test")
        for number in range(USDT_INVOICES + ETH_INVOICES):
            amount = Decimal("0.5")
            draft = InvoiceDraft(
                amount=amount, currency="LTC", order_id=f"utxo-{number}", network="ltc"
            )
            async with context.db.transaction() as session:
                created = await context.invoices.create(session, shop.merchant_id, draft)
            assert created.invoice.address is not None
            invoices.append((created.invoice.address, amount))
    finally:
        await context.close()
    return invoices


def build_utxo_chain(
    node: Any, invoices: list[tuple[str, Decimal]], blocks: int, bar: Progress
) -> int:
    """Mine `blocks` blocks of 1-8 payments to the node's own fresh addresses; each
    invoice is paid in one of them (not in the last confirmations' worth)."""
    rng = random.Random(1)
    task = bar.add_task(f"mining {blocks:,} blocks on litecoind", total=blocks)
    pay_at = dict(zip(rng.sample(range(blocks - 10), len(invoices)), invoices, strict=True))
    sent = 0
    for number in range(blocks):
        for _ in range(rng.randint(1, 8)):
            amount = Decimal(rng.randrange(1, 10**5)).scaleb(-6)
            node.send(node.rpc("getnewaddress"), amount)
            sent += 1
        payment = pay_at.get(number)
        if payment is not None:
            node.send(*payment)
            sent += 1
        node.mine(1)
        bar.advance(task)
    bar.remove_task(task)
    return sent


# --------------------------------------------------------------------------- main
BENCHMARKS: dict[str, Callable[[argparse.Namespace, Path], Section | None]] = {
    "a": bench_matching,
    "b": bench_derivation,
    "c": bench_watcher,
    "d": bench_utxo_watcher,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", action="store_true", help="a temporary SQLite file")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark")
    parser.add_argument(
        "--blocks", type=int, default=1000, help="blocks mined for (c) (anvil slows past ~1500)"
    )
    args = parser.parse_args()
    if args.blocks < 100:
        parser.error("--blocks: at least 100")
    configure_logging("warning")
    work = Path(tempfile.mkdtemp(prefix="paydesk-bench-chains-"))
    sections: list[Section] = []
    started = time.perf_counter()
    try:
        for name, bench in BENCHMARKS.items():
            if args.only in (None, name):
                log(f"running ({name}) on {'SQLite' if args.sqlite else 'PostgreSQL'}")
                section = bench(args, work)
                if section is not None:
                    section.print()
                    sections.append(section)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"\ntotal {time.perf_counter() - started:.0f} s")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = "sqlite" if args.sqlite else "postgresql"
    (results / f"chains-{kind}-{stamp}.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "sections": [
                    {
                        "title": s.title,
                        "figures": [vars(f) for f in s.figures],
                        "ratios": s.ratios,
                    }
                    for s in sections
                ],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
