"""The hosted payment page at an invoice's `url`: server-rendered, usable without
JavaScript (forms and links), live with it (server-sent events, long polling as the
fallback)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from paydesk.chains.devnet import DevnetError
from paydesk.context import Context
from paydesk.invoices.service import (
    AmountOutOfRange,
    CoinAlreadyChosen,
    ConversionFailed,
    InvoiceNotFound,
    InvoiceNotPayable,
    OptionNotOffered,
)
from paydesk.paypage.live import LiveStatus
from paydesk.paypage.presenting import present, present_wallet
from paydesk.paypage.service import PageState, PaymentView
from paydesk.wallets.service import WalletNotFound
from paydesk.web.forms import read_form, see_other
from paydesk.web.i18n import Language
from paydesk.web.templating import Pages

router = APIRouter(tags=["Payment page"], include_in_schema=False)

#: How long one event stream or long poll stays open before the browser reconnects
#: (proxies and load balancers cut idle connections; reconnecting is cheap).
STREAM_SECONDS = 300.0
LONG_POLL_SECONDS = 25.0
KEEPALIVE_SECONDS = 15.0


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.pages  # built with the app
    return pages


def _live(request: Request) -> LiveStatus:
    live: LiveStatus | None = getattr(request.app.state, "live_status", None)
    if live is None:
        context = _context(request)
        live = LiveStatus(context.payment_pages, context.settings.page_poll_seconds)
        request.app.state.live_status = live
    return live


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _not_found(request: Request, language: Language) -> Response:
    return _pages(request).render(request, "pay/not_found.html", language, status_code=404)


#: Where the page of an invoice that pays a hosted checkout lives: the same page under a
#: path with the word `moneroo`, which the official Flutter widget watches for (a page
#: without it ends the payment in the app).
CHECKOUT_PREFIX = "/moneroo/pay"


def base_path(request: Request) -> str:
    return CHECKOUT_PREFIX if request.url.path.startswith(CHECKOUT_PREFIX + "/") else "/pay"


def _page_url(request: Request, invoice_uuid: uuid.UUID, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{base_path(request)}/{invoice_uuid}" + (f"?{query}" if query else "")


@router.get("/pay/{invoice_id}")
@router.get("/moneroo/pay/{invoice_id}")
async def payment_page(
    request: Request,
    invoice_id: str,
    currency: Annotated[str | None, Query(max_length=16)] = None,
    error: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    pages = _pages(request)
    language = pages.language(request)
    invoice_uuid = _uuid(invoice_id)
    if invoice_uuid is None:
        return _not_found(request, language)
    context = _context(request)
    try:
        view = await context.payment_pages.view(invoice_uuid)
    except InvoiceNotFound:
        return _not_found(request, language)
    if view.state == PageState.CHOOSE:
        await context.payment_pages.options(view, currency)
        if currency and not view.options:
            currency = None  # a coin the invoice does not take: back to the coin list
            await context.payment_pages.options(view)
    return pages.render(
        request,
        "pay/page.html",
        language,
        description=await context.payment_pages.description(view.invoice),
        **present(
            view,
            language,
            context.catalogue,
            chosen_currency=currency,
            error=error,
            base_path=base_path(request),
        ),
    )


@router.get("/wallet/{wallet_id}")
async def wallet_page(request: Request, wallet_id: str) -> Response:
    """A static wallet's public page: the customer's permanent deposit address."""
    pages = _pages(request)
    language = pages.language(request)
    wallet_uuid = _uuid(wallet_id)
    context = _context(request)
    try:
        if wallet_uuid is None:
            raise WalletNotFound(wallet_id)
        async with context.db.reader() as session:
            wallet, merchant_name = await context.wallets.public(session, wallet_uuid)
    except WalletNotFound:
        return pages.render(request, "pay/wallet_not_found.html", language, status_code=404)
    return pages.render(
        request,
        "pay/wallet.html",
        language,
        **present_wallet(wallet, merchant_name, language, context.catalogue),
    )


@router.post("/pay/{invoice_id}/choose")
@router.post("/moneroo/pay/{invoice_id}/choose")
async def choose(request: Request, invoice_id: str) -> Response:
    invoice_uuid = _uuid(invoice_id)
    language = _pages(request).language(request)
    if invoice_uuid is None:
        return _not_found(request, language)
    form = await read_form(request)
    currency, network = form.get("currency", ""), form.get("network", "")
    lang = request.query_params.get("lang")
    try:
        await _context(request).payment_pages.choose(invoice_uuid, currency, network)
    except InvoiceNotFound:
        return _not_found(request, language)
    except (CoinAlreadyChosen, InvoiceNotPayable):
        pass  # another tab chose first, or the time ran out: the page shows which
    except OptionNotOffered:
        return see_other(_page_url(request, invoice_uuid, lang=lang, currency=currency or None))
    except (ConversionFailed, AmountOutOfRange):
        return see_other(
            _page_url(request, invoice_uuid, lang=lang, currency=currency, error="unavailable")
        )
    return see_other(_page_url(request, invoice_uuid, lang=lang))


@router.post("/pay/{invoice_id}/test-wallet")
@router.post("/moneroo/pay/{invoice_id}/test-wallet")
async def test_wallet(request: Request, invoice_id: str) -> Response:
    """The devnet's wallet on a demo server: sends test coins to the invoice."""
    amount = _amount((await read_form(request)).get("amount"))
    pages = _context(request).payment_pages
    return await _payer_action(
        request,
        invoice_id,
        lambda invoice_uuid: pages.pay_with_test_wallet(invoice_uuid, amount),
        (InvoiceNotPayable, DevnetError),
    )


