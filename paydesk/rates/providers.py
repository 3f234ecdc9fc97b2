"""Rate providers: each fetches its whole book of pairs in one refresh.

Markets (Binance, KuCoin through ccxt; Binance P2P over its public HTTP API) and daily
reference rates (the ECB, open.er-api.com). Every value is read from the provider's own
decimal text into `Decimal`; a zero, negative or unreadable price is dropped, never
guessed. A provider that cannot answer raises `ProviderError` and keeps its old rates,
which age out by the staleness bound.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from defusedxml import DefusedXmlException, ElementTree

from paydesk.config import Settings
from paydesk.db import utcnow
from paydesk.money import parse_decimal
from paydesk.rates.models import Rate


class ProviderError(Exception):
    """The provider is down, slow, or answered something that is not its format."""


class RateProvider(Protocol):
    name: str
    #: Beyond this age its rates are not used.
    max_age: timedelta

    async def fetch(self) -> list[Rate]: ...

    async def close(self) -> None: ...


def positive(value: object) -> Decimal | None:
    """A usable price: a finite decimal above zero (JSON text or number, never a float)."""
    if isinstance(value, float):
        return None
    parsed = parse_decimal(value)
    return parsed if parsed is not None and parsed > 0 else None


def static_rates(table: dict[str, Decimal]) -> list[Rate]:
    """The operator's table (`PAYDESK_STATIC_RATES`), checked once at start-up."""
    now = utcnow()
    rates = []
    for pair, value in table.items():
        base, _, quote = pair.upper().partition("/")
        if not base or not quote or positive(value) is None:
            raise ValueError(f"bad static rate {pair}={value}")
        rates.append(Rate(base, quote, value, "static", now))
    return rates


class _HttpProvider:
    """A provider over plain HTTP (httpx), at its public URL or an operator's mirror."""

    name: str
    default_url: str

    def __init__(self, *, endpoint: str | None, timeout: float, max_age: timedelta) -> None:
        self.base_url = (endpoint or self.default_url).rstrip("/")
        self.max_age = max_age
        self._client = httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": "paydesk-rates/1"}, follow_redirects=True
        )

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, self.base_url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise ProviderError(f"{self.name}: HTTP {response.status_code}")
        return response

    async def close(self) -> None:
        await self._client.aclose()


class EcbProvider(_HttpProvider):
    """Euro foreign-exchange reference rates, published by the ECB on working days."""

    name = "ecb"
    default_url = "https://www.ecb.europa.eu"
    PATH = "/stats/eurofxref/eurofxref-daily.xml"
    #: The rates are set at the 14:10 CET concertation; the file follows around 16:00 CET.
    FIXING = time(13, 10, tzinfo=UTC)

    async def fetch(self) -> list[Rate]:
        response = await self._request("GET", self.PATH)
        try:
            root = ElementTree.fromstring(response.content)
        except (ElementTree.ParseError, DefusedXmlException) as exc:
            raise ProviderError(f"ecb: not XML: {exc}") from exc
        day = next((c for c in root.iter() if c.tag.endswith("Cube") and c.get("time")), None)
        if day is None:
            raise ProviderError("ecb: no dated Cube element")
        try:
            as_of = datetime.combine(date.fromisoformat(day.get("time", "")), self.FIXING)
        except ValueError as exc:
            raise ProviderError(f"ecb: bad date {day.get('time')!r}") from exc
        rates = [
            Rate("EUR", code.upper(), value, self.name, as_of)
            for cube in day
            if (code := cube.get("currency")) and (value := positive(cube.get("rate")))
        ]
        if not rates:
            raise ProviderError("ecb: no rates in the file")
        return rates


class OpenErApiProvider(_HttpProvider):
    """open.er-api.com (ExchangeRate-API's open access): daily USD rates for about 160
    currencies, covering the fiat the ECB does not list (RUB, NGN, KES, XOF, …)."""

    name = "openerapi"
    default_url = "https://open.er-api.com"
    PATH = "/v6/latest/USD"

    async def fetch(self) -> list[Rate]:
        response = await self._request("GET", self.PATH)
        try:
            # parse_float keeps JSON numbers exact: they never pass through float.
            body = json.loads(response.content, parse_float=Decimal, parse_int=Decimal)
            if body.get("result") != "success":
                raise ProviderError(f"openerapi: result {body.get('result')!r}")
            base = str(body["base_code"]).upper()
            as_of = datetime.fromtimestamp(int(body["time_last_update_unix"]), UTC)
            table = body["rates"]
            if not isinstance(table, dict):
                raise TypeError("rates is not an object")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"openerapi: unexpected body: {exc}") from exc
        rates = [
            Rate(base, str(code).upper(), value, self.name, as_of)
            for code, raw in table.items()
            if str(code).upper() != base and (value := positive(raw))
        ]
        if not rates:
            raise ProviderError("openerapi: no rates")
        return rates


