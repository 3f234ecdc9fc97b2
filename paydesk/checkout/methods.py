"""The hosted-checkout catalogue: currencies, countries, payment and payout methods.

Data lives in `catalogue.toml` next to this module, so an operator reads (and reviews) facts
rather than code; this module validates it once and answers the questions a payment asks:
which methods may it offer, what is a country's dial code, how is an amount displayed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any, Final

#: What a method is, for the checkout page to choose its form.
KINDS: Final = frozenset({"mobile_money", "card", "crypto", "bank_transfer", "ussd", "qr", "test"})
#: The sandbox's test collection method: always offered in sandbox for USD (clients rely on it).
TEST_PAYMENT_METHOD: Final = "moneroo_payment_demo"
TEST_PAYOUT_METHOD: Final = "moneroo_payout_demo"
SANDBOX: Final = "sandbox"


class MethodCatalogueError(ValueError):
    """The catalogue data contradicts itself (an unknown currency, a duplicate code...)."""


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency as Moneroo's currency object describes it (amounts in major units)."""

    code: str
    name: str
    name_plural: str
    symbol: str
    symbol_native: str
    symbol_first: bool
    decimals: int
    decimal_digits: int
    decimal_mark: str
    thousands_separator: str
    subunit: str
    subunit_to_unit: int
    rounding: int


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    alpha_3_code: str
    dial_code: str
    #: The country's own currency; not necessarily one a method takes.
    currency: str
    currency_symbol: str


@dataclass(frozen=True, slots=True)
class MethodField:
    """An input a method needs from the payer (or, for payouts, about the recipient)."""

    name: str
    label: str
    type: str
    length: int | None = None


@dataclass(frozen=True, slots=True)
class Method:
    short_code: str
    name: str
    currency: str
    #: Alpha-2 codes; empty means any country (cards in USD).
    countries: tuple[str, ...]
    kind: str
    fields: tuple[MethodField, ...] = ()
    description: str | None = None
    sandbox_only: bool = False
    #: Other codes clients send for this method (a typo in Moneroo's own docs).
    aliases: tuple[str, ...] = ()

    def serves(self, country: str) -> bool:
        return not self.countries or country in self.countries


class MethodCatalogue:
    def __init__(
        self,
        currencies: dict[str, Currency],
        countries: dict[str, Country],
        payment_methods: list[Method],
        payout_methods: list[Method],
    ) -> None:
        self._currencies = currencies
        self._countries = countries
        self._payment = _index(payment_methods, "payment")
        self._payout = _index(payout_methods, "payout")
        self._payment_methods = tuple(payment_methods)
        self._payout_methods = tuple(payout_methods)
        self._by_dial_code: dict[str, str] = {}
        for country in countries.values():
            digits = country.dial_code.removeprefix("+")
            if digits in self._by_dial_code:
                raise MethodCatalogueError(f"dial code {country.dial_code} used twice")
            self._by_dial_code[digits] = country.code

    def currency(self, code: str) -> Currency | None:
        return self._currencies.get(code.strip().upper())

    def country(self, code: str) -> Country | None:
        return self._countries.get(code.strip().upper())

    def payment_method(self, code: str) -> Method | None:
        """A collection method by its code or one of its aliases."""
        return self._payment.get(code.strip().lower())

    def payout_method(self, code: str) -> Method | None:
        return self._payout.get(code.strip().lower())

    @property
    def currencies(self) -> tuple[Currency, ...]:
        return tuple(self._currencies.values())

    @property
    def countries(self) -> tuple[Country, ...]:
        return tuple(self._countries.values())

    @property
    def payment_methods(self) -> tuple[Method, ...]:
        return self._payment_methods

    @property
    def payout_methods(self) -> tuple[Method, ...]:
        return self._payout_methods

    def eligible(
        self,
        currency: str,
        *,
        environment: str,
        codes: Iterable[str] | None = None,
        country: str | None = None,
    ) -> list[Method]:
        """The payment methods a payment may offer, in catalogue order.

        The method's currency must be the payment's; `codes` (codes or aliases; unknown ones
        are ignored, rejecting them is the caller's validation) narrows to those methods, an
        empty list meaning no restriction as for Moneroo's `methods`; `country` keeps the
        methods of that country and those of any country. Sandbox-only methods (the test
        method) are offered in sandbox only, so in sandbox a USD payment always gets the test
        method unless `codes` or `country` leaves it out.
        """
        currency = currency.strip().upper()
        wanted: set[str] | None = None
        if codes:
            wanted = {m.short_code for m in map(self.payment_method, codes) if m is not None}
        region = country.strip().upper() if country else None
        sandbox = environment == SANDBOX
        return [
            method
            for method in self._payment_methods
            if method.currency == currency
            and (wanted is None or method.short_code in wanted)
            and (region is None or method.serves(region))
            and (sandbox or not method.sandbox_only)
        ]

    def country_of_dial_code(self, dial_code: str | int) -> str | None:
        """The alpha-2 code of a calling code, written `229`, `+229` or `00229`."""
        digits = str(dial_code).strip().replace(" ", "")
        if digits.startswith("+"):
            digits = digits[1:]
        elif digits.startswith("00"):
            digits = digits[2:]
        return self._by_dial_code.get(digits) if digits.isdigit() else None


