"""Moneroo payout endpoints: initialize, verify, retrieve. The Bearer key picks the
merchant and the mode; the payout is the payout core's, on the processor rail, paid later
by the processor payout worker."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from paydesk.api.moneroo.envelope import MonerooError, MonerooRoute, field_error, not_found, success
from paydesk.api.moneroo.payments import authenticate, json_body
from paydesk.api.moneroo.responses import payout_object
from paydesk.api.moneroo.schemas import parse_payout
from paydesk.context import Context
from paydesk.ledger.service import InsufficientFunds
from paydesk.payouts.service import NoPayoutConnector, PayoutNotFound, PayoutsForbidden

router = APIRouter(route_class=MonerooRoute, tags=["Moneroo payouts"])

INSUFFICIENT = "Insufficient balance to initiate this payout."


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


@router.post("/v1/payouts/initialize", status_code=201, summary="Initialize a payout")
async def initialize(request: Request) -> Response:
    caller = await authenticate(request)
    context = _context(request)
    draft, beneficiary = parse_payout(
        await json_body(request), context.checkout.methods, caller.environment
    )
    try:
        async with context.db.transaction() as session:
            customer = await context.checkout.customer(
                session, caller.merchant_id, caller.environment, beneficiary
            )
            payout = await context.payouts.create_processor(
                session, caller.merchant_id, caller.environment, draft, customer
            )
    except InsufficientFunds:
        raise MonerooError(INSUFFICIENT, 422, [field_error("amount", INSUFFICIENT)]) from None
    except NoPayoutConnector:
        message = "The selected method is not available for payouts."
        raise MonerooError(message, 422, [field_error("method", message)]) from None
    except PayoutsForbidden:
        raise MonerooError(
            "Payouts are disabled for this application.", 403, kind="authorization_error"
        ) from None
    return success("Payout transaction initialized successfully", {"id": payout.public_id},
                   status=201)  # fmt: skip


async def _object(request: Request, payout_id: str) -> dict[str, object]:
    caller = await authenticate(request)
    context = _context(request)
    try:
        async with context.db.reader() as session:
            payout, customer = await context.payouts.find_processor(
                session, caller.merchant_id, caller.environment, payout_id
            )
    except PayoutNotFound:
        raise not_found("Payout transaction not found.") from None
    return payout_object(payout, customer, caller, context.checkout.methods)


@router.get("/v1/payouts/{payout_id}/verify", summary="Verify a payout")
async def verify(request: Request, payout_id: str) -> Response:
    return success("Payout transaction fetched successfully!", await _object(request, payout_id))


@router.get("/v1/payouts/{payout_id}", summary="Retrieve a payout")
async def retrieve(request: Request, payout_id: str) -> Response:
    return success("Payout transaction fetched successfully", await _object(request, payout_id))