class BinanceP2PProvider(_HttpProvider):
    """What a buyer pays for USDT in each configured fiat on Binance P2P: the median of
    the best advertised prices (one outlier ad does not move it)."""

    name = "binancep2p"
    default_url = "https://p2p.binance.com"
    PATH = "/bapi/c2c/v2/friendly/c2c/adv/search"
    ADS = 10

    def __init__(
        self,
        *,
        fiats: Iterable[str],
        assets: Iterable[str] = ("USDT",),
        endpoint: str | None,
        timeout: float,
        max_age: timedelta,
    ) -> None:
        super().__init__(endpoint=endpoint, timeout=timeout, max_age=max_age)
        self.pairs = [(asset, fiat) for asset in assets for fiat in fiats]

    async def fetch(self) -> list[Rate]:
        results = await asyncio.gather(
            *(self._one(asset, fiat) for asset, fiat in self.pairs), return_exceptions=True
        )
        rates = [result for result in results if isinstance(result, Rate)]
        if not rates:
            errors = dict.fromkeys(str(r) for r in results if isinstance(r, BaseException))
            raise ProviderError(f"binancep2p: no prices ({'; '.join(list(errors)[:3])})")
        return rates

    async def _one(self, asset: str, fiat: str) -> Rate:
        query = {
            "asset": asset,
            "fiat": fiat,
            "tradeType": "BUY",
            "page": 1,
            "rows": self.ADS,
            "payTypes": [],
            "countries": [],
            "publisherType": None,
        }
        response = await self._request("POST", self.PATH, json=query)
        try:
            body = json.loads(response.content, parse_float=Decimal)
            if body.get("code") != "000000" or not body.get("success", True):
                raise ProviderError(f"binancep2p: code {body.get('code')!r}")
            prices = [
                price
                for item in body["data"]
                if (price := positive(item["adv"]["price"])) is not None
                and item["adv"].get("asset", asset) == asset
                and item["adv"].get("fiatUnit", fiat) == fiat
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"binancep2p: unexpected body: {exc}") from exc
        if not prices:
            raise ProviderError(f"binancep2p: no {asset}/{fiat} ads")
        return Rate(asset, fiat, statistics.median(prices), self.name, utcnow())


