"""Cryptomus payout endpoints (spec 7): thin translations over `paydesk.payouts`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json

from paydesk.api.cryptomus.errors import CryptomusError, CryptomusRoute, ok
from paydesk.api.cryptomus.responses import (
    PayoutPageResult,
    PayoutResult,
    ServiceResult,
    page_result,
    payout_history_item,
    payout_result,
    payout_service_result,
)
from paydesk.api.cryptomus.router import (
    PER_PAGE,
    CursorParameter,
    context_of,
    endpoint_doc,
    history_query,
    signed_request,
)
from paydesk.api.cryptomus.schemas import (
    EmptyRequest,
    HistoryRequest,
    PayoutCreateRequest,
    PayoutLookupRequest,
)
from paydesk.api.cryptomus.validation import validate
from paydesk.api.numbers import with_json_numbers
from paydesk.merchants.service import KeyKind
from paydesk.payouts.models import Payout
from paydesk.payouts.service import PayoutDraft

router = APIRouter(route_class=CryptomusRoute, tags=["Cryptomus payouts"])


def _payout_response(payout: Payout, request: Request) -> Response:
    """The payout object; `balance` and `payer_amount` as JSON numbers, as documented."""
    result = payout_result(payout, context_of(request).catalogue)
    body = b'{"state":0,"result":' + to_json(result, by_alias=True) + b"}"
    return Response(with_json_numbers(body), media_type="application/json")


@router.post(
    "/v1/payout",
    summary="Create a payout",
    description="Signed with the payout key. The amount and its fee are reserved from the "
    "balance at once (`balance` is what is left); a worker signs and sends the transfer "
    "from the hot wallet and the payout webhook reports each status. Idempotent per "
    "`order_id`.",
    **endpoint_doc(PayoutCreateRequest, PayoutResult),
)
async def create_payout(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYOUT, read_only=False)
    if signed.credentials.payouts_blocked:
        raise CryptomusError("You are forbidden")
    body = validate(PayoutCreateRequest, signed.data)
    draft = PayoutDraft(
        amount=body.amount,
        currency=body.currency,
        address=body.address,
        is_subtract=body.is_subtract,
        order_id=body.order_id,
        network=body.network,
        url_callback=body.url_callback,
        to_currency=body.to_currency,
        from_currency=body.from_currency,
        course_source=body.course_source,
        priority=body.priority or "recommended",
        memo=body.memo,
    )
    async with context.db.transaction() as session:
        created = await context.payouts.create(session, signed.merchant_id, draft)
        return _payout_response(created.payout, request)


@router.post(
    "/v1/payout/info",
    summary="Payout information",
    description="By `uuid` or `order_id`; when both are given, `order_id` wins.",
    **endpoint_doc(PayoutLookupRequest, PayoutResult),
)
async def payout_info(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYOUT, read_only=True)
    body = validate(PayoutLookupRequest, signed.data)
    async with context.db.reader() as session:
        payout = await context.payouts.find(
            session, signed.merchant_id, payout_uuid=body.uuid, order_id=body.order_id
        )
        return _payout_response(payout, request)


@router.post(
    "/v1/payout/list",
    summary="Payout history",
    description="Newest first, 15 per page. The next page is `?cursor=<nextCursor>`.",
    **endpoint_doc(HistoryRequest, PayoutPageResult, body_required=False),
)
async def payout_history(request: Request, cursor: CursorParameter = None) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYOUT, read_only=True)
    position, filters = history_query(signed, cursor)
    async with context.db.reader() as session:
        page = await context.payouts.history(
            session, signed.merchant_id, filters, position, PER_PAGE
        )
        items = [payout_history_item(payout, context.catalogue) for payout in page.items]
    paged = page_result(page, items)
    return ok(
        PayoutPageResult(
            merchant_uuid=str(signed.merchant_id), items=items, paginate=paged.paginate
        )
    )


@router.post(
    "/v1/payout/services",
    summary="Payout services",
    description="Every coin and network payouts can be sent on, with their limits and fee "
    "(`fee_amount` in the coin covers the network fee; `percent` of the amount).",
    **endpoint_doc(EmptyRequest, list[ServiceResult], body_required=False),
)
async def payout_services(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYOUT, read_only=True)
    validate(EmptyRequest, signed.data)
    return ok([payout_service_result(service) for service in context.catalogue.services])
