"""The hosted checkout at a payment's `checkout_url`: the payer chooses a method among those
the payment allows, gives only what that method needs (a phone number for mobile money),
pays, and is sent back to the shop's `return_url` once the payment is over.

Every page lives under `/moneroo/…`: the official Flutter widget takes a page whose URL
lacks that word for the end of the payment. Pages are server-rendered and work without
JavaScript; a pending payment's page reloads itself (a meta refresh, which the CSP allows).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from paydesk.checkout.connectors import ConnectorUnavailable
from paydesk.checkout.methods import Method
from paydesk.checkout.models import FINAL, INITIATED, PENDING
from paydesk.checkout.service import (
    CheckoutError,
    FoundPayment,
    MethodNotOffered,
    NoConnector,
    NotPayable,
    PaymentNotFound,
    PhoneNotAllowed,
    PhoneRequired,
)
from paydesk.context import Context
from paydesk.invoices.models import Invoice
from paydesk.paypage.presenting import price_text
from paydesk.paypage.router import CHECKOUT_PREFIX
from paydesk.web.forms import read_form, see_other
from paydesk.web.i18n import Language
from paydesk.web.templating import Pages

log = structlog.get_logger(__name__)

router = APIRouter(tags=["Hosted checkout"], include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogues; it is translated when the page is drawn."""
    return message


#: Why a payment attempt was refused, as the page says it (`?error=`).
ERRORS = {
    "method": _("This payment method is not available."),
    "phone": _("Enter the phone number that will pay."),
    "restricted": _("This payment can only be paid from the phone number it was made for."),
    "unavailable": _("The payment service could not be reached. Please try again."),
    "busy": _("This payment is already being paid."),
}
#: Seconds between reloads of a pending payment's page.
PENDING_REFRESH_SECONDS = 3


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages


def page_url(payment_id: str, **params: str | None) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items() if value)
    return f"/moneroo/checkout/{payment_id}" + (f"?{query}" if query else "")


def _not_found(request: Request, language: Language) -> Response:
    return _pages(request).render(request, "checkout/not_found.html", language, status_code=404)


async def _refreshed(request: Request, payment_id: str) -> FoundPayment:
    """The payment, after asking its processor about it when it is pending (what verify
    does too)."""
    context = _context(request)
    async with context.db.reader() as session:
        found = await context.checkout.find_public(session, payment_id)
    payment = found.payment
    if payment.status != PENDING or payment.method is None or payment.invoice_id is not None:
        return found
    method = context.checkout.methods.payment_method(payment.method)
    connector = context.checkout.connector_for(method, payment.environment) if method else None
    if connector is None or payment.gateway_transaction_id is None:
        return found
    try:
        result = await connector.refresh(payment.gateway_transaction_id, payment.environment)
    except ConnectorUnavailable:
        return found
    if result is None:
        return found
    async with context.db.transaction() as session:
        return await context.checkout.apply(session, payment_id, result)


@router.get("/moneroo/checkout/{payment_id}")
async def checkout_page(request: Request, payment_id: str) -> Response:
    pages = _pages(request)
    language = pages.language(request)
    try:
        found = await _refreshed(request, payment_id)
    except PaymentNotFound:
        return _not_found(request, language)
    payment = found.payment
    if payment.status in FINAL:
        # A page that moves on by itself, not a redirect: the payer often arrives here from
        # the payment form, and a form's redirects may not leave this site (the CSP's
        # form-action), while a new navigation to the shop may.
        return pages.render(
            request,
            "checkout/done.html",
            language,
            payment=payment,
            merchant_name=await _merchant_name(request, payment.merchant_id),
            back=f"/moneroo/checkout/{payment_id}/return",
        )
    context = _context(request)
    methods = context.checkout.payable_methods(payment)
    chosen: Method | None = None
    wanted = request.query_params.get("method")
    if payment.status == INITIATED and wanted:
        chosen = next((m for m in methods if m.short_code == wanted), None)
    merchant = await _merchant_name(request, payment.merchant_id)
    error = ERRORS.get(request.query_params.get("error") or "")
    values: dict[str, Any] = {
        "payment": payment,
        "merchant_name": merchant,
        "price": price_text(payment.amount, payment.currency, language),
        "methods": methods,
        "chosen": chosen,
        "asks_phone": chosen is not None
        and payment.restricted_phone is None
        and any(field.name == "msisdn" for field in chosen.fields),
        "error": language.gettext(error) if error else None,
        "sandbox": payment.environment == "sandbox",
        "pending": payment.status == PENDING,
        "refresh_seconds": PENDING_REFRESH_SECONDS,
        "lang_query": f"?lang={language.code}",
    }
    return pages.render(request, "checkout/page.html", language, **values)


