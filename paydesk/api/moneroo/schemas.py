"""Reading a Moneroo `initialize` body: what real clients send (amounts as numbers or
numeric strings, phones as integers, explicit nulls, unknown fields), every rule of the
spec, and every problem reported at once with Laravel-style messages."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from paydesk.api.moneroo.envelope import ValidationFailed, field_error
from paydesk.checkout.methods import Currency, Method, MethodCatalogue
from paydesk.checkout.service import CustomerDraft, PaymentDraft
from paydesk.money import parse_decimal
from paydesk.payouts.service import ProcessorPayoutDraft

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ALPHA2 = re.compile(r"^[A-Za-z]{2}$")
_DIAL = re.compile(r"^\+?\d{1,4}$")
MAX_DESCRIPTION = 155
MAX_METADATA_KEYS = 10
#: Customer fields and their longest accepted length (the former SDK rules).
_CUSTOMER_TEXT = {"first_name": 100, "last_name": 100, "address": 200, "city": 100,
                  "state": 100, "zip": 100}  # fmt: skip


def words(field: str) -> str:
    """A field as Laravel names it in messages: `return_url` → "return url"."""
    return field.replace("_", " ")


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append(field_error(field, message))

    def required(self, field: str) -> None:
        self.add(field, f"The {words(field)} field is required.")


def _text(value: Any) -> str | None:
    """Strings trimmed, empty ones and nulls absent, numbers as their digits."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def digits(value: Any) -> str | None:
    """A phone number as digits (with its country prefix); junk (a WooCommerce cast of an
    empty field to 0) is absent."""
    text = _text(value)
    if text is None:
        return None
    only = re.sub(r"\D", "", text)
    return only if len(only) >= 6 else None


def is_web_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def parse_initialize(data: Any, catalogue: MethodCatalogue) -> PaymentDraft:
    if not isinstance(data, dict):
        raise ValidationFailed([field_error("body", "The request body must be a JSON object.")])
    errors = _Errors()

    currency = _text(data.get("currency"))
    currency_info = None
    if currency is None:
        errors.required("currency")
    else:
        currency = currency.upper()
        currency_info = catalogue.currency(currency)
        if currency_info is None:
            errors.add("currency", "The selected currency is not supported.")

    amount = _amount(data.get("amount"), currency_info, errors)
    description = _description(data.get("description"), errors)

    return_url = _text(data.get("return_url"))
    if return_url is None:
        errors.required("return_url")
    elif not is_web_url(return_url) or len(return_url) > 2000:
        errors.add("return_url", "The return url field must be a valid URL.")

    customer = _customer(data.get("customer"), errors)
    metadata = _metadata(data.get("metadata"), errors)
    methods = _methods(data.get("methods"), catalogue, errors)

    restrict_country = _text(data.get("restrict_country_code"))
    if restrict_country is not None:
        if not _ALPHA2.match(restrict_country):
            errors.add(
                "restrict_country_code",
                "The restrict country code field must be a 2-letter country code.",
            )
        restrict_country = restrict_country.upper()
    restricted = data.get("restricted_phone")
    phone = phone_country = None
    if restricted is not None:
        if restrict_country is not None:
            errors.add("restricted_phone", "The restricted phone field prohibits restrict "
                       "country code from being present.")  # fmt: skip
        if not isinstance(restricted, dict):
            errors.add("restricted_phone", "The restricted phone field must be an object.")
        else:
            phone = digits(restricted.get("number"))
            if phone is None:
                errors.required("restricted_phone.number")
            phone_country = _phone_country(restricted.get("country_code"), catalogue, errors)

    if errors.items:
        raise ValidationFailed(errors.items)
    assert amount is not None and currency is not None and return_url is not None
    assert customer is not None
    return PaymentDraft(
        amount=amount,
        currency=currency,
        description=description,
        return_url=return_url,
        customer=customer,
        metadata=metadata,
        methods=methods,
        restrict_country_code=restrict_country,
        restricted_phone=phone,
        restricted_phone_country=phone_country,
    )


def _amount(value: Any, currency: Currency | None, errors: _Errors) -> Decimal | None:
    """A positive amount, no finer than the currency's digits."""
    if value is None or value == "":
        errors.required("amount")
        return None
    amount = parse_decimal(value)
    if amount is None:
        errors.add("amount", "The amount field must be a number.")
    elif amount <= 0:
        errors.add("amount", "The amount field must be greater than 0.")
        return None
    elif currency is not None:
        places = currency.decimal_digits
        if amount != amount.quantize(Decimal(1).scaleb(-places)):
            errors.add("amount", f"The amount field must have at most {places} decimal "
                       f"places for {currency.code}.")  # fmt: skip
    return amount


def _description(value: Any, errors: _Errors) -> str:
    """Optional text ("" when absent), at most MAX_DESCRIPTION characters."""
    if value is not None and not isinstance(value, str):
        errors.add("description", "The description field must be a string.")
        value = None
    description = (value or "").strip()
    if len(description) > MAX_DESCRIPTION:
        errors.add("description", f"The description field must not be greater than "
                   f"{MAX_DESCRIPTION} characters.")  # fmt: skip
    return description


