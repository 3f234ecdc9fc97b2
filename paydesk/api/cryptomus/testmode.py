"""Test mode on the built-in devnet: pay an invoice, mine, reorganise — signed with the
payment key like every Cryptomus call. These are not Cryptomus endpoints (Cryptomus has no
test chain); they let an integrator see every status and webhook before going live, and
they answer only while the devnet network is enabled."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from paydesk.api.cryptomus.errors import CryptomusError, CryptomusRoute, ok
from paydesk.api.cryptomus.router import context_of, endpoint_doc, signed_request
from paydesk.api.cryptomus.schemas import (
    Boolean,
    CurrencyCode,
    InvoiceLookupRequest,
    PositiveAmount,
)
from paydesk.api.cryptomus.validation import RequestModel, integer_type, validate
from paydesk.chains.devnet import DEVNET, DevnetError
from paydesk.chains.models import DevnetBlock
from paydesk.merchants.service import KeyKind
from paydesk.money import fixed

router = APIRouter(route_class=CryptomusRoute, tags=["Test mode (devnet)"])

Blocks = integer_type(1, 100)


class DevnetPayRequest(InvoiceLookupRequest):
    amount: PositiveAmount | None = None
    currency: CurrencyCode | None = None
    late: Boolean | None = None


class DevnetMineRequest(RequestModel):
    blocks: Blocks | None = None


class DevnetReorgRequest(RequestModel):
    blocks: Blocks
    drop: Boolean | None = None


class DevnetTransferResult(BaseModel):
    txid: str
    address: str
    amount: str
    currency: str
    network: str


class DevnetBlockResult(BaseModel):
    height: int
    hash: str


def _require_devnet(request: Request) -> None:
    if not context_of(request).addresses.serves(DEVNET):
        raise CryptomusError("The devnet is switched off on this server")


def _blocks(blocks: list[DevnetBlock]) -> list[dict[str, Any]]:
    return [{"height": b.height, "hash": b.hash} for b in blocks]


@router.post(
    "/v1/devnet/pay",
    summary="Pay a devnet invoice (test mode)",
    description="Sends the invoice's coin to its address on devnet: by default what is "
    "still due; `amount` to under- or overpay, `currency` to send another coin, `late` to "
    "let the invoice expire first. The transfer waits in the mempool for the next block; "
    "the watcher then moves the invoice exactly as a real chain would.",
    **endpoint_doc(DevnetPayRequest, DevnetTransferResult),
)
async def pay(request: Request) -> Response:
    _require_devnet(request)
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    body = validate(DevnetPayRequest, signed.data)
    async with context.db.transaction() as session:
        invoice = await context.invoices.find(session, signed.merchant_id, **body.target())
        try:
            sent = await context.devnet.pay_invoice(
                session,
                invoice,
                context.invoices,
                amount=body.amount,
                currency=body.currency,
                late=bool(body.late),
            )
        except DevnetError as exc:
            raise CryptomusError(str(exc)) from None
        return ok(
            {
                "txid": sent.txid,
                "address": sent.to_address,
                "amount": fixed(sent.amount, context.catalogue.precision(sent.currency)),
                "currency": sent.currency,
                "network": DEVNET,
            }
        )


@router.post(
    "/v1/devnet/mine",
    summary="Mine devnet blocks now (test mode)",
    **endpoint_doc(DevnetMineRequest, list[DevnetBlockResult], body_required=False),
)
async def mine(request: Request) -> Response:
    _require_devnet(request)
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    body = validate(DevnetMineRequest, signed.data)
    async with context.db.transaction() as session:
        return ok(_blocks(await context.devnet.mine(session, body.blocks or 1)))


@router.post(
    "/v1/devnet/reorg",
    summary="Reorganise the devnet's last blocks (test mode)",
    description="Replaces the last `blocks` blocks by a longer branch. Their transfers go "
    "back into the new branch, or with `drop` vanish (a double spend): credited payments in "
    "them are reversed and the invoices' statuses and webhooks follow.",
    **endpoint_doc(DevnetReorgRequest, list[DevnetBlockResult]),
)
async def reorg(request: Request) -> Response:
    _require_devnet(request)
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    body = validate(DevnetReorgRequest, signed.data)
    async with context.db.transaction() as session:
        try:
            blocks = await context.devnet.reorganize(session, body.blocks, drop=bool(body.drop))
        except DevnetError as exc:
            raise CryptomusError(str(exc)) from None
        return ok(_blocks(blocks))