def format_amount(amount: Decimal | int, currency: Currency | str) -> str:
    """Moneroo's `amount_formatted`: the symbol, a space, the amount with the currency's
    digits and `.` as decimal mark, no grouping ("XOF 200", "$ 500.00"). For display only.

    `currency` may be a code of the built-in catalogue. A float is refused: its binary
    value is not the amount the merchant sent."""
    if not isinstance(amount, Decimal | int) or isinstance(amount, bool):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    if isinstance(currency, str):
        found = load_method_catalogue().currency(currency)
        if found is None:
            raise ValueError(f"unknown currency {currency}")
        currency = found
    exponent = Decimal(1).scaleb(-currency.decimal_digits)
    return f"{currency.symbol} {Decimal(amount).quantize(exponent, ROUND_HALF_UP):f}"


@cache
def load_method_catalogue() -> MethodCatalogue:
    """The built-in catalogue, parsed and checked once per process."""
    text = resources.files("paydesk.checkout").joinpath("catalogue.toml").read_text("utf-8")
    return build_method_catalogue(tomllib.loads(text))


def build_method_catalogue(data: dict[str, Any]) -> MethodCatalogue:
    currencies = {
        code.upper(): Currency(
            code=code.upper(),
            name=entry["name"],
            name_plural=entry["name_plural"],
            symbol=entry["symbol"],
            symbol_native=entry["symbol_native"],
            symbol_first=bool(entry["symbol_first"]),
            decimals=int(entry["decimals"]),
            decimal_digits=int(entry["decimal_digits"]),
            decimal_mark=entry["decimal_mark"],
            thousands_separator=entry["thousands_separator"],
            subunit=entry["subunit"],
            subunit_to_unit=int(entry["subunit_to_unit"]),
            rounding=int(entry["rounding"]),
        )
        for code, entry in data.get("currencies", {}).items()
    }
    countries = {
        code.upper(): Country(
            code=code.upper(),
            name=entry["name"],
            alpha_3_code=entry["alpha_3_code"],
            dial_code=entry["dial_code"],
            currency=entry["currency"],
            currency_symbol=entry["currency_symbol"],
        )
        for code, entry in data.get("countries", {}).items()
    }
    for country in countries.values():
        if not (country.dial_code.startswith("+") and country.dial_code[1:].isdigit()):
            raise MethodCatalogueError(f"country {country.code}: bad dial code")

    def method(entry: dict[str, Any]) -> Method:
        built = Method(
            short_code=entry["short_code"].lower(),
            name=entry["name"],
            currency=entry["currency"].upper(),
            countries=tuple(c.upper() for c in entry.get("countries", ())),
            kind=entry["kind"],
            fields=tuple(
                MethodField(
                    name=f["name"], label=f["label"], type=f["type"], length=f.get("length")
                )
                for f in entry.get("fields", ())
            ),
            description=entry.get("description"),
            sandbox_only=bool(entry.get("sandbox_only", False)),
            aliases=tuple(alias.lower() for alias in entry.get("aliases", ())),
        )
        if built.kind not in KINDS:
            raise MethodCatalogueError(f"method {built.short_code}: unknown kind {built.kind}")
        if built.currency not in currencies:
            raise MethodCatalogueError(f"method {built.short_code}: unknown currency")
        unknown = [c for c in built.countries if c not in countries]
        if unknown:
            raise MethodCatalogueError(f"method {built.short_code}: unknown {', '.join(unknown)}")
        return built

    return MethodCatalogue(
        currencies,
        countries,
        [method(entry) for entry in data.get("payment_methods", [])],
        [method(entry) for entry in data.get("payout_methods", [])],
    )


def _index(methods: list[Method], direction: str) -> dict[str, Method]:
    """Codes and aliases to methods; a code used twice is a data error, not a silent win."""
    index: dict[str, Method] = {}
    for method in methods:
        for code in (method.short_code, *method.aliases):
            if code in index:
                raise MethodCatalogueError(f"{direction} method code {code} used twice")
            index[code] = method
    return index