async def _merchant_name(request: Request, merchant_id: Any) -> str:
    from paydesk.merchants.models import Merchant

    async with _context(request).db.reader() as session:
        merchant = await session.get(Merchant, merchant_id)
    return merchant.name if merchant is not None else ""


@router.post("/moneroo/checkout/{payment_id}/pay")
async def pay(request: Request, payment_id: str) -> Response:
    """Start paying with the chosen method: mobile money and the sandbox go to their
    connector; crypto opens a Paydesk invoice and continues on its payment page."""
    context = _context(request)
    form = await read_form(request)
    method_code = form.get("method", "")
    phone = _digits(form.get("phone"))
    lang = request.query_params.get("lang")
    browser = {
        "ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent", "")[:255],
        "local": lang or (request.headers.get("accept-language", "")[:2] or None),
    }
    try:
        async with context.db.transaction() as session:
            found, attempt = await context.checkout.begin_attempt(
                session, payment_id, method_code, phone, browser
            )
            invoice_uuid = None
            if attempt is None and found.payment.invoice_id is not None:
                invoice = await session.get_one(Invoice, found.payment.invoice_id)
                invoice_uuid = invoice.uuid
    except PaymentNotFound:
        return _not_found(request, _pages(request).language(request))
    except PhoneRequired:
        return see_other(page_url(payment_id, method=method_code, error="phone", lang=lang))
    except (CheckoutError, ValueError) as exc:
        code = {
            MethodNotOffered: "method",
            NoConnector: "method",
            PhoneNotAllowed: "restricted",
            NotPayable: "busy",
        }.get(type(exc), "method")
        return see_other(page_url(payment_id, error=code, lang=lang))
    if invoice_uuid is not None:
        # The invoice's payment page, served under the checkout's word (the Flutter rule).
        return see_other(f"{CHECKOUT_PREFIX}/{invoice_uuid}" + (f"?lang={lang}" if lang else ""))
    assert attempt is not None and found.payment.capture_id is not None
    capture_id = found.payment.capture_id
    connector = context.checkout.connector_for(attempt.method, attempt.environment)
    assert connector is not None
    try:
        result = await connector.start(attempt)
    except ConnectorUnavailable as exc:
        log.warning("checkout.connector_unavailable", connector=connector.short_code,
                    error=str(exc))  # fmt: skip
        async with context.db.transaction() as session:
            await context.checkout.undo_attempt(session, payment_id, capture_id)
        return see_other(page_url(payment_id, error="unavailable", lang=lang))
    async with context.db.transaction() as session:
        await context.checkout.apply(session, payment_id, result, capture_id=capture_id)
    return see_other(page_url(payment_id, lang=lang))


@router.post("/moneroo/checkout/{payment_id}/cancel")
async def cancel(request: Request, payment_id: str) -> Response:
    context = _context(request)
    try:
        async with context.db.transaction() as session:
            await context.checkout.cancel(session, payment_id)
    except PaymentNotFound:
        return _not_found(request, _pages(request).language(request))
    return see_other(f"/moneroo/checkout/{payment_id}/return")


@router.get("/moneroo/checkout/{payment_id}/return")
async def back_to_shop(request: Request, payment_id: str) -> Response:
    """To the shop's `return_url` with the outcome, once the payment is over; back to the
    checkout while it is not."""
    context = _context(request)
    try:
        async with context.db.transaction() as session:
            url = await context.checkout.send_back(session, payment_id)
    except PaymentNotFound:
        return _not_found(request, _pages(request).language(request))
    if url is None:
        return see_other(page_url(payment_id, lang=request.query_params.get("lang")))
    return see_other(url)


@router.post("/moneroo/callbacks/{gateway}")
async def processor_callback(request: Request, gateway: str) -> Response:
    """A processor's notification about one of its transactions (M-Pesa's STK callback)."""
    context = _context(request)
    connector = next((c for c in context.checkout.connectors if c.short_code == gateway), None)
    if connector is None:
        return JSONResponse({"ResultCode": 1, "ResultDesc": "Unknown gateway"}, status_code=404)
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"ResultCode": 1, "ResultDesc": "Not JSON"}, status_code=400)
    news = await connector.callback(body)
    if news is not None:
        async with context.db.transaction() as session:
            payment_id = await context.checkout.by_gateway_transaction(
                session, news.gateway_transaction_id
            )
            if payment_id is not None:
                await context.checkout.apply(session, payment_id, news.result)
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


def _digits(text: str | None) -> str | None:
    if not text:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits or None
