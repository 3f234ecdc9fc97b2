"""Catalogue objects as the Moneroo API shows them.

Shapes follow what the official SDKs decode (the Flutter models are strict about types), so
every key is always present and icons, which Paydesk does not host yet, are `null`.
"""

from __future__ import annotations

from typing import Any

from babel import Locale

from paydesk.api.numbers import json_number
from paydesk.checkout.methods import (
    Country,
    Currency,
    Method,
    MethodCatalogue,
    MethodField,
    format_amount,
)
from paydesk.checkout.models import CheckoutCustomer, timestamp
from paydesk.checkout.service import FoundPayment, checkout_url
from paydesk.merchants.moneroo_keys import MonerooCaller, app_id
from paydesk.payouts.models import Payout
from paydesk.payouts.service import processor_status

#: Country names as Moneroo shows them (English).
ENGLISH = Locale("en")

#: The processor behind every real method: Paydesk itself.
PAYDESK_GATEWAY: dict[str, Any] = {
    "id": "paydesk",
    "account_name": "Paydesk",
    "name": "Paydesk",
    "short_code": "paydesk",
    "icon_url": None,
}
#: The sandbox's test gateways; the payout one is named as in Moneroo's published sample,
#: the payment one by analogy (Moneroo does not publish it).
TEST_PAYMENT_GATEWAY: dict[str, Any] = {
    "id": "moneroo_payment_test",
    "account_name": "Moneroo Test Payment Gateway",
    "name": "Test Payment Gateway (Sandbox)",
    "short_code": "moneroo_payment_test",
    "icon_url": None,
}
TEST_PAYOUT_GATEWAY: dict[str, Any] = {
    "id": "moneroo_payout_test",
    "account_name": "Moneroo Test Payout Gateway",
    "name": "Test Payout Gateway (Sandbox)",
    "short_code": "moneroo_payout_test",
    "icon_url": None,
}


def currency_object(currency: Currency) -> dict[str, Any]:
    """The full currency object of payments and payouts (clients read `code`)."""
    return {
        "name": currency.name,
        "symbol": currency.symbol,
        "symbol_first": currency.symbol_first,
        "decimals": currency.decimals,
        "decimal_mark": currency.decimal_mark,
        "thousands_separator": currency.thousands_separator,
        "subunit": currency.subunit,
        "subunit_to_unit": currency.subunit_to_unit,
        "symbol_native": currency.symbol_native,
        "decimal_digits": currency.decimal_digits,
        "rounding": currency.rounding,
        "code": currency.code,
        "name_plural": currency.name_plural,
        "icon_url": None,
    }


def currency_summary(currency: Currency) -> dict[str, Any]:
    """The short currency object of the method catalogue."""
    return {
        "name": currency.name,
        "symbol": currency.symbol,
        "code": currency.code,
        "icon_url": None,
    }


def country_object(country: Country) -> dict[str, Any]:
    return {
        "name": country.name,
        "code": country.code,
        "alpha_3_code": country.alpha_3_code,
        "dial_code": country.dial_code,
        "currency": country.currency,
        "currency_symbol": country.currency_symbol,
        "flag": None,
    }


def field_object(field: MethodField) -> dict[str, Any]:
    return {"label": field.label, "type": field.type, "name": field.name, "length": field.length}


def gateway_object(method: Method, *, payout: bool = False) -> dict[str, Any]:
    """The processor of a method: the sandbox's test gateway for the test methods."""
    if method.kind == "test":
        return dict(TEST_PAYOUT_GATEWAY if payout else TEST_PAYMENT_GATEWAY)
    return dict(PAYDESK_GATEWAY)


def method_summary(method: Method) -> dict[str, Any]:
    """The short method object of a capture or a disbursement (`short_code` is what
    clients read)."""
    return {
        "id": method.short_code,
        "name": method.name,
        "short_code": method.short_code,
        "icon_url": None,
    }


def method_object(
    method: Method, catalogue: MethodCatalogue, *, payout: bool = False
) -> dict[str, Any]:
    """A method as the catalogue endpoints list it."""
    currency = catalogue.currency(method.currency)
    assert currency is not None  # the loader refuses methods in unknown currencies
    countries = [catalogue.country(code) for code in method.countries]
    return {
        "name": method.name,
        "short_code": method.short_code,
        "description": method.description,
        "gateways": [gateway_object(method, payout=payout)],
        "icon_url": None,
        "is_enabled": True,
        "fields": [field_object(field) for field in method.fields],
        "currency": currency_summary(currency),
        "countries": [country_object(c) for c in countries if c is not None],
    }


# ---------------------------------------------------------------------- payments
def country_name(code: str | None) -> str | None:
    if code is None:
        return None
    return ENGLISH.territories.get(code.upper())


def app_object(caller: MonerooCaller) -> dict[str, Any]:
    """The merchant's application, as payments and payouts carry it."""
    return {
        "id": app_id(caller.merchant_id),
        "name": caller.app_name,
        "website_url": None,
        "icon_url": None,
        "created_at": timestamp(caller.created_at),
        "updated_at": timestamp(caller.updated_at),
        "is_enabled": caller.enabled,
    }


