"""The hosted-checkout catalogue and the Moneroo method endpoints: the data holds together,
eligibility follows the initialize rules, and the endpoints answer as the SDKs decode them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from paydesk.api.moneroo.methods import router
from paydesk.api.moneroo.responses import currency_object
from paydesk.checkout.methods import (
    MethodCatalogue,
    MethodCatalogueError,
    build_method_catalogue,
    format_amount,
    load_method_catalogue,
)

ZERO_DECIMALS = {"XOF", "XAF", "UGX", "RWF", "GNF"}
CURRENCIES = ZERO_DECIMALS | {"NGN", "GHS", "KES", "TZS", "ZMW", "MWK", "CDF", "ZAR", "USD", "EUR"}
ENDPOINTS = [
    "/utils/payment/methods",
    "/utils/payout/methods",
    "/v1/utils/payment/methods",
    "/v1/utils/payout/methods",
]


@pytest.fixture(scope="module")
def catalogue() -> MethodCatalogue:
    return load_method_catalogue()


def codes(methods: list[Any]) -> list[str]:
    return [m.short_code for m in methods]


# --------------------------------------------------------------------------- the data
def test_catalogue_loads_once_with_every_currency(catalogue: MethodCatalogue) -> None:
    assert load_method_catalogue() is catalogue
    assert {c.code for c in catalogue.currencies} == CURRENCIES
    for currency in catalogue.currencies:
        expected = 0 if currency.code in ZERO_DECIMALS else 2
        assert currency.decimals == currency.decimal_digits == expected
    xof = catalogue.currency("xof")
    assert xof is not None
    assert (xof.name, xof.symbol, xof.symbol_first, xof.name_plural) == (
        "CFA Franc BCEAO", "XOF", False, "CFA francs BCEAO",
    )  # fmt: skip


def test_every_method_names_known_currencies_and_countries(catalogue: MethodCatalogue) -> None:
    for method in (*catalogue.payment_methods, *catalogue.payout_methods):
        assert catalogue.currency(method.currency) is not None, method.short_code
        for country in method.countries:
            assert catalogue.country(country) is not None, (method.short_code, country)
    payment = set(codes(catalogue.payment_methods))
    assert len(payment) == 67  # the 66 of the documented table, and celtiis_bj
    assert {"celtiis_bj", "moneroo_payment_demo", "card_usd", "crypto_eur"} <= payment
    payout = set(codes(catalogue.payout_methods))
    assert len(payout) == 41
    assert {"moneroo_payout_demo", "djamo_ci", "djamo_sn"} <= payout


def test_mobile_money_asks_for_the_phone_number(catalogue: MethodCatalogue) -> None:
    mtn = catalogue.payment_method("mtn_bj")
    assert mtn is not None and mtn.kind == "mobile_money"
    assert [(f.name, f.type, f.label) for f in mtn.fields] == [("msisdn", "tel", "Phone number")]
    card = catalogue.payment_method("card_xof")
    assert card is not None and card.kind == "card" and card.fields == ()
    crypto = catalogue.payment_method("crypto_usd")
    assert crypto is not None and crypto.kind == "crypto" and crypto.fields == ()
    demo = catalogue.payment_method("moneroo_payment_demo")
    assert demo is not None and demo.sandbox_only and demo.kind == "test"
    assert (demo.currency, demo.countries) == ("USD", ("US",))
    assert [f.name for f in demo.fields] == ["msisdn"]
    payout_demo = catalogue.payout_method("moneroo_payout_demo")
    assert payout_demo is not None and payout_demo.sandbox_only
    assert [f.name for f in payout_demo.fields] == ["account_number"]
    for method in catalogue.payout_methods:
        assert method.fields, method.short_code  # every payout needs a recipient


def test_aliases_resolve_to_the_canonical_method(catalogue: MethodCatalogue) -> None:
    canonical = catalogue.payment_method("bank_transfer_ng")
    assert canonical is not None
    assert catalogue.payment_method("bank_transfer_ngn") is canonical
    assert catalogue.payment_method(" MTN_BJ ") is catalogue.payment_method("mtn_bj")
    assert catalogue.payment_method("pawapay") is None
    assert catalogue.payout_method("moneroo_payment_demo") is None
    assert catalogue.payment_method("djamo_ci") is None  # a payout method only


def test_inconsistent_data_is_refused() -> None:
    currency = {
        "name": "US Dollar", "name_plural": "US dollars", "symbol": "$", "symbol_native": "$",
        "symbol_first": True, "decimals": 2, "decimal_digits": 2, "decimal_mark": ".",
        "thousands_separator": ",", "subunit": "Cent", "subunit_to_unit": 100, "rounding": 0,
    }  # fmt: skip
    country = {"name": "United States", "alpha_3_code": "USA", "dial_code": "+1",
               "currency": "USD", "currency_symbol": "$"}  # fmt: skip
    method = {"short_code": "x", "name": "X", "currency": "USD", "countries": ["US"],
              "kind": "card"}  # fmt: skip
    base = {"currencies": {"USD": currency}, "countries": {"US": country}}
    build_method_catalogue({**base, "payment_methods": [method]})
    bad = [
        [{**method, "currency": "EUR"}],
        [{**method, "countries": ["FR"]}],
        [{**method, "kind": "cash"}],
        [method, {**method, "short_code": "y", "aliases": ["x"]}],
    ]
    for methods in bad:
        with pytest.raises(MethodCatalogueError):
            build_method_catalogue({**base, "payment_methods": methods})
    twin = {**country, "name": "Canada", "alpha_3_code": "CAN"}
    with pytest.raises(MethodCatalogueError, match="dial code"):
        build_method_catalogue({**base, "countries": {"US": country, "CA": twin}})


# --------------------------------------------------------------------------- eligibility
def test_eligible_methods_share_the_payment_currency(catalogue: MethodCatalogue) -> None:
    xof = catalogue.eligible("xof", environment="live")
    assert xof and all(m.currency == "XOF" for m in xof)
    assert {"mtn_bj", "wave_sn", "card_xof", "crypto_xof", "celtiis_bj"} <= set(codes(xof))
    assert catalogue.eligible("JPY", environment="live") == []


def test_codes_narrow_the_methods(catalogue: MethodCatalogue) -> None:
    chosen = catalogue.eligible("XOF", environment="live", codes=["moov_bj", "mtn_bj"])
    assert codes(chosen) == ["moov_bj", "mtn_bj"]  # catalogue order, not request order
    assert codes(catalogue.eligible("XOF", environment="live", codes=["mpesa_ke"])) == []
    alias = catalogue.eligible("NGN", environment="live", codes=["bank_transfer_ngn"])
    assert codes(alias) == ["bank_transfer_ng"]
    every = catalogue.eligible("XOF", environment="live")
    assert catalogue.eligible("XOF", environment="live", codes=[]) == every


def test_country_narrows_the_methods(catalogue: MethodCatalogue) -> None:
    benin = catalogue.eligible("XOF", environment="live", country="bj")
    assert set(codes(benin)) == {"card_xof", "celtiis_bj", "crypto_xof", "moov_bj", "mtn_bj"}
    world = catalogue.eligible("USD", environment="live", country="BJ")
    assert codes(world) == ["card_usd"]  # no country list: any country
    both = catalogue.eligible("XOF", environment="live", codes=["mtn_bj", "mtn_ci"], country="CI")
    assert codes(both) == ["mtn_ci"]


def test_the_test_method_is_sandbox_only(catalogue: MethodCatalogue) -> None:
    live = codes(catalogue.eligible("USD", environment="live"))
    assert "moneroo_payment_demo" not in live
    assert (
        codes(catalogue.eligible("USD", environment="live", codes=["moneroo_payment_demo"])) == []
    )
    sandbox = codes(catalogue.eligible("USD", environment="sandbox"))
    assert "moneroo_payment_demo" in sandbox
    assert set(live) < set(sandbox)
    us = codes(catalogue.eligible("USD", environment="sandbox", country="US"))
    assert "moneroo_payment_demo" in us
    assert "moneroo_payment_demo" not in codes(catalogue.eligible("XOF", environment="sandbox"))
    only = catalogue.eligible("USD", environment="sandbox", codes=["card_usd"])
    assert codes(only) == ["card_usd"]
    assert codes(catalogue.eligible("USD", environment="sandbox", country="BJ")) == ["card_usd"]


# --------------------------------------------------------------------------- countries
@pytest.mark.parametrize(
    ("dial_code", "country"),
    [("229", "BJ"), ("+229", "BJ"), (" +225 ", "CI"), ("00221", "SN"), (1, "US"), ("27", "ZA")],
)
def test_dial_codes_name_their_country(
    catalogue: MethodCatalogue, dial_code: str | int, country: str
) -> None:
    assert catalogue.country_of_dial_code(dial_code) == country


@pytest.mark.parametrize("dial_code", ["", "+", "999", "22 9x", "BJ"])
def test_unknown_dial_codes(catalogue: MethodCatalogue, dial_code: str) -> None:
    assert catalogue.country_of_dial_code(dial_code) is None


def test_countries_carry_their_calling_code(catalogue: MethodCatalogue) -> None:
    benin = catalogue.country("BJ")
    assert benin is not None
    assert (benin.name, benin.alpha_3_code, benin.dial_code, benin.currency) == (
        "Benin", "BEN", "+229", "XOF",
    )  # fmt: skip


# --------------------------------------------------------------------------- amounts
@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal(200), "XOF", "XOF 200"),
        (Decimal(500), "USD", "$ 500.00"),
        (Decimal("15000.00"), "XOF", "XOF 15000"),
        (Decimal("12.5"), "EUR", "€ 12.50"),
        (Decimal("1234567.891"), "EUR", "€ 1234567.89"),
        (Decimal("0.005"), "USD", "$ 0.01"),
        (100, "ngn", "₦ 100.00"),
    ],
)
def test_format_amount(amount: Decimal | int, currency: str, expected: str) -> None:
    assert format_amount(amount, currency) == expected


def test_format_amount_takes_a_currency_and_refuses_floats(catalogue: MethodCatalogue) -> None:
    usd = catalogue.currency("USD")
    assert usd is not None
    assert format_amount(Decimal("9.99"), usd) == "$ 9.99"
    with pytest.raises(TypeError):
        format_amount(9.99, usd)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JPY"):
        format_amount(Decimal(1), "JPY")


def test_currency_object_is_the_full_one(catalogue: MethodCatalogue) -> None:
    xof = catalogue.currency("XOF")
    assert xof is not None
    assert currency_object(xof) == {
        "name": "CFA Franc BCEAO", "symbol": "XOF", "symbol_first": False, "decimals": 0,
        "decimal_mark": ",", "thousands_separator": ".", "subunit": "Centime",
        "subunit_to_unit": 100, "symbol_native": "XOF", "decimal_digits": 0, "rounding": 0,
        "code": "XOF", "name_plural": "CFA francs BCEAO", "icon_url": None,
    }  # fmt: skip


# --------------------------------------------------------------------------- endpoints
@pytest.fixture
async def client() -> Any:
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://paydesk.test") as client:
        yield client


METHOD_KEYS = {
    "name", "short_code", "description", "gateways", "icon_url", "is_enabled", "fields",
    "currency", "countries",
}  # fmt: skip
GATEWAY_KEYS = {"id", "account_name", "name", "short_code", "icon_url"}
COUNTRY_KEYS = {"name", "code", "alpha_3_code", "dial_code", "currency", "currency_symbol", "flag"}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer junk|not-a-key"}])
async def test_endpoints_answer_without_auth(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    response = await client.get(path, headers={"Accept": "application/json", **headers})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is True and body["errors"] is None
    assert "successfully" in body["message"]
    assert isinstance(body["data"], list) and body["data"]
    for method in body["data"]:
        assert set(method) == METHOD_KEYS
        assert isinstance(method["name"], str) and isinstance(method["short_code"], str)
        assert method["description"] is None or isinstance(method["description"], str)
        assert method["icon_url"] is None and method["is_enabled"] is True
        assert [set(g) for g in method["gateways"]] == [GATEWAY_KEYS]
        for field in method["fields"]:
            assert set(field) == {"label", "type", "name", "length"}
        assert set(method["currency"]) == {"name", "symbol", "code", "icon_url"}
        for country in method["countries"]:
            assert set(country) == COUNTRY_KEYS and country["flag"] is None


async def test_payment_methods_list_the_test_method(client: httpx.AsyncClient) -> None:
    body = (await client.get("/utils/payment/methods")).json()
    assert (await client.get("/v1/utils/payment/methods")).json() == body
    methods = {m["short_code"]: m for m in body["data"]}
    assert "bank_transfer_ngn" not in methods  # an alias, not a second method
    demo = methods["moneroo_payment_demo"]
    assert demo["name"] == "Test Payment Method"
    assert demo["currency"] == {"name": "US Dollar", "symbol": "$", "code": "USD", "icon_url": None}
    assert demo["gateways"][0]["name"] == "Test Payment Gateway (Sandbox)"
    assert demo["gateways"][0]["short_code"] == "moneroo_payment_test"
    assert [f["name"] for f in demo["fields"]] == ["msisdn"]
    mtn = methods["mtn_bj"]
    assert mtn["countries"] == [
        {"name": "Benin", "code": "BJ", "alpha_3_code": "BEN", "dial_code": "+229",
         "currency": "XOF", "currency_symbol": "CFA", "flag": None}
    ]  # fmt: skip
    assert mtn["fields"] == [
        {"label": "Phone number", "type": "tel", "name": "msisdn", "length": 13}
    ]
    assert mtn["gateways"][0]["short_code"] == "paydesk"
    assert methods["card_usd"]["countries"] == []


async def test_payout_methods_list_the_test_method(client: httpx.AsyncClient) -> None:
    body = (await client.get("/utils/payout/methods")).json()
    assert "Payout" in body["message"]
    methods = {m["short_code"]: m for m in body["data"]}
    demo = methods["moneroo_payout_demo"]
    assert [f["name"] for f in demo["fields"]] == ["account_number"]
    assert demo["gateways"][0]["short_code"] == "moneroo_payout_test"
    assert demo["gateways"][0]["name"] == "Test Payout Gateway (Sandbox)"
    assert {"djamo_ci", "djamo_sn"} <= set(methods)
    assert "card_usd" not in methods


async def test_get_with_a_body_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.request("GET", "/utils/payment/methods", content=b"[]")
    assert response.status_code == 200
