"""Invoices priced from real provider formats (served on 127.0.0.1), the exchange-rate
list and per-coin discounts, through the Cryptomus API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from paydesk.chains.models import DepositAddress
from paydesk.db import utcnow
from paydesk.invoices.models import Invoice
from paydesk.merchants.service import create_merchant
from paydesk.money import RATES, round_up
from paydesk.rates.models import Rate, StoredRate
from paydesk.rates.providers import build_providers
from paydesk.rates.worker import refresh_once
from tests.conftest import CryptomusClient

#: End to end: every test refreshes real provider formats through ccxt and prices invoices.
pytestmark = pytest.mark.slow


@pytest.fixture
def settings_overrides(rate_server):
    return rate_server.settings()


async def refresh(context):
    providers = build_providers(context.settings, context.catalogue.all_codes)
    try:
        return await refresh_once(context, providers)
    finally:
        for provider in providers:
            await provider.close()


async def stored_invoice(context, order_id):
    async with context.db.sessionmaker() as session:
        return await session.scalar(select(Invoice).where(Invoice.order_id == order_id))


async def count(context, model, *where):
    async with context.db.sessionmaker() as session:
        query = select(func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int(await session.scalar(query))


def owed(amount: str, rate: Decimal, places: int = 8) -> str:
    """What the payer owes: amount × rate, rounded up to the coin's places on the network,
    printed with 8 decimals."""
    return f"{round_up(Decimal(amount) * rate, places):.8f}"


def inverse(value: str) -> Decimal:
    return RATES.divide(1, Decimal(value))


#: USDT on devnet carries 6 decimals, as on most chains.
USDT_PLACES = 6
BTC = {"amount": "15", "currency": "USD", "to_currency": "BTC", "network": "devnet"}


async def test_refresh_stores_every_provider(context, rate_server):
    outcomes = {o.provider: (o.pairs, o.error) for o in await refresh(context)}
    assert all(error is None for _, error in outcomes.values()), outcomes
    assert outcomes["binance"][0] == 6 and outcomes["binancep2p"][0] == 1
    assert await count(context, StoredRate) == sum(pairs for pairs, _ in outcomes.values())


async def test_usd_invoice_in_usdt_uses_the_peg(api, context, rate_server):
    await refresh(context)
    result = await api.result(
        "/v1/payment",
        {"amount": "25", "currency": "USD", "order_id": "u", "to_currency": "USDT",
         "network": "devnet"},
    )  # fmt: skip
    assert (result["payer_currency"], result["payer_amount"]) == ("USDT", "25.00000000")
    invoice = await stored_invoice(context, "u")
    assert (invoice.payer_amount_exchange_rate, invoice.rate_source) == (1, "static")


@pytest.mark.parametrize(
    ("course_source", "usd_price", "source"),
    [
        (None, "90050", "static+aggregate"),  # median of Binance 90000 and KuCoin 90100
        ("Kucoin", "90100", "static+kucoin"),
        ("Binance", "90000", "static+binance"),
        ("Exmo", "90050", "static+aggregate"),  # Exmo is closed: the working markets' median
    ],
)
async def test_course_source_picks_the_market(api, context, course_source, usd_price, source):
    await refresh(context)
    body = {**BTC, "order_id": "b"}
    if course_source:
        body["course_source"] = course_source
    result = await api.result("/v1/payment", body)
    rate = inverse(usd_price)
    assert result["payer_amount"] == owed("15", rate)
    invoice = await stored_invoice(context, "b")
    assert invoice.payer_amount_exchange_rate == rate
    assert invoice.rate_source == source
    assert invoice.course_source == course_source


async def test_eur_invoice_uses_the_direct_market(api, context):
    await refresh(context)
    result = await api.result(
        "/v1/payment", {**BTC, "currency": "EUR", "order_id": "e", "course_source": "Kucoin"}
    )
    assert result["payer_amount"] == owed("15", inverse("85100"))


async def test_crypto_to_crypto(api, context):
    await refresh(context)
    body = {"amount": "2", "currency": "ETH", "to_currency": "BTC", "network": "devnet"}
    direct = await api.result("/v1/payment", {**body, "order_id": "eb", "course_source": "Binance"})
    assert direct["payer_amount"] == owed("2", Decimal("0.03333"))  # Binance ETH/BTC
    assert (await stored_invoice(context, "eb")).rate_source == "binance"
    # KuCoin has no ETH/BTC market: ETH → USDT → BTC on KuCoin's own prices.
    crossed = await api.result("/v1/payment", {**body, "order_id": "ek", "course_source": "Kucoin"})
    assert crossed["payer_amount"] == owed("2", RATES.divide(Decimal("3010"), Decimal("90100")))
    assert (await stored_invoice(context, "ek")).rate_source == "kucoin"


async def test_p2p_prices_rub_in_usdt(api, context):
    await refresh(context)
    body = {"amount": "1000", "currency": "RUB", "to_currency": "USDT", "network": "devnet"}
    p2p = await api.result("/v1/payment", {**body, "order_id": "p", "course_source": "BinanceP2P"})
    assert p2p["payer_amount"] == owed("1000", inverse("81.525"), USDT_PLACES)
    default = await api.result("/v1/payment", {**body, "order_id": "d"})
    assert default["payer_amount"] == owed("1000", inverse("80.5"), USDT_PLACES)  # open.er-api


async def test_african_fiat_converts_through_the_reference(api, context):
    await refresh(context)
    body = {"amount": "10000", "currency": "XOF", "to_currency": "USDT", "network": "devnet"}
    result = await api.result("/v1/payment", {**body, "order_id": "x"})
    assert result["payer_amount"] == owed("10000", inverse("607.37"), USDT_PLACES)


async def test_all_providers_down_refuses_and_writes_nothing(api, context, rate_server):
    for name in ("binance", "kucoin", "binancep2p", "ecb", "openerapi"):
        rate_server.faults[name] = "down"
    assert all(o.error for o in await refresh(context))
    response = await api.post("/v1/payment", {**BTC, "order_id": "n"})
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": "Error convert to_currency"}
    assert await count(context, Invoice) == 0
    assert await count(context, DepositAddress, DepositAddress.assigned_at.is_not(None)) == 0


async def test_a_failing_provider_keeps_its_last_rates_until_they_are_stale(
    api, context, rate_server
):
    await refresh(context)
    rate_server.faults["binance"] = "slow"
    rate_server.faults["kucoin"] = "malformed"
    outcomes = {o.provider: o.error for o in await refresh(context)}
    assert outcomes["binance"] and outcomes["kucoin"]
    # The rates stored a moment ago are still fresh.
    result = await api.result("/v1/payment", {**BTC, "order_id": "f"})
    assert result["payer_amount"] == owed("15", inverse("90050"))
    async with context.db.transaction() as session:
        await session.execute(update(StoredRate).values(as_of=utcnow() - timedelta(minutes=11)))
    response = await api.post("/v1/payment", {**BTC, "order_id": "g"})
    assert response.json() == {"state": 1, "message": "Error convert to_currency"}


async def test_the_rate_is_locked_and_renewed_by_is_refresh(api, context):
    await refresh(context)
    body = {**BTC, "order_id": "lock", "lifetime": 300}
    first = await api.result("/v1/payment", body)
    now = utcnow()
    await context.rates.store(
        [Rate("BTC", "USDT", Decimal("100000"), source, now) for source in ("binance", "kucoin")]
    )
    info = await api.result("/v1/payment/info", {"uuid": first["uuid"]})
    assert info["payer_amount"] == first["payer_amount"]  # locked while it lives
    async with context.db.transaction() as session:
        await session.execute(
            update(Invoice).where(Invoice.order_id == "lock")
            .values(expired_at=now - timedelta(seconds=1))
        )  # fmt: skip
    renewed = await api.result("/v1/payment", {**body, "is_refresh": True})
    assert renewed["uuid"] == first["uuid"]
    assert renewed["payer_amount"] == owed("15", inverse("100000"))
    assert (await stored_invoice(context, "lock")).payer_amount_exchange_rate == inverse("100000")


# ------------------------------------------------------------------ exchange-rate list
async def test_exchange_rate_list_for_a_crypto(http, context):
    await refresh(context)
    response = await http.get("/v1/exchange-rate/BTC/list")  # no merchant, no sign
    assert response.status_code == 200
    payload = response.json()
    assert payload["state"] == 0
    courses = {item["to"]: item["course"] for item in payload["result"]}
    assert all(item["from"] == "BTC" for item in payload["result"])
    assert courses["USD"] == "90050.00000000"
    assert courses["USDT"] == "90050.00000000"
    assert courses["EUR"] == "85050.00000000"  # the markets' BTC/EUR median
    assert courses["ETH"] == "30.00300030"  # 1 / Binance ETH/BTC 0.03333, the direct pair
    assert "BTC" not in courses


async def test_exchange_rate_list_for_a_fiat(http, context):
    await refresh(context)
    payload = (await http.get("/v1/exchange-rate/eur/list")).json()
    courses = {item["to"]: item["course"] for item in payload["result"]}
    assert courses["USD"] == "1.08000000"
    assert courses["JPY"] == "162.50000000"
    assert courses["RUB"] == "86.94000000"  # ECB EUR/USD × open.er-api USD/RUB


async def test_exchange_rate_list_of_an_unknown_currency(http):
    response = await http.get("/v1/exchange-rate/XYZ/list")
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": "The currency was not found"}


async def test_exchange_rate_list_without_sources_lists_only_the_pegs(http):
    payload = (await http.get("/v1/exchange-rate/USDT/list")).json()
    assert payload == {
        "state": 0,
        "result": [
            {"from": "USDT", "to": "USD", "course": "1.00000000"},
            {"from": "USDT", "to": "USDC", "course": "1.00000000"},
        ],
    }


# ------------------------------------------------------------------ discounts
async def test_discount_list_covers_every_service(api, context):
    result = await api.result("/v1/payment/discount/list")
    assert {(d["currency"], d["network"]) for d in result} == {
        (s.currency, s.network) for s in context.catalogue.services
    }
    assert all(d["discount"] == 0 and isinstance(d["discount"], int) for d in result)


async def test_discount_set_and_applied(api, context):
    answer = await api.result(
        "/v1/payment/discount/set",
        {"currency": "usdt", "network": "DEVNET", "discount_percent": 5},
    )
    assert answer == {"currency": "USDT", "network": "devnet", "discount": "5"}
    listed = await api.result("/v1/payment/discount/list")
    assert {"currency": "USDT", "network": "devnet", "discount": 5} in listed

    body = {"amount": "100", "currency": "USDT", "network": "devnet"}
    standing = await api.result("/v1/payment", {**body, "order_id": "s"})
    assert (standing["discount_percent"], standing["discount"]) == (5, "5.00000000")
    assert standing["payer_amount"] == "95.00000000"
    own = await api.result("/v1/payment", {**body, "order_id": "o", "discount_percent": -10})
    assert (own["discount_percent"], own["payer_amount"]) == (-10, "110.00000000")
    other_coin = await api.result(
        "/v1/payment", {"amount": "100", "currency": "USDC", "network": "devnet", "order_id": "c"}
    )
    assert (other_coin["discount_percent"], other_coin["payer_amount"]) == (None, "100.00000000")

    surcharge = {"currency": "USDT", "network": "devnet", "discount_percent": -3}
    await api.result("/v1/payment/discount/set", surcharge)
    again = await api.result("/v1/payment", {**body, "order_id": "s2"})
    assert (again["discount_percent"], again["payer_amount"]) == (-3, "103.00000000")


async def test_discounts_are_per_merchant(api, context, http):
    await api.result(
        "/v1/payment/discount/set", {"currency": "USDT", "network": "devnet", "discount_percent": 7}
    )
    async with context.db.transaction() as session:
        issued = await create_merchant(session, context.vault, name="Other", email="o@x.test")
    other = CryptomusClient(http, issued)
    listed = await other.result("/v1/payment/discount/list")
    assert {"currency": "USDT", "network": "devnet", "discount": 0} in listed


async def test_discount_set_of_an_unknown_service(api):
    response = await api.post(
        "/v1/payment/discount/set", {"currency": "BUSD", "network": "bsc", "discount_percent": -10}
    )
    assert response.status_code == 422
    assert response.json() == {"state": 1, "message": "The service BUSD bsc was not found"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"currency": ["validation.required"], "network": ["validation.required"],
              "discount_percent": ["validation.required"]}),
        ({"currency": "USDT", "network": "devnet", "discount_percent": 101},
         {"discount_percent": ["validation.max.numeric"]}),
        ({"currency": "USDT", "network": "devnet", "discount_percent": -100},
         {"discount_percent": ["validation.min.numeric"]}),
        ({"currency": "USDT", "network": "devnet", "discount_percent": "5.5"},
         {"discount_percent": ["validation.integer"]}),
    ],
)  # fmt: skip
async def test_discount_set_validation(api, context, body, errors):
    response = await api.post("/v1/payment/discount/set", body)
    assert response.status_code == 422
    assert response.json() == {"state": 1, "errors": errors}


async def test_discount_bounds_are_accepted(api):
    for percent in (-99, 100, "0"):
        await api.result(
            "/v1/payment/discount/set",
            {"currency": "USDT", "network": "devnet", "discount_percent": percent},
        )


async def test_discount_set_needs_the_payment_key(api):
    response = await api.post(
        "/v1/payment/discount/set",
        {"currency": "USDT", "network": "devnet", "discount_percent": 1},
        key=api.merchant.payout_key,
    )
    assert response.status_code == 401
