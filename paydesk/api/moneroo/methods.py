"""The method catalogue endpoints (`/utils/payment/methods`, `/utils/payout/methods`).

Moneroo serves them at the root without authentication; clients often send their Bearer key
anyway, and some derive the URL from a `/v1` base, so both paths answer and any
Authorization header is ignored. The answer is static: it is rendered once per process.
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Response

from paydesk.api.moneroo.envelope import MonerooRoute, success
from paydesk.api.moneroo.responses import method_object
from paydesk.checkout.methods import load_method_catalogue

router = APIRouter(route_class=MonerooRoute, tags=["Moneroo"])

PAYMENT_MESSAGE = "Payment methods fetched successfully"
PAYOUT_MESSAGE = "Payout methods fetched successfully"


@cache
def _rendered(payout: bool) -> bytes:
    catalogue = load_method_catalogue()
    methods = catalogue.payout_methods if payout else catalogue.payment_methods
    data = [method_object(method, catalogue, payout=payout) for method in methods]
    return bytes(success(PAYOUT_MESSAGE if payout else PAYMENT_MESSAGE, data).body)


def _answer(payout: bool) -> Response:
    # A fresh Response each time: middleware may add headers to it.
    return Response(_rendered(payout), media_type="application/json")


@router.get("/utils/payment/methods", summary="List the payment (collection) methods")
@router.get("/v1/utils/payment/methods", include_in_schema=False)
async def payment_methods() -> Response:
    return _answer(payout=False)


@router.get("/utils/payout/methods", summary="List the payout methods")
@router.get("/v1/utils/payout/methods", include_in_schema=False)
async def payout_methods() -> Response:
    return _answer(payout=True)
