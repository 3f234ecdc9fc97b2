"""Which rate a conversion uses: path, trust order, staleness, the median."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from paydesk.money import RATES
from paydesk.rates.models import Rate
from paydesk.rates.providers import static_rates
from paydesk.rates.service import RateBook

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PEGS = static_rates({"USDT/USD": Decimal(1), "USDC/USD": Decimal(1)})


def rate(source, pair, value, age=timedelta(seconds=30)):
    base, quote = pair.split("/")
    return Rate(base, quote, Decimal(value), source, NOW - age)


def book(rates, *, aggregate=("binance", "kucoin"), min_sources=1, static=PEGS):
    return RateBook(
        rates,
        static,
        now=NOW,
        max_age=lambda s: timedelta(days=5) if s in ("ecb", "openerapi") else timedelta(minutes=10),
        aggregate=aggregate,
        min_sources=min_sources,
        references=["ecb", "openerapi"],
    )


MARKET = [
    rate("binance", "BTC/USDT", "90000"),
    rate("kucoin", "BTC/USDT", "90100"),
    rate("binancep2p", "USDT/RUB", "81.525"),
    rate("ecb", "EUR/USD", "1.08", timedelta(hours=20)),
    rate("openerapi", "USD/RUB", "80.5", timedelta(hours=12)),
]


def test_default_is_the_median_of_the_markets_through_the_peg():
    found = book(MARKET).convert("USD", "BTC")
    assert found.value == RATES.divide(1, Decimal("90050"))
    assert found.source == "static+aggregate"


def test_course_source_prefers_its_own_market():
    assert book(MARKET).convert("BTC", "USD", "kucoin").value == Decimal("90100")
    assert book(MARKET).convert("BTC", "USD", "kucoin").source == "kucoin+static"
    assert book(MARKET).convert("BTC", "USD", "binance").value == Decimal("90000")


def test_a_named_source_prices_alone_before_mixing():
    rates = [
        *MARKET,
        rate("binance", "ETH/BTC", "0.03333"),
        rate("kucoin", "ETH/USDT", "3010"),
    ]
    found = book(rates).convert("ETH", "BTC", "kucoin")  # two KuCoin hops beat one Binance
    assert found.value == RATES.multiply(Decimal("3010"), RATES.divide(1, Decimal("90100")))
    assert found.source == "kucoin"
    assert book(rates).convert("ETH", "BTC").value == Decimal("0.03333")  # default: shortest


def test_a_source_without_the_pair_falls_back_to_the_aggregate():
    found = book(MARKET).convert("BTC", "USDT", "binancep2p")
    assert (found.value, found.source) == (Decimal("90050"), "aggregate")


def test_p2p_is_used_only_when_asked_for():
    assert book(MARKET).convert("USDT", "RUB", "binancep2p").value == Decimal("81.525")
    default = book(MARKET).convert("USDT", "RUB")
    assert (default.value, default.source) == (Decimal("80.5"), "static+openerapi")


def test_fiat_crosses_come_from_the_references():
    found = book(MARKET).convert("EUR", "RUB")
    assert found.value == RATES.multiply(Decimal("1.08"), Decimal("80.5"))
    assert found.source == "ecb+openerapi"
    assert found.as_of == NOW - timedelta(hours=20)  # the oldest rate on the path


def test_fewest_hops_win_then_trust():
    rates = [*MARKET, rate("binance", "BTC/EUR", "85000"), rate("kucoin", "BTC/EUR", "85100")]
    assert book(rates).convert("EUR", "BTC").value == RATES.divide(1, Decimal("85050"))


def test_an_operator_static_rate_for_the_pair_is_used_as_is():
    static = [*PEGS, *static_rates({"BTC/USD": Decimal("65000")})]
    assert book(MARKET, static=static).convert("BTC", "USD").value == Decimal("65000")


def test_stale_rates_are_not_rates():
    rates = [rate("binance", "BTC/USDT", "90000", timedelta(minutes=11))]
    assert book(rates).convert("BTC", "USD") is None
    old_reference = [rate("ecb", "EUR/USD", "1.08", timedelta(days=6))]
    assert book(old_reference).convert("EUR", "USD") is None


def test_minimum_number_of_sources():
    only_one = [rate("binance", "BTC/USDT", "90000")]
    assert book(only_one, min_sources=2).convert("BTC", "USDT") is None
    assert book(MARKET, min_sources=2).convert("BTC", "USDT").value == Decimal("90050")
    # The named source still answers on its own.
    assert book(only_one, min_sources=2).convert("BTC", "USDT", "binance").value == 90000


def test_median_of_three_and_of_opposite_directions():
    rates = [
        rate("binance", "BTC/USDT", "90000"),
        rate("kucoin", "USDT/BTC", str(RATES.divide(1, Decimal("90300")))),
        rate("exmo", "BTC/USDT", "89000"),
    ]
    found = book(rates, aggregate=("binance", "kucoin", "exmo")).convert("BTC", "USDT")
    assert found.value == Decimal("90000")


def test_zero_or_negative_rates_are_ignored():
    rates = [rate("binance", "BTC/USDT", "0"), rate("kucoin", "BTC/USDT", "-1")]
    assert book(rates).convert("BTC", "USDT") is None


@pytest.mark.parametrize("pair", [("USD", "BTC"), ("XYZ", "USD"), ("RUB", "KES")])
def test_no_path_no_rate(pair):
    assert book([]).convert(*pair) is None


def test_same_currency_and_inverse():
    assert book([]).convert("usd", "USD").value == 1
    assert book(MARKET).convert("USD", "EUR").value == RATES.divide(1, Decimal("1.08"))


def test_paths_are_at_most_three_hops():
    chain = [rate("ecb", "A/B", "2"), rate("ecb", "B/C", "2"), rate("ecb", "C/D", "2")]
    assert book(chain).convert("A", "D").value == 8
    assert book([*chain, rate("ecb", "D/E", "2")]).convert("A", "E") is None


def test_bad_static_rate():
    with pytest.raises(ValueError, match="bad static rate"):
        static_rates({"BTCUSD": Decimal(1)})
    with pytest.raises(ValueError, match="bad static rate"):
        static_rates({"BTC/USD": Decimal(0)})
