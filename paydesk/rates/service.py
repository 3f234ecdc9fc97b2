"""The one place the rest of Paydesk asks for a rate.

Rates live in the database (the worker's refresher writes them, every API process reads
them), and each process keeps a copy for `rate_cache_seconds`. A conversion is a path
of at most three pairs Paydesk knows, from sources in this order of trust:

1. the operator's static table (the stablecoin pegs by default; an operator who sets a
   rate means it),
2. the invoice's `course_source` (Binance, BinanceP2P, Kucoin; Exmo as configured),
3. the aggregate: per pair, the median of the configured markets that answered, when at
   least `rate_min_sources` did,
4. the daily references in configured order (ECB, open.er-api) for fiat crosses.

A named `course_source` first prices alone (with the static table): `Kucoin` gives
ETH → BTC from KuCoin's own ETH/USDT and BTC/USDT rather than another market's ETH/BTC.
Otherwise, and when the named source cannot price the pair, the path with the fewest hops
wins, and among those the one whose sources are most trusted: USD → BTC is USD → USDT
(peg) → BTC (market), not a detour through a day-old fiat cross, and EUR → USD is the
ECB's rate, not one implied by crypto markets.

A rate older than its provider's staleness bound is not a rate. When no path exists the
answer is `RateUnavailable`: Paydesk never invents a price.
"""

from __future__ import annotations

import asyncio
import heapq
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from paydesk.db import Database, dialect_insert, utcnow
from paydesk.money import RATES
from paydesk.rates.models import Rate, StoredRate

AGGREGATE = "aggregate"
STATIC = "static"
#: Longest chain of pairs a conversion may use (EUR → USD → USDT → BTC).
MAX_HOPS = 3
#: `course_source` values of the spec and the provider each one means.
COURSE_SOURCES = {"binance": "binance", "binancep2p": "binancep2p", "kucoin": "kucoin"}


class RateUnavailable(LookupError):
    """No fresh rate connects the pair: Paydesk will not invent one."""


@dataclass(frozen=True, slots=True)
class _Edge:
    to: str
    value: Decimal
    tier: int
    source: str
    as_of: datetime


class RateBook:
    """Every usable rate at one moment, and the conversions they allow."""

    def __init__(
        self,
        rates: Iterable[Rate],
        static: Sequence[Rate],
        *,
        now: datetime,
        max_age: Callable[[str], timedelta],
        aggregate: Sequence[str],
        min_sources: int,
        references: Sequence[str],
    ) -> None:
        self.now = now
        self.by_source: dict[str, dict[tuple[str, str], Rate]] = {}
        for rate in rates:
            if rate.value > 0 and now - rate.as_of <= max_age(rate.source):
                self.by_source.setdefault(rate.source, {})[(rate.base, rate.quote)] = rate
        self.by_source[AGGREGATE] = _median_book(
            [self.by_source.get(name, {}) for name in aggregate], min_sources
        )
        self.by_source[STATIC] = {(r.base, r.quote): replace(r, as_of=now) for r in static}
        self._fallbacks = [AGGREGATE, *references]
        self._graphs: dict[str | None, tuple[dict[str, list[_Edge]], int]] = {}

    def convert(self, base: str, quote: str, source: str | None = None) -> Rate | None:
        """How many `quote` one `base` buys, preferring `source` (a provider name).

        A named source first prices alone (with the operator's static table); only when
        it cannot is everything else mixed in.
        """
        base, quote = base.upper(), quote.upper()
        if base == quote:
            return Rate(base, quote, Decimal(1), "", self.now)
        graph, tiers = self._graph(source)
        named = source is not None and source != AGGREGATE
        for limit in (1, tiers) if named else (tiers,):
            path = _shortest(graph, base, quote, limit)
            if path is not None:
                return _compose(base, quote, path)
        return None

    def _graph(self, source: str | None) -> tuple[dict[str, list[_Edge]], int]:
        """Both directions of every pair, each labelled with its source's tier."""
        cached = self._graphs.get(source)
        if cached is None:
            chosen = [source] if source and source != AGGREGATE else []
            order = list(dict.fromkeys([STATIC, *chosen, *self._fallbacks]))
            graph: dict[str, list[_Edge]] = {}
            for tier, name in enumerate(order):
                for (base, quote), rate in self.by_source.get(name, {}).items():
                    label = rate.source
                    graph.setdefault(base, []).append(
                        _Edge(quote, rate.value, tier, label, rate.as_of)
                    )
                    graph.setdefault(quote, []).append(
                        _Edge(base, RATES.divide(1, rate.value), tier, label, rate.as_of)
                    )
            cached = self._graphs[source] = (graph, len(order))
        return cached

    def rates(self, source: str) -> list[Rate]:
        return sorted(self.by_source.get(source, {}).values(), key=lambda r: (r.base, r.quote))


