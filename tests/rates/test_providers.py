"""Each provider against its real public format, served on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from paydesk.config import Settings
from paydesk.rates.providers import ProviderError, build_providers

WANTED = {"BTC", "ETH", "USDT", "USDC", "TRX", "LTC", "EUR", "USD", "RUB"}


def providers_for(rate_server, *names):
    settings = Settings(**rate_server.settings(*names))
    return build_providers(settings, WANTED)


async def fetch(rate_server, name):
    [provider] = providers_for(rate_server, name)
    try:
        return {(r.base, r.quote): r for r in await provider.fetch()}
    finally:
        await provider.close()


async def test_binance_through_ccxt(rate_server):
    rates = await fetch(rate_server, "binance")
    assert {pair: r.value for pair, r in rates.items()} == {
        ("BTC", "USDT"): Decimal("90000.00000000"),
        ("ETH", "USDT"): Decimal("3000.00000000"),
        ("TRX", "USDT"): Decimal("0.25000000"),
        ("BTC", "EUR"): Decimal("85000.00000000"),
        ("ETH", "BTC"): Decimal("0.03333000"),
        ("USDC", "USDT"): Decimal("1.00010000"),
    }  # LTC traded at 0 (dropped), PEPE is not a catalogue currency
    assert all(isinstance(r.value, Decimal) and r.source == "binance" for r in rates.values())
    # As of the exchange's time in the ticker (the server stamps it with now).
    assert datetime.now(UTC) - rates[("BTC", "USDT")].as_of < timedelta(seconds=5)
    paths = [path.split("?")[0] for _, path, _ in rate_server.requests]
    assert paths == ["/binance/api/v3/exchangeInfo", "/binance/api/v3/ticker/24hr"]
    # Only the catalogue's pairs are asked for, not the exchange's thousands.
    query = parse_qs(urlsplit(rate_server.requests[1][1]).query)
    assert sorted(json.loads(query["symbols"][0])) == [
        "BTCEUR", "BTCUSDT", "ETHBTC", "ETHUSDT", "LTCUSDT", "TRXUSDT", "USDCUSDT"
    ]  # fmt: skip


async def test_kucoin_through_ccxt(rate_server):
    rates = await fetch(rate_server, "kucoin")
    assert rates[("BTC", "USDT")].value == Decimal("90100")
    assert rates[("USDC", "USDT")].value == Decimal("0.9999")
    assert rates[("BTC", "EUR")].value == Decimal("85100")
    assert {r.source for r in rates.values()} == {"kucoin"}


async def test_markets_are_loaded_once_then_only_tickers(rate_server):
    [provider] = providers_for(rate_server, "binance")
    try:
        await provider.fetch()
        await provider.fetch()
    finally:
        await provider.close()
    paths = [path.split("?")[0] for _, path, _ in rate_server.requests]
    assert paths.count("/binance/api/v3/exchangeInfo") == 1
    assert paths.count("/binance/api/v3/ticker/24hr") == 2


async def test_binance_p2p_takes_the_median_of_the_best_ads(rate_server):
    rates = await fetch(rate_server, "binancep2p")
    # Ten ads from 81.20 to 95.00: the median ignores the outlier.
    assert rates == {("USDT", "RUB"): rates[("USDT", "RUB")]}
    assert rates[("USDT", "RUB")].value == Decimal("81.525")
    [(method, _, body)] = rate_server.requests
    query = json.loads(body)
    assert method == "POST"
    assert (query["asset"], query["fiat"], query["tradeType"]) == ("USDT", "RUB", "BUY")


async def test_ecb_reference_rates(rate_server):
    rates = await fetch(rate_server, "ecb")
    assert rates[("EUR", "USD")].value == Decimal("1.0800")
    assert rates[("EUR", "JPY")].value == Decimal("162.50")
    assert rates[("EUR", "USD")].as_of == datetime(2026, 11, 30, 13, 10, tzinfo=UTC)
    [provider] = providers_for(rate_server, "ecb")
    assert provider.max_age == timedelta(hours=120)
    await provider.close()


async def test_openerapi_numbers_stay_exact(rate_server):
    rates = await fetch(rate_server, "openerapi")
    assert rates[("USD", "RUB")].value == Decimal("80.5")
    assert rates[("USD", "EUR")].value == Decimal("0.925926")
    assert rates[("USD", "XOF")].value == Decimal("607.37")
    assert ("USD", "USD") not in rates
    age = datetime.now(UTC) - rates[("USD", "RUB")].as_of  # time_last_update_unix
    assert timedelta(minutes=59) < age < timedelta(minutes=61)


@pytest.mark.parametrize("name", ["binance", "kucoin", "binancep2p", "ecb", "openerapi"])
@pytest.mark.parametrize("fault", ["down", "slow", "malformed"])
async def test_a_failing_provider_raises_provider_error(rate_server, name, fault):
    rate_server.faults[name] = fault
    with pytest.raises(ProviderError):
        await fetch(rate_server, name)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("binance", [{"symbol": "BTCUSDT", "lastPrice": "0.00000000"}]),
        ("binance", [{"symbol": "BTCUSDT", "lastPrice": "-5"}]),
        ("openerapi", {"result": "error", "error-type": "quota-reached"}),
        ("openerapi", {"result": "success", "base_code": "USD", "rates": {"EUR": 0}}),
        ("binancep2p", {"code": "000000", "data": [{"adv": {"price": "-1"}}], "success": True}),
        ("binancep2p", {"code": "100001", "message": "system busy", "data": None}),
    ],
)
async def test_zero_negative_or_refused_answers_are_not_rates(rate_server, name, body):
    if name == "binance":  # markets load from the real fixture; only the tickers are bad
        rate_server.faults[name] = None
        [provider] = providers_for(rate_server, name)
        try:
            await provider._exchange.load_markets()
            provider._markets_loaded = datetime.now(UTC)
            rate_server.faults[name] = body
            with pytest.raises(ProviderError):
                await provider.fetch()
        finally:
            await provider.close()
        return
    rate_server.faults[name] = body
    with pytest.raises(ProviderError):
        await fetch(rate_server, name)


def test_unknown_provider_is_a_configuration_error(rate_server):
    with pytest.raises(ValueError, match="unknown rate provider"):
        build_providers(Settings(rate_providers="binance,coinbase"), WANTED)
