"""Cryptomus static wallet endpoints (spec 6): thin translations over `paydesk.wallets`."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from paydesk.api.cryptomus.errors import CryptomusError, CryptomusRoute, ok
from paydesk.api.cryptomus.responses import (
    QrResult,
    WalletBlockResult,
    WalletRefundResult,
    WalletResult,
)
from paydesk.api.cryptomus.router import context_of, endpoint_doc, signed_request
from paydesk.api.cryptomus.schemas import (
    WalletBlockRequest,
    WalletCreateRequest,
    WalletQrRequest,
    WalletRefundRequest,
)
from paydesk.api.cryptomus.validation import validate
from paydesk.chains.uri import payment_uri
from paydesk.merchants.service import KeyKind
from paydesk.money import fixed
from paydesk.web.qr import qr_png_data_uri

router = APIRouter(route_class=CryptomusRoute, tags=["Cryptomus static wallets"])


@router.post(
    "/v1/wallet",
    summary="Create a static wallet",
    description="A permanent deposit address for one `order_id`, coin and network; every "
    "transfer to it is credited to the merchant's balance and announced by a `wallet` "
    "webhook. The same `order_id` returns the same wallet.",
    **endpoint_doc(WalletCreateRequest, WalletResult),
)
async def create_wallet(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    if signed.credentials.payments_blocked:
        raise CryptomusError("You are forbidden")
    body = validate(WalletCreateRequest, signed.data)
    async with context.db.transaction() as session:
        created = await context.wallets.create(
            session,
            signed.merchant_id,
            currency=body.currency,
            network=body.network,
            order_id=body.order_id,
            url_callback=body.url_callback,
            from_referral_code=body.from_referral_code,
        )
        wallet = created.wallet
        balance_uuid = await context.wallets.balance_uuid(session, wallet)
    return ok(
        WalletResult(
            wallet_uuid=str(balance_uuid),
            uuid=str(wallet.uuid),
            address=wallet.address,
            network=wallet.network,
            currency=wallet.currency,
            url=f"{context.settings.base_url}/wallet/{wallet.uuid}",
        )
    )


@router.post(
    "/v1/wallet/qr",
    summary="QR code of a static wallet",
    description="A PNG as a `data:` URI with the wallet's payment URI (no amount).",
    **endpoint_doc(WalletQrRequest, QrResult),
)
async def wallet_qr(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    body = validate(WalletQrRequest, signed.data)
    async with context.db.reader() as session:
        wallet = await context.wallets.find(
            session, signed.merchant_id, wallet_uuid=body.wallet_address_uuid
        )
    network = context.catalogue.network(wallet.network)
    service = context.catalogue.service(wallet.currency, wallet.network)
    text = payment_uri(network, service, wallet.address, None) if network else wallet.address
    image = await asyncio.to_thread(qr_png_data_uri, text)
    return ok(QrResult(image=image))


@router.post(
    "/v1/wallet/block-address",
    summary="Block a static wallet",
    description="Later deposits are held instead of credited; with `is_force_refund` each "
    "one is sent back to its sender. When both ids are given, `order_id` wins.",
    **endpoint_doc(WalletBlockRequest, WalletBlockResult),
)
async def block_wallet(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    body = validate(WalletBlockRequest, signed.data)
    lookup = {"order_id": body.order_id} if body.order_id else {"wallet_uuid": body.uuid}
    async with context.db.transaction() as session:
        wallet = await context.wallets.find(session, signed.merchant_id, lock=True, **lookup)
        wallet = await context.wallets.block(
            session, wallet, force_refund=bool(body.is_force_refund)
        )
        return ok(WalletBlockResult(uuid=str(wallet.uuid), status="blocked"))


@router.post(
    "/v1/wallet/blocked-address-refund",
    summary="Refund what a blocked static wallet holds",
    description="Everything deposited since the block, less the network fee, to `address`; "
    "once per wallet. When both ids are given, `uuid` wins.",
    **endpoint_doc(WalletRefundRequest, WalletRefundResult),
)
async def refund_blocked_wallet(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    body = validate(WalletRefundRequest, signed.data)
    lookup = {"wallet_uuid": body.uuid} if body.uuid else {"order_id": body.order_id}
    async with context.db.transaction() as session:
        wallet = await context.wallets.find(session, signed.merchant_id, lock=True, **lookup)
        payout = await context.wallets.refund_blocked(session, wallet, body.address)
        places = context.catalogue.precision(payout.payer_currency)
        return ok(
            WalletRefundResult(
                commission=fixed(payout.commission, places),
                amount=fixed(payout.payer_amount, places),
            )
        )