def customer_object(customer: CheckoutCustomer) -> dict[str, Any]:
    """Who pays, or who is paid."""
    return {
        "id": customer.public_id,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "email": customer.email,
        "phone": customer.phone,
        "address": customer.address,
        "city": customer.city,
        "state": customer.state,
        "country_code": customer.country_code,
        "country": country_name(customer.country_code),
        "zip_code": customer.zip_code,
        "profile_url": None,
        "created_at": timestamp(customer.created_at),
        "updated_at": timestamp(customer.updated_at),
    }


def payment_object(
    found: FoundPayment, caller: MonerooCaller, catalogue: MethodCatalogue, base_url: str
) -> dict[str, Any]:
    """The payment as verify and retrieve return it (spec 7.8): the real nested shape
    (`capture` with method, gateway and context) and the top-level copies the field table
    lists. Amounts are JSON numbers."""
    payment, customer = found.payment, found.customer
    currency = catalogue.currency(payment.currency)
    assert currency is not None
    capture = None
    method = gateway = None
    if payment.method is not None:
        chosen = catalogue.payment_method(payment.method)
        assert chosen is not None
        method = method_summary(chosen)
        gateway = {
            **gateway_object(chosen),
            "account_name": caller.app_name,
            "transaction_id": payment.gateway_transaction_id,
            "transaction_status": payment.gateway_status,
            "transaction_failure_message": payment.failure_message,
        }
        capture = {
            "identifier": str(payment.capture_id) if payment.capture_id else None,
            "rate": None,
            "rate_formatted": None,
            "correction_rate": None,
            "phone_number": payment.phone_number,
            "failure_message": payment.failure_message,
            "failure_error_code": payment.failure_error_code,
            "failure_error_type": payment.failure_error_type,
            "metadata": {
                "network_transaction_id": payment.gateway_transaction_id,
                "amount_debited": None,
                "commission": None,
                "fees": None,
                "selected_payment_method": chosen.short_code,
            },
            "amount": json_number(payment.amount),
            "amount_formatted": format_amount(payment.amount, currency),
            "currency": currency_object(currency),
            "method": method,
            "gateway": gateway,
            "context": payment.context,
        }
    return {
        "id": payment.public_id,
        "status": payment.status,
        "is_processed": payment.is_processed,
        "processed_at": timestamp(payment.processed_at),
        "amount": json_number(payment.amount),
        "amount_formatted": format_amount(payment.amount, currency),
        "currency": currency_object(currency),
        "description": payment.description,
        "return_url": payment.return_url,
        "environment": payment.environment,
        "initiated_at": timestamp(payment.initiated_at),
        "checkout_url": checkout_url(base_url, payment.public_id),
        "payment_phone_number": payment.phone_number,
        "metadata": payment.extra or {},
        "app": app_object(caller),
        "customer": customer_object(customer),
        "capture": capture,
        "method": method,
        "gateway": gateway,
        "context": payment.context,
        "created_at": timestamp(payment.created_at),
    }


# ---------------------------------------------------------------------- payouts
def payout_object(
    payout: Payout, customer: CheckoutCustomer, caller: MonerooCaller, catalogue: MethodCatalogue
) -> dict[str, Any]:
    """A processor payout as verify and retrieve return it (spec 11.4): the disbursement
    (method, gateway and the gateway's answer) and when each status was reached. Amounts
    are JSON numbers."""
    currency = catalogue.currency(payout.currency)
    method = catalogue.payout_method(payout.method or "")
    assert currency is not None and method is not None and payout.public_id is not None
    status = processor_status(payout)
    final = status in ("success", "failed")
    return {
        "id": payout.public_id,
        "status": status,
        "amount": json_number(payout.amount),
        "amount_formatted": format_amount(payout.amount, currency),
        "currency": currency_object(currency),
        "description": payout.description or "",
        "environment": payout.environment,
        "metadata": payout.extra or {},
        "app": app_object(caller),
        "customer": customer_object(customer),
        "disburse": {
            "id": str(payout.uuid),
            "identifier": "pd_" + payout.public_id.removeprefix("po_"),
            "failure_message": payout.failure_message,
            "failure_error_code": payout.failure_error_code,
            "failure_error_type": payout.failure_error_type,
            "method": method_summary(method),
            "gateway": {
                **gateway_object(method, payout=True),
                "transaction_id": payout.txid,
                "transaction_status": payout.gateway_status,
                "transaction_failure_message": payout.failure_message,
            },
        },
        "failed_at": timestamp(payout.finished_at) if status == "failed" else None,
        "pending_at": timestamp(payout.sent_at),
        "success_at": timestamp(payout.finished_at) if status == "success" else None,
        # Processed by the processor: there is nothing for the merchant to mark.
        "is_processed": final,
        "processed_at": timestamp(payout.finished_at) if final else None,
        "initiated_at": timestamp(payout.created_at),
        "payout_phone_number": payout.address,
        "created_at": timestamp(payout.created_at),
    }