@router.post("/pay/{invoice_id}/renew")
@router.post("/moneroo/pay/{invoice_id}/renew")
async def renew(request: Request, invoice_id: str) -> Response:
    return await _payer_action(
        request,
        invoice_id,
        _context(request).payment_pages.renew,
        (InvoiceNotPayable, ConversionFailed, AmountOutOfRange),
    )


async def _payer_action(
    request: Request,
    invoice_id: str,
    action: Callable[[uuid.UUID], Awaitable[None]],
    refused: tuple[type[Exception], ...],
) -> Response:
    """Do what the payer asked and show the page again; a refusal needs no message of
    its own, the page shows what the invoice is now."""
    invoice_uuid = _uuid(invoice_id)
    if invoice_uuid is None:
        return _not_found(request, _pages(request).language(request))
    try:
        await action(invoice_uuid)
    except InvoiceNotFound:
        return _not_found(request, _pages(request).language(request))
    except refused:
        pass
    return see_other(_page_url(request, invoice_uuid, lang=request.query_params.get("lang")))


@router.get("/pay/{invoice_id}/events")
@router.get("/moneroo/pay/{invoice_id}/events")
async def events(
    request: Request,
    invoice_id: str,
    version: Annotated[str | None, Query(max_length=64)] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Server-sent events: a `state` event each time what the page shows changes."""
    current = await _current_view(request, invoice_id)
    if current is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    invoice_uuid = current.invoice.uuid
    pages = _pages(request)
    language = pages.language(request)
    live = _live(request)
    known = last_event_id or version
    if current.is_final and current.version == known:
        return Response(status_code=204)  # nothing will change: tells EventSource to stop

    async def stream() -> AsyncIterator[str]:
        nonlocal known
        # Reconnect quickly after the server closes the stream on purpose.
        yield "retry: 2000\n\n"
        deadline = asyncio.get_running_loop().time() + STREAM_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            view = await live.next_view(invoice_uuid, known, KEEPALIVE_SECONDS)
            if view is None:
                yield ": keep-alive\n\n"
                continue
            known = view.version
            message = await _message(request, pages, language, view)
            yield f"id: {view.version}\nevent: state\ndata: {json.dumps(message)}\n\n"
            if view.is_final:
                return

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/pay/{invoice_id}/status")
@router.get("/moneroo/pay/{invoice_id}/status")
async def status(
    request: Request,
    invoice_id: str,
    version: Annotated[str | None, Query(max_length=64)] = None,
    wait: Annotated[bool, Query()] = True,
) -> Response:
    """Long polling for browsers without event streams: answers at once when the page is
    out of date, else when it changes, else after a while with the same version."""
    view = await _current_view(request, invoice_id)
    if view is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    pages = _pages(request)
    language = pages.language(request)
    if wait and view.version == version and not view.is_final:
        changed = await _live(request).next_view(view.invoice.uuid, version, LONG_POLL_SECONDS)
        view = changed or view
    return JSONResponse(
        await _message(request, pages, language, view), headers={"Cache-Control": "no-store"}
    )


async def _current_view(request: Request, invoice_id: str) -> PaymentView | None:
    invoice_uuid = _uuid(invoice_id)
    if invoice_uuid is None:
        return None
    try:
        return await _context(request).payment_pages.view(invoice_uuid)
    except InvoiceNotFound:
        return None


async def _message(
    request: Request, pages: Pages, language: Language, view: PaymentView
) -> dict[str, Any]:
    context = _context(request)
    if view.state == PageState.CHOOSE and not view.options:
        await context.payment_pages.options(view)
    presented = present(view, language, context.catalogue, base_path=base_path(request))
    return {
        "version": view.version,
        "state": view.state.value,
        "final": view.is_final,
        "now": round(view.now.timestamp(), 3),
        "html": pages.render_fragment("pay/_state.html", language, **presented),
    }


def _amount(text: str | None) -> Decimal | None:
    """A positive amount typed by the payer; None (what is due) for anything else."""
    try:
        amount = Decimal((text or "").strip().replace(",", "."))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() and amount > 0 else None