def _customer(value: Any, errors: _Errors) -> CustomerDraft | None:
    if value is None:
        errors.required("customer")
        return None
    if not isinstance(value, dict):
        errors.add("customer", "The customer field must be an object.")
        return None
    fields: dict[str, str | None] = {}
    for name, longest in _CUSTOMER_TEXT.items():
        text = _text(value.get(name))
        if text is not None and len(text) > longest:
            errors.add(f"customer.{name}", f"The customer.{name} field must not be greater "
                       f"than {longest} characters.")  # fmt: skip
        fields[name] = text
    for name in ("first_name", "last_name"):
        if fields[name] is None:
            errors.required(f"customer.{name}")
    email = _text(value.get("email"))
    if email is None:
        errors.required("customer.email")
    elif not _EMAIL.match(email) or len(email) > 254:
        errors.add("customer.email", "The customer.email field must be a valid email address.")
    country = _text(value.get("country"))
    if country is not None and not _ALPHA2.match(country):
        errors.add(
            "customer.country", "The customer.country field must be a 2-letter country code."
        )
        country = None
    if email is None or fields["first_name"] is None or fields["last_name"] is None:
        return None
    return CustomerDraft(
        email=email.lower(),
        first_name=fields["first_name"],
        last_name=fields["last_name"],
        phone=digits(value.get("phone")),
        address=fields["address"],
        city=fields["city"],
        state=fields["state"],
        country_code=country.upper() if country else None,
        zip_code=fields["zip"],
    )


def _metadata(value: Any, errors: _Errors) -> dict[str, str]:
    """Key → string pairs; numbers and booleans become their text, nested values are
    refused."""
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        errors.add("metadata", "The metadata field must be an object of strings.")
        return {}
    if len(value) > MAX_METADATA_KEYS:
        errors.add("metadata", f"The metadata field must not have more than "
                   f"{MAX_METADATA_KEYS} items.")  # fmt: skip
    pairs: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            pairs[str(key)] = "true" if item else "false"
        elif isinstance(item, str | int | Decimal):
            pairs[str(key)] = str(item)
        elif item is None:
            continue
        else:
            errors.add(f"metadata.{key}", f"The metadata.{key} field must be a string.")
    return pairs


def _methods(value: Any, catalogue: MethodCatalogue, errors: _Errors) -> list[str] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        errors.add("methods", "The methods field must be an array.")
        return None
    codes = []
    for index, item in enumerate(value):
        method = catalogue.payment_method(item) if isinstance(item, str) else None
        if method is None:
            errors.add(f"methods.{index}", f"The selected methods.{index} is invalid.")
        else:
            codes.append(method.short_code)
    return codes


def _phone_country(value: Any, catalogue: MethodCatalogue, errors: _Errors) -> str | None:
    """An alpha-2 code, or a dial code (229, +229) turned into one."""
    text = _text(value)
    if text is None:
        errors.required("restricted_phone.country_code")
        return None
    if _ALPHA2.match(text):
        return text.upper()
    if _DIAL.match(text):
        found = catalogue.country_of_dial_code(text)
        if found is not None:
            return found
    errors.add(
        "restricted_phone.country_code",
        "The restricted phone.country code field must be a valid country code.",
    )
    return None


# ---------------------------------------------------------------------- payouts
def parse_payout(
    data: Any, catalogue: MethodCatalogue, environment: str
) -> tuple[ProcessorPayoutDraft, CustomerDraft]:
    """A payout `initialize` body: the payment rules for amount, description, customer
    and metadata, a known payout method usable in this mode, its currency, and the
    method's recipient fields (inside `recipient`, or top level when `recipient` is absent,
    as the official SDKs' tests send `account_number`)."""
    if not isinstance(data, dict):
        raise ValidationFailed([field_error("body", "The request body must be a JSON object.")])
    errors = _Errors()

    method = None
    code = _text(data.get("method"))
    if code is None:
        errors.required("method")
    elif not isinstance(data.get("method"), str) or catalogue.payout_method(code) is None:
        errors.add("method", "The selected method is invalid.")
    else:
        method = catalogue.payout_method(code)
        assert method is not None
        if method.sandbox_only and environment != "sandbox":
            errors.add("method", "The selected method is only available in sandbox mode.")
            method = None

    currency = _text(data.get("currency"))
    currency_info = None
    if currency is None:
        errors.required("currency")
    else:
        currency = currency.upper()
        currency_info = catalogue.currency(currency)
        if currency_info is None:
            errors.add("currency", "The selected currency is not supported.")
        elif method is not None and method.currency != currency:
            errors.add("currency", f"The currency field must be {method.currency} for the "
                       f"{method.short_code} method.")  # fmt: skip

    amount = _amount(data.get("amount"), currency_info, errors)
    description = _description(data.get("description"), errors)
    customer = _customer(data.get("customer"), errors)
    metadata = _metadata(data.get("metadata"), errors)
    recipient = _recipient(data, method, errors) if method is not None else {}

    if errors.items:
        raise ValidationFailed(errors.items)
    assert amount is not None and currency is not None and method is not None
    assert customer is not None
    draft = ProcessorPayoutDraft(
        amount=amount,
        currency=currency,
        method=method,
        recipient=recipient,
        description=description,
        metadata=metadata,
    )
    return draft, customer


def _recipient(data: dict[str, Any], method: Method, errors: _Errors) -> dict[str, str]:
    """The method's recipient fields as digits; each one required. Numbers arrive as
    strings or integers (the docs say integer, their own examples send strings)."""
    source = data.get("recipient")
    if source is None or source == []:
        source = data  # the top-level fallback
    elif not isinstance(source, dict):
        errors.add("recipient", "The recipient field must be an object.")
        return {}
    recipient: dict[str, str] = {}
    for field in method.fields:
        name = f"recipient.{field.name}"
        value = source.get(field.name)
        if isinstance(value, bool) or not isinstance(value, str | int):
            if value is None or value == "":
                errors.required(name)
            else:
                errors.add(name, f"The {words(name)} field must be a string or an integer.")
            continue
        text = str(value).strip()
        if not text:
            errors.required(name)
        elif not text.isascii() or not text.isdigit():
            errors.add(name, f"The {words(name)} field must contain only digits, with the country "
                       "prefix and without +.")  # fmt: skip
        else:
            recipient[field.name] = text
    return recipient
