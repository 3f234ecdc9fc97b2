"""A `PaymentView` (or a static wallet) as a template's values: amounts as text in the
payer's language, the QR code, the safe links back to the shop."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, is_currency
from markupsafe import Markup

from paydesk.catalogue.models import Network
from paydesk.catalogue.service import Catalogue
from paydesk.chains.uri import payment_uri
from paydesk.invoices.service import payment_uri_of
from paydesk.money import plain
from paydesk.paypage.service import PageState, PaymentView
from paydesk.wallets.models import ACTIVE, StaticWallet
from paydesk.web.i18n import Language
from paydesk.web.qr import qr_svg

DEVNET = "devnet"


@dataclass(frozen=True, slots=True)
class CoinOption:
    code: str
    name: str
    networks: int


@dataclass(frozen=True, slots=True)
class NetworkOption:
    code: str
    name: str
    #: What the payer would send on this network now; None when it cannot be used now.
    amount: str | None


def present(
    view: PaymentView,
    language: Language,
    catalogue: Catalogue,
    *,
    chosen_currency: str | None = None,
    error: str | None = None,
    base_path: str = "/pay",
) -> dict[str, Any]:
    invoice = view.invoice
    base = f"{base_path}/{invoice.uuid}"
    values: dict[str, Any] = {
        "view": view,
        "state": view.state.value,
        "page_url": base,
        "lang_query": f"?lang={language.code}",
        "merchant_name": view.merchant_name,
        "invoice_amount": price_text(invoice.amount, invoice.currency, language),
        "coin": invoice.payer_currency,
        "network_name": display_name(view.network) if view.network else None,
        "is_devnet": view.network is not None and view.network.family == DEVNET,
        "due": plain(view.amount_due) if view.amount_due is not None else None,
        "payer_amount": plain(invoice.payer_amount) if invoice.payer_amount is not None else None,
        "received": plain(view.received),
        "address": invoice.address,
        "countdown": countdown_text(view.seconds_left),
        "expires_at": int(invoice.expired_at.timestamp()),
        "url_success": safe_link(invoice.url_success),
        "url_return": safe_link(invoice.url_return),
        "confirmations": view.confirmations,
        "required": view.required_confirmations,
        "error": error,
        "chosen_currency": None,
        "coins": [],
        "networks": [],
        "qr": None,
        "payment_uri": None,
    }
    uri = None
    if view.state in (PageState.PAY, PageState.UNDERPAID):
        uri = payment_uri_of(invoice, catalogue)
    if uri is not None:
        values["payment_uri"] = uri
        title = language.gettext("QR code for your wallet app")
        # segno's own markup: the URI is drawn as modules, never written as text.
        values["qr"] = Markup(qr_svg(uri, title=title))  # noqa: S704
    if view.state == PageState.CHOOSE:
        values.update(_choices(view, catalogue, chosen_currency))
    return values


def present_wallet(
    wallet: StaticWallet, merchant_name: str, language: Language, catalogue: Catalogue
) -> dict[str, Any]:
    """A static wallet's page: its address, what to send there, a QR code without amount."""
    network = catalogue.network(wallet.network)
    service = catalogue.service(wallet.currency, wallet.network)
    values: dict[str, Any] = {
        "merchant_name": merchant_name,
        "coin": wallet.currency,
        "address": wallet.address,
        "network_name": display_name(network) if network else wallet.network,
        "is_devnet": network is not None and network.family == DEVNET,
        "active": wallet.status == ACTIVE,
        "lang_query": f"?lang={language.code}",
        "qr": None,
    }
    if network is not None and values["active"]:
        uri = payment_uri(network, service, wallet.address, None)
        title = language.gettext("QR code for your wallet app")
        values["qr"] = Markup(qr_svg(uri, title=title))  # noqa: S704
    return values


def _choices(
    view: PaymentView, catalogue: Catalogue, chosen_currency: str | None
) -> dict[str, Any]:
    codes: dict[str, int] = {}
    for option in view.options:
        codes[option.service.currency] = codes.get(option.service.currency, 0) + 1
    coins = []
    for code, networks in codes.items():
        currency = catalogue.currency(code)
        coins.append(CoinOption(code, currency.name if currency else code, networks))
    chosen = chosen_currency.upper() if chosen_currency else None
    if chosen is None and len(coins) == 1:
        chosen = coins[0].code  # one coin to take: straight to its networks
    if chosen not in codes:
        return {"coins": coins, "chosen_currency": None, "networks": []}
    networks = []
    for option in view.options:
        if option.service.currency != chosen:
            continue
        network = catalogue.network(option.service.network)
        name = display_name(network) if network else option.service.network
        amount = plain(option.payer_amount) if option.payer_amount is not None else None
        networks.append(NetworkOption(option.service.network, name, amount))
    return {"coins": coins, "chosen_currency": chosen, "networks": networks}


def display_name(network: Network) -> str:
    """The network's name as a payer reads it (the catalogue's devnet name describes it
    for operators, in English; the page says what it is in the payer's language)."""
    return "Paydesk devnet" if network.family == DEVNET else network.name


def price_text(amount: Decimal, currency: str, language: Language) -> str:
    """A price in the payer's language: money with an ISO code the way the locale writes
    it, a coin as its exact amount and code."""
    if is_currency(currency):
        return format_currency(amount, currency, locale=language.locale)
    return f"{plain(amount)} {currency}"


def countdown_text(seconds: int) -> str:
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes:02d}:{seconds:02d}"


def safe_link(url: str | None) -> str | None:
    """Only web links become buttons; a `javascript:` URL never reaches an href."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None