class ExchangeProvider:
    """A spot exchange through ccxt: its markets say which symbol is which pair; the
    price is the exchange's own last-trade text from the ticker's raw `info` (ccxt's
    unified fields are floats, which never touch an amount here)."""

    #: How often the market list (symbols → pairs) is reloaded.
    MARKETS_TTL = timedelta(hours=6)

    def __init__(
        self,
        name: str,
        exchange_id: str,
        price_field: str,
        *,
        wanted: set[str],
        endpoint: str | None,
        timeout: float,
        max_age: timedelta,
        options: dict[str, Any] | None = None,
    ) -> None:
        import ccxt.async_support as ccxt_async  # heavy: imported only where rates are fetched

        self.name = name
        self.max_age = max_age
        self.price_field = price_field
        self.wanted = wanted
        config: dict[str, Any] = {
            "timeout": int(timeout * 1000),
            "enableRateLimit": True,
            "options": {"fetchMarkets": {"types": ["spot"]}, **(options or {})},
        }
        self._exchange = getattr(ccxt_async, exchange_id)(config)
        # Currencies need private endpoints on some exchanges and are not used here.
        self._exchange.has = {**self._exchange.has, "fetchCurrencies": False}
        if endpoint:
            _point_at(self._exchange.urls["api"], endpoint)
        self._markets_loaded: datetime | None = None
        self._symbols: list[str] = []
        self._errors = ccxt_async.BaseError

    async def fetch(self) -> list[Rate]:
        exchange = self._exchange
        try:
            now = utcnow()
            if self._markets_loaded is None or now - self._markets_loaded > self.MARKETS_TTL:
                await exchange.load_markets(reload=True)
                self._markets_loaded = now
                self._symbols = [
                    symbol
                    for symbol, market in exchange.markets.items()
                    if market.get("spot", True)
                    and market["base"] in self.wanted
                    and market["quote"] in self.wanted
                ]
            if not self._symbols:
                raise ProviderError(f"{self.name}: no market between catalogue currencies")
            # Only the catalogue's pairs (exchanges that can filter send only those).
            tickers = await exchange.fetch_tickers(self._symbols)
        except (self._errors, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            # ccxt raises its own errors for HTTP failures and plain ones for bodies it
            # cannot parse.
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {str(exc)[:200]}") from exc
        rates = []
        for symbol, ticker in tickers.items():
            market = exchange.markets.get(symbol)
            if not market or market.get("type", "spot") != "spot":
                continue
            base, quote = market["base"], market["quote"]
            if base not in self.wanted or quote not in self.wanted:
                continue
            info = ticker.get("info") or {}
            value = positive(info.get(self.price_field))
            if value is None:
                continue
            stamp = ticker.get("timestamp")
            as_of = datetime.fromtimestamp(stamp / 1000, UTC) if stamp else utcnow()
            rates.append(Rate(base, quote, value, self.name, min(as_of, utcnow())))
        if not rates:
            raise ProviderError(f"{self.name}: no usable prices for the catalogue's pairs")
        return rates

    async def close(self) -> None:
        await self._exchange.close()


def _point_at(urls: dict[str, Any], endpoint: str) -> None:
    """Send every API URL of a ccxt exchange to `endpoint`, keeping each URL's path."""
    for key, value in urls.items():
        if isinstance(value, dict):
            _point_at(value, endpoint)
        elif isinstance(value, str):
            urls[key] = endpoint.rstrip("/") + urlsplit(value).path


#: Provider names an operator can list in `PAYDESK_RATE_PROVIDERS`.
PROVIDERS = ("binance", "kucoin", "binancep2p", "ecb", "openerapi")
#: Providers whose rates are daily references rather than live markets.
REFERENCE_PROVIDERS = frozenset({"ecb", "openerapi"})


def build_provider(
    name: str,
    *,
    wanted: set[str],
    endpoint: str | None,
    timeout: float,
    market_max_age: timedelta,
    reference_max_age: timedelta,
    p2p_fiats: Iterable[str],
) -> RateProvider:
    if name == "binance":
        return ExchangeProvider(
            "binance", "binance", "lastPrice",
            wanted=wanted, endpoint=endpoint, timeout=timeout, max_age=market_max_age,
        )  # fmt: skip
    if name == "kucoin":
        return ExchangeProvider(
            "kucoin", "kucoin", "last",
            wanted=wanted, endpoint=endpoint, timeout=timeout, max_age=market_max_age,
            options={"fetchTickersFees": False},
        )  # fmt: skip
    if name == "binancep2p":
        return BinanceP2PProvider(
            fiats=p2p_fiats, endpoint=endpoint, timeout=timeout, max_age=market_max_age
        )
    if name == "ecb":
        return EcbProvider(endpoint=endpoint, timeout=timeout, max_age=reference_max_age)
    if name == "openerapi":
        return OpenErApiProvider(endpoint=endpoint, timeout=timeout, max_age=reference_max_age)
    raise ValueError(f"unknown rate provider {name!r}; known: {', '.join(PROVIDERS)}")


def build_providers(settings: Settings, wanted: set[str]) -> list[RateProvider]:
    """The providers `PAYDESK_RATE_PROVIDERS` lists, at their configured endpoints."""
    return [
        build_provider(
            name,
            wanted=wanted,
            endpoint=settings.rate_endpoints.get(name),
            timeout=settings.rate_timeout_seconds,
            market_max_age=market_max_age(settings),
            reference_max_age=reference_max_age(settings),
            p2p_fiats=settings.rate_p2p_fiats,
        )
        for name in settings.rate_providers
    ]


def market_max_age(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.rate_max_age_seconds)


def reference_max_age(settings: Settings) -> timedelta:
    return timedelta(hours=settings.rate_reference_max_age_hours)


def max_age_of(settings: Settings) -> Callable[[str], timedelta]:
    """The staleness bound of each source's rates."""
    market, reference = market_max_age(settings), reference_max_age(settings)
    return lambda source: reference if source in REFERENCE_PROVIDERS else market