def _shortest(
    graph: dict[str, list[_Edge]], base: str, quote: str, limit: int
) -> tuple[_Edge, ...] | None:
    """Fewest hops, then the smallest sum of tiers, over edges of tier <= `limit`."""
    queue: list[tuple[int, int, int, str, tuple[_Edge, ...]]] = [(0, 0, 0, base, ())]
    settled: set[str] = set()
    counter = 0
    while queue:
        hops, tiers, _, node, path = heapq.heappop(queue)
        if node == quote:
            return path
        if node in settled or hops == MAX_HOPS:
            continue
        settled.add(node)
        for edge in graph.get(node, ()):
            if edge.tier <= limit and edge.to not in settled:
                counter += 1
                heapq.heappush(
                    queue, (hops + 1, tiers + edge.tier, counter, edge.to, (*path, edge))
                )
    return None


def _compose(base: str, quote: str, path: tuple[_Edge, ...]) -> Rate:
    value = Decimal(1)
    for edge in path:
        value = RATES.multiply(value, edge.value)
    sources = "+".join(dict.fromkeys(edge.source for edge in path))
    return Rate(base, quote, value, sources, min(edge.as_of for edge in path))


def _median_book(
    books: Sequence[dict[tuple[str, str], Rate]], min_sources: int
) -> dict[tuple[str, str], Rate]:
    """Per pair, the median of the books that quote it (either way round)."""
    quotes: dict[tuple[str, str], list[Rate]] = {}
    for book in books:
        for (base, quote), rate in book.items():
            if (quote, base) in quotes:
                inverse = RATES.divide(1, rate.value)
                quotes[(quote, base)].append(Rate(quote, base, inverse, rate.source, rate.as_of))
            else:
                quotes.setdefault((base, quote), []).append(rate)
    merged = {}
    for pair, found in quotes.items():
        if len(found) >= min_sources:
            value = RATES.plus(statistics.median([rate.value for rate in found]))
            merged[pair] = Rate(*pair, value, AGGREGATE, min(r.as_of for r in found))
    return merged


class RatesService:
    def __init__(
        self,
        db: Database,
        static: Sequence[Rate],
        *,
        cache_seconds: float = 5.0,
        max_age: Callable[[str], timedelta],
        aggregate: Sequence[str] = (),
        min_sources: int = 1,
        references: Sequence[str] = (),
        exmo_source: str = AGGREGATE,
    ) -> None:
        self._db = db
        self._static = list(static)
        self._cache_seconds = cache_seconds
        self._max_age = max_age
        self._aggregate = list(aggregate)
        self._min_sources = min_sources
        self._references = list(references)
        self._exmo_source = exmo_source.lower()
        self._book: RateBook | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def provider_for(self, course_source: str | None) -> str | None:
        """The provider a `course_source` names; None means the default aggregate."""
        if not course_source:
            return None
        name = course_source.lower()
        if name == "exmo":
            return None if self._exmo_source == AGGREGATE else self._exmo_source
        return COURSE_SOURCES.get(name)

    async def get_rate(self, base: str, quote: str, course_source: str | None = None) -> Rate:
        rate = (await self.book()).convert(base, quote, self.provider_for(course_source))
        if rate is None:
            raise RateUnavailable(f"{base}/{quote}")
        return rate

    async def book(self) -> RateBook:
        """This process's copy of the rates, reloaded when older than the cache time."""
        if self._book is not None and time.monotonic() - self._loaded_at < self._cache_seconds:
            return self._book
        async with self._lock:
            if self._book is None or time.monotonic() - self._loaded_at >= self._cache_seconds:
                async with self._db.reader() as session:
                    stored = (await session.scalars(select(StoredRate))).all()
                self._book = RateBook(
                    [row.as_rate() for row in stored],
                    self._static,
                    now=utcnow(),
                    max_age=self._max_age,
                    aggregate=self._aggregate,
                    min_sources=self._min_sources,
                    references=self._references,
                )
                self._loaded_at = time.monotonic()
        return self._book

    async def store(self, rates: Sequence[Rate]) -> None:
        """Keep the latest rate of each (source, pair); written by the refresher."""
        if not rates:
            return
        now = utcnow()
        async with self._db.transaction() as session:
            insert = dialect_insert(session, StoredRate)
            statement = insert.on_conflict_do_update(
                index_elements=[StoredRate.source, StoredRate.base, StoredRate.quote],
                set_={
                    "value": insert.excluded.value,
                    "as_of": insert.excluded.as_of,
                    "fetched_at": insert.excluded.fetched_at,
                },
            )
            rows = {(r.source, r.base, r.quote): r for r in rates}  # one row per key
            await session.execute(
                statement,
                [
                    {
                        "source": r.source,
                        "base": r.base,
                        "quote": r.quote,
                        "value": r.value,
                        "as_of": r.as_of,
                        "fetched_at": now,
                    }
                    for r in rows.values()
                ],
            )
        self._loaded_at = 0.0  # this process sees its own refresh at once
