"""Moneroo payment endpoints: initialize, verify, retrieve, mark as processed. Each one
authenticates the Bearer key (which also picks sandbox or live), reads the body the way
real clients send it, calls the checkout service and answers in the envelope."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from paydesk.api.moneroo.envelope import MonerooError, MonerooRoute, not_found, success
from paydesk.api.moneroo.ratelimit import RateLimiter
from paydesk.api.moneroo.responses import payment_object
from paydesk.api.moneroo.schemas import parse_initialize
from paydesk.checkout.service import (
    FoundPayment,
    NoMethodAvailable,
    NotPaid,
    PaymentNotFound,
    checkout_url,
)
from paydesk.context import Context
from paydesk.merchants.moneroo_keys import MonerooCaller, key_digest

router = APIRouter(route_class=MonerooRoute, tags=["Moneroo payments"])

MAX_BODY_BYTES = 64 * 1024


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def _limiter(request: Request) -> RateLimiter:
    """This process's counter of requests per key (made with the app's first request)."""
    limiter: RateLimiter | None = getattr(request.app.state, "moneroo_limiter", None)
    if limiter is None:
        per_minute = _context(request).settings.moneroo_rate_limit_per_minute
        limiter = request.app.state.moneroo_limiter = RateLimiter(per_minute)
    return limiter


async def authenticate(request: Request) -> MonerooCaller:
    """`Authorization: Bearer <secret key>`; the key alone selects the merchant and mode."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 512:
        raise MonerooError("Unauthenticated.", 401, kind="authentication_error")
    context = _context(request)
    if not _limiter(request).allow(key_digest(key)):
        raise MonerooError(
            "Too many requests. Please wait a minute before trying again.", 429,
            kind="rate_limit_error",
        )  # fmt: skip
    caller = await context.moneroo_keys.caller(key)
    if caller is None:
        raise MonerooError("Invalid API key.", 401, kind="authentication_error")
    if not caller.enabled:
        raise MonerooError("This application is disabled.", 403, kind="authorization_error")
    return caller


async def json_body(request: Request) -> Any:
    """The parsed body: numbers as exact decimals, 400 for anything that is not JSON."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise MonerooError("The request body is too large.", 413)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MonerooError("The request body is not valid JSON.", 400) from None


def _object(request: Request, found: FoundPayment, caller: MonerooCaller) -> dict[str, Any]:
    context = _context(request)
    return payment_object(found, caller, context.checkout.methods, context.settings.base_url)


@router.post("/v1/payments/initialize", status_code=201, summary="Initialize a payment")
async def initialize(request: Request) -> Response:
    caller = await authenticate(request)
    context = _context(request)
    draft = parse_initialize(await json_body(request), context.checkout.methods)
    try:
        async with context.db.transaction() as session:
            found = await context.checkout.initialize(
                session, caller.merchant_id, caller.environment, draft
            )
    except NoMethodAvailable:
        raise MonerooError(
            "No payment method available for this request.",
            422,
            [{"type": "validation_error", "field": "methods",
              "message": "No payment method available for this request.", "hint": None}],
        ) from None  # fmt: skip
    url = checkout_url(context.settings.base_url, found.payment.public_id)
    return success(
        "Transaction initialized successfully",
        {"id": found.payment.public_id, "checkout_url": url, "link": url},
        status=201,
    )


async def _found(request: Request, payment_id: str) -> tuple[FoundPayment, MonerooCaller]:
    caller = await authenticate(request)
    context = _context(request)
    try:
        async with context.db.reader() as session:
            found = await context.checkout.find(
                session, caller.merchant_id, caller.environment, payment_id
            )
    except PaymentNotFound:
        raise not_found() from None
    return found, caller


@router.get("/v1/payments/{payment_id}/verify", summary="Verify a payment")
async def verify(request: Request, payment_id: str) -> Response:
    found, caller = await _found(request, payment_id)
    return success("Payment transaction fetched successfully!", _object(request, found, caller))


@router.get("/v1/payments/{payment_id}", summary="Retrieve a payment")
async def retrieve(request: Request, payment_id: str) -> Response:
    found, caller = await _found(request, payment_id)
    return success("Payment transaction fetched successfully", _object(request, found, caller))


@router.post("/v1/payments/{payment_id}/process", summary="Mark a payment as processed")
async def mark_processed(request: Request, payment_id: str) -> Response:
    caller = await authenticate(request)
    await json_body(request)  # `[]`, `{}` or nothing: all accepted, none read
    context = _context(request)
    try:
        async with context.db.transaction() as session:
            found = await context.checkout.mark_processed(
                session, caller.merchant_id, caller.environment, payment_id
            )
    except PaymentNotFound:
        raise not_found() from None
    except NotPaid:
        raise MonerooError("Only a successful payment can be marked as processed.") from None
    return success("Payment marked as processed successfully", _object(request, found, caller))
