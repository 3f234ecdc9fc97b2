"""Cryptomus payment endpoints. Each one authenticates, validates, calls a service and
wraps the result; the logic lives in the services."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from paydesk.api import openapi
from paydesk.api.cryptomus.auth import SignedRequest, authenticate
from paydesk.api.cryptomus.errors import CryptomusError, CryptomusRoute, ok
from paydesk.api.cryptomus.responses import (
    Failure,
    FieldFailure,
    InvoiceResult,
    PageResult,
    ServerFailure,
    ServiceResult,
    Success,
    decode_cursor,
    invoice_result,
    page_result,
    service_result,
)
from paydesk.api.cryptomus.schemas import (
    CreateInvoiceRequest,
    EmptyRequest,
    HistoryRequest,
    InvoiceLookupRequest,
)
from paydesk.api.cryptomus.validation import validate
from paydesk.api.idempotent import has_idempotency_key, run_idempotent
from paydesk.context import Context
from paydesk.invoices.schemas import HistoryFilter
from paydesk.merchants.service import KeyKind

PER_PAGE = 15

openapi.security_scheme(
    "merchant",
    {"type": "apiKey", "in": "header", "name": "merchant", "description": "Merchant uuid"},
)
openapi.security_scheme(
    "sign",
    {
        "type": "apiKey",
        "in": "header",
        "name": "sign",
        "description": "md5 hex of base64(raw request body) followed by the API key",
    },
)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Failure, "description": "Missing headers, unknown merchant or `Invalid Sign.`"},
    413: {"model": Failure, "description": "Body larger than the configured limit"},
    415: {"model": Failure, "description": "Body is not JSON"},
    422: {
        "model": FieldFailure | Failure,
        "description": "Field errors (`errors`) or a business error (`message`)",
    },
    500: {"model": ServerFailure, "description": "Unexpected failure"},
}


def _doc(model: type, result: Any, *, body_required: bool = True) -> dict[str, Any]:
    return {
        "openapi_extra": {
            **openapi.json_body(model, required=body_required),
            "security": [{"merchant": [], "sign": []}],
        },
        "responses": {200: {"model": Success[result]}, **ERRORS},
        "response_class": Response,
    }


router = APIRouter(route_class=CryptomusRoute, tags=["Cryptomus payments"])


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


async def _signed(request: Request, key: KeyKind, *, read_only: bool) -> SignedRequest:
    return await authenticate(request, _context(request), key, read_only=read_only)


@router.post(
    "/v1/payment",
    summary="Create an invoice",
    description="Idempotent per `order_id`; also honours an `Idempotency-Key` header.",
    **_doc(CreateInvoiceRequest, InvoiceResult),
)
async def create_invoice(request: Request) -> Response:
    context = _context(request)
    signed = await _signed(request, KeyKind.PAYMENT, read_only=False)
    if signed.credentials.payments_blocked:
        raise CryptomusError("You are forbidden")
    draft = validate(CreateInvoiceRequest, signed.data).to_draft()
    base_url = context.settings.base_url

    if context.db.runs_alone and not has_idempotency_key(request):
        invoice = await context.invoices.create_alone(context.db, signed.merchant_id, draft)
        if invoice is not None:
            return ok(invoice_result(invoice, context.catalogue, base_url))

    async with context.db.transaction() as session:

        async def produce() -> Response:
            result = await context.invoices.create(session, signed.merchant_id, draft)
            return ok(invoice_result(result.invoice, context.catalogue, base_url))

        return await run_idempotent(session, signed.merchant_id, request, signed.body, produce)


@router.post(
    "/v1/payment/info",
    summary="Invoice information",
    description="By `uuid` or `order_id`; when both are given, `order_id` wins.",
    **_doc(InvoiceLookupRequest, InvoiceResult),
)
async def invoice_info(request: Request) -> Response:
    context = _context(request)
    signed = await _signed(request, KeyKind.PAYMENT, read_only=True)
    lookup = validate(InvoiceLookupRequest, signed.data)
    async with context.db.transaction() as session:
        invoice = await context.invoices.find(session, signed.merchant_id, **lookup.target())
        return ok(invoice_result(invoice, context.catalogue, context.settings.base_url))


@router.post(
    "/v1/payment/list",
    summary="Invoice history",
    description="Newest first, 15 per page. The next page is `?cursor=<nextCursor>` "
    "(a `cursor` in the body is read too).",
    **_doc(HistoryRequest, PageResult[InvoiceResult], body_required=False),
)
async def invoice_history(
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="`nextCursor` or `previousCursor`")
    ] = None,
) -> Response:
    context = _context(request)
    signed = await _signed(request, KeyKind.PAYMENT, read_only=True)
    query = validate(HistoryRequest, signed.data)
    position = decode_cursor(cursor or query.cursor)
    filters = HistoryFilter(created_from=query.date_from, created_to=query.date_to)
    async with context.db.transaction() as session:
        page = await context.invoices.history(
            session, signed.merchant_id, filters, position, PER_PAGE
        )
        items = [
            invoice_result(invoice, context.catalogue, context.settings.base_url)
            for invoice in page.items
        ]
    return ok(page_result(page, items))


@router.post(
    "/v1/payment/services",
    summary="Payment services",
    description="Every coin and network this server accepts, with limits and commission.",
    **_doc(EmptyRequest, list[ServiceResult], body_required=False),
)
async def payment_services(request: Request) -> Response:
    context = _context(request)
    signed = await _signed(request, KeyKind.PAYMENT, read_only=True)
    validate(EmptyRequest, signed.data)
    return ok([service_result(service) for service in context.catalogue.services])
