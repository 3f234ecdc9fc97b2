"""Cryptomus payment endpoints. Each one authenticates, validates, calls a service and
wraps the result; the logic lives in the services."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from paydesk.api import openapi
from paydesk.api.cryptomus.auth import SignedRequest, authenticate
from paydesk.api.cryptomus.errors import CryptomusError, CryptomusRoute, ok
from paydesk.api.cryptomus.responses import (
    BalanceResult,
    Balances,
    DiscountResult,
    DiscountSetResult,
    ExchangeRateResult,
    Failure,
    FieldFailure,
    InvoiceResult,
    PageResult,
    QrResult,
    ServerFailure,
    ServiceResult,
    Success,
    TransferResult,
    WalletBalance,
    course_text,
    decode_cursor,
    invoice_result,
    page_result,
    service_result,
)
from paydesk.api.cryptomus.schemas import (
    CreateInvoiceRequest,
    DiscountSetRequest,
    EmptyRequest,
    HistoryRequest,
    InvoiceLookupRequest,
    PaymentQrRequest,
    PayoutTestWebhookRequest,
    ResendRequest,
    TestWebhookRequest,
    TransferRequest,
)
from paydesk.api.cryptomus.validation import validate
from paydesk.api.cryptomus.webhooks import (
    payment_payload,
    payout_payload,
    signed_body,
    test_payment_snapshot,
    test_payout_snapshot,
)
from paydesk.api.idempotent import has_idempotency_key, run_idempotent
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.discounts import service as discounts
from paydesk.invoices.service import payment_uri_of
from paydesk.invoices.service import snapshot as invoice_snapshot
from paydesk.invoices.status import InvoiceStatus, is_final
from paydesk.ledger.balances import CurrencyNotServed, Wallet
from paydesk.merchants.service import KeyKind
from paydesk.money import MONEY, fixed
from paydesk.pagination import Cursor, HistoryFilter
from paydesk.payouts.service import PayoutNotFound
from paydesk.payouts.service import snapshot as payout_snapshot
from paydesk.wallets.service import WalletNotFound
from paydesk.web.qr import qr_png_data_uri
from paydesk.webhooks import service as webhooks
from paydesk.webhooks import signing

PER_PAGE = 15
#: Invoices whose webhook can be resent (spec 3.5).
RESENDABLE = {InvoiceStatus.PAID, InvoiceStatus.PAID_OVER, InvoiceStatus.WRONG_AMOUNT}

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


def endpoint_doc(model: type, result: Any, *, body_required: bool = True) -> dict[str, Any]:
    return {
        "openapi_extra": {
            **openapi.json_body(model, required=body_required),
            "security": [{"merchant": [], "sign": []}],
        },
        "responses": {200: {"model": Success[result]}, **ERRORS},
        "response_class": Response,
    }


router = APIRouter(route_class=CryptomusRoute, tags=["Cryptomus payments"])

#: `?cursor=` of the history endpoints.
CursorParameter = Annotated[
    str | None, Query(max_length=2048, description="`nextCursor` or `previousCursor`")
]


def context_of(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def history_query(signed: SignedRequest, cursor: str | None) -> tuple[Cursor | None, HistoryFilter]:
    """A history request's page (the query's cursor, else the body's) and date bounds."""
    query = validate(HistoryRequest, signed.data)
    position = decode_cursor(cursor or query.cursor)
    return position, HistoryFilter(created_from=query.date_from, created_to=query.date_to)


async def signed_request(request: Request, key: KeyKind, *, read_only: bool) -> SignedRequest:
    return await authenticate(request, context_of(request), key, read_only=read_only)


@router.post(
    "/v1/payment",
    summary="Create an invoice",
    description="Idempotent per `order_id`; also honours an `Idempotency-Key` header.",
    **endpoint_doc(CreateInvoiceRequest, InvoiceResult),
)
async def create_invoice(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    if signed.credentials.payments_blocked:
        raise CryptomusError("You are forbidden")
    draft = validate(CreateInvoiceRequest, signed.data).to_draft()
    if signed.credentials.preferences is not None:
        draft = signed.credentials.preferences.apply(draft, signed.data.keys())
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
    **endpoint_doc(InvoiceLookupRequest, InvoiceResult),
)
async def invoice_info(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    lookup = validate(InvoiceLookupRequest, signed.data)
    async with context.db.transaction() as session:
        invoice = await context.invoices.find(session, signed.merchant_id, **lookup.target())
        return ok(invoice_result(invoice, context.catalogue, context.settings.base_url))


@router.post(
    "/v1/payment/qr",
    summary="QR code of an invoice's address",
    description="A PNG as a `data:` URI. It carries a payment URI with the address and the "
    "payer's amount (BIP21 on Bitcoin-family chains, EIP-681 on EVM chains) or, on other "
    "networks, the bare address. `The address was not found` while the payer has not "
    "chosen a coin yet.",
    **endpoint_doc(PaymentQrRequest, QrResult),
)
async def payment_qr(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    body = validate(PaymentQrRequest, signed.data)
    async with context.db.transaction() as session:
        invoice = await context.invoices.find(
            session, signed.merchant_id, invoice_uuid=body.merchant_payment_uuid
        )
        text = payment_uri_of(invoice, context.catalogue)
    if text is None:
        raise CryptomusError("The address was not found")
    # Some milliseconds of CPU: not on the event loop.
    image = await asyncio.to_thread(qr_png_data_uri, text)
    return ok(QrResult(image=image))


@router.post(
    "/v1/payment/list",
    summary="Invoice history",
    description="Newest first, 15 per page. The next page is `?cursor=<nextCursor>` "
    "(a `cursor` in the body is read too).",
    **endpoint_doc(HistoryRequest, PageResult[InvoiceResult], body_required=False),
)
async def invoice_history(request: Request, cursor: CursorParameter = None) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    position, filters = history_query(signed, cursor)
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
    **endpoint_doc(EmptyRequest, list[ServiceResult], body_required=False),
)
async def payment_services(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    validate(EmptyRequest, signed.data)
    return ok([service_result(service) for service in context.catalogue.services])


@router.get(
    "/v1/exchange-rate/{currency}/list",
    summary="Exchange rates of a currency",
    description="Public. What one unit of `currency` buys in every currency Paydesk can "
    "price it in, from the default rate sources.",
    responses={200: {"model": Success[list[ExchangeRateResult]]}, 422: {"model": Failure}},
    response_class=Response,
)
async def exchange_rates(
    request: Request, currency: Annotated[str, Path(max_length=16, examples=["ETH"])]
) -> Response:
    context = context_of(request)
    found = context.catalogue.currency(currency)
    if found is None:
        raise CryptomusError("The currency was not found")
    book = await context.rates.book()
    items = []
    for quote in context.catalogue.codes:
        if quote == found.code:
            continue
        rate = book.convert(found.code, quote)
        if rate is not None:
            items.append(
                ExchangeRateResult(from_=found.code, to=quote, course=course_text(rate.value))
            )
    return ok(items)


@router.post(
    "/v1/payment/discount/list",
    summary="Discounts per coin and network",
    description="Every coin and network this server accepts, with the merchant's discount "
    "(positive) or surcharge (negative) in percent; 0 where none is set.",
    **endpoint_doc(EmptyRequest, list[DiscountResult], body_required=False),
)
async def discount_list(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    validate(EmptyRequest, signed.data)
    async with context.db.reader() as session:
        current = await discounts.load(session, signed.merchant_id)
    return ok(
        [
            DiscountResult(
                currency=service.currency,
                network=service.network,
                discount=current.get((service.currency, service.network), 0),
            )
            for service in context.catalogue.services
        ]
    )


@router.post(
    "/v1/payment/discount/set",
    summary="Set the discount of a coin and network",
    description="Applied to invoices paid with that coin on that network which carry no "
    "`discount_percent` of their own.",
    **endpoint_doc(DiscountSetRequest, DiscountSetResult),
)
async def discount_set(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    body = validate(DiscountSetRequest, signed.data)
    service = context.catalogue.service(body.currency, body.network)
    if service is None:
        raise CryptomusError(f"The service {body.currency.upper()} {body.network} was not found")
    async with context.db.transaction() as session:
        await discounts.set_discount(
            session, signed.merchant_id, service.currency, service.network, body.discount_percent
        )
    context.discounts.invalidate(signed.merchant_id)
    return ok(
        DiscountSetResult(
            currency=service.currency, network=service.network, discount=str(body.discount_percent)
        )
    )


@router.post(
    "/v1/balance",
    summary="Business and personal balances",
    description='From the ledger. `balance_usd` is at the default rates ("0.00" when '
    "no fresh rate exists).",
    **endpoint_doc(EmptyRequest, list[BalanceResult], body_required=False),
)
async def balance(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=True)
    validate(EmptyRequest, signed.data)
    async with context.db.reader() as session:
        wallets = await context.balances.wallets(session, signed.merchant_id)
    book = await context.rates.book()

    def shown(wallet: Wallet) -> WalletBalance:
        usd = book.convert(wallet.currency, "USD")
        return WalletBalance(
            uuid=str(wallet.uuid),
            balance=fixed(wallet.balance, 8),
            currency_code=wallet.currency,
            balance_usd=fixed(MONEY.multiply(wallet.balance, usd.value) if usd else Decimal(0), 2),
        )

    merchant = [shown(wallet) for wallet in wallets.business]
    user = [shown(wallet) for wallet in wallets.personal]
    return ok([BalanceResult(balance=Balances(merchant=merchant, user=user))])


async def _transfer(request: Request, *, to_personal: bool) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYOUT, read_only=False)
    if signed.credentials.payouts_blocked:
        raise CryptomusError("You are forbidden")
    body = validate(TransferRequest, signed.data)
    try:
        async with context.db.transaction() as session:
            moved = await context.balances.transfer(
                session, signed.merchant_id, body.currency, body.amount, to_personal=to_personal
            )
    except CurrencyNotServed:
        raise CryptomusError(
            "No found user wallet" if to_personal else "Merchant wallet not found"
        ) from None
    return ok(
        TransferResult(
            user_wallet_transaction_uuid=str(moved.personal_posting),
            user_wallet_balance=fixed(moved.personal_balance, 8),
            merchant_transaction_uuid=str(moved.business_posting),
            merchant_balance=fixed(moved.business_balance, 8),
        )
    )


@router.post(
    "/v1/transfer/to-personal",
    summary="Business wallet → personal wallet",
    description="Signed with the payout key. `Not enough funds` when the business wallet "
    "cannot cover the amount.",
    **endpoint_doc(TransferRequest, TransferResult),
)
async def transfer_to_personal(request: Request) -> Response:
    return await _transfer(request, to_personal=True)


@router.post(
    "/v1/transfer/to-business",
    summary="Personal wallet → business wallet",
    description="Signed with the payout key. `Not enough funds` when the personal wallet "
    "cannot cover the amount.",
    **endpoint_doc(TransferRequest, TransferResult),
)
async def transfer_to_business(request: Request) -> Response:
    return await _transfer(request, to_personal=False)


@router.post(
    "/v1/payment/resend",
    summary="Resend an invoice's webhook",
    description="The latest webhook of a settled invoice (paid, paid_over, wrong_amount) "
    "again, to its `url_callback`; at most 10 times per invoice.",
    **endpoint_doc(ResendRequest, list[Any]),
)
@router.post("/v2/payment/resend", include_in_schema=False)
async def resend_webhook(request: Request) -> Response:
    context = context_of(request)
    signed = await signed_request(request, KeyKind.PAYMENT, read_only=False)
    lookup = validate(ResendRequest, signed.data)
    async with context.db.transaction() as session:
        invoice = await context.invoices.find_for_resend(
            session, signed.merchant_id, invoice_uuid=lookup.uuid, order_id=lookup.order_id,
            txid=lookup.txid,
        )  # fmt: skip
        if invoice is None:
            raise CryptomusError("Payment not found")
        if invoice.status not in RESENDABLE or not invoice.url_callback:
            raise CryptomusError("Notification not found")
        try:
            await webhooks.resend_latest(session, invoice.uuid, utcnow())
        except webhooks.NothingToResend:
            raise CryptomusError("Notification not found") from None
        except webhooks.TooManyResends:
            raise CryptomusError("Too much resend") from None
    return ok([])


async def _test_webhook(request: Request, kind: str) -> Response:
    """Send one synthetic, correctly signed webhook now; nothing is stored."""
    context = context_of(request)
    payout = kind == "payout"
    signed = await signed_request(
        request, KeyKind.PAYOUT if payout else KeyKind.PAYMENT, read_only=True
    )
    body = validate(PayoutTestWebhookRequest if payout else TestWebhookRequest, signed.data)
    service = context.catalogue.service(body.currency, body.network)
    if service is None:
        raise CryptomusError("Payout service not found" if payout else "Payment service not found")
    status = (body.status or "paid").lower()
    final = is_final(status)
    referenced = body.uuid is not None or body.order_id is not None
    if payout:
        snapshot = test_payout_snapshot(service.currency, service.network, status, final=final)
        if referenced:
            async with context.db.reader() as session:
                try:
                    found = await context.payouts.find(
                        session, signed.merchant_id, payout_uuid=body.uuid, order_id=body.order_id
                    )
                except PayoutNotFound:
                    raise CryptomusError("Not found payout") from None
            snapshot = {**payout_snapshot(found), "status": status, "is_final": final}
        payload = payout_payload(snapshot, context.catalogue)
    elif kind == "wallet":
        snapshot = test_payment_snapshot(service.currency, service.network, status, final=final)
        wallet_address_uuid = str(uuid.uuid4())
        if referenced:
            lookup = {"wallet_uuid": body.uuid} if body.uuid else {"order_id": body.order_id}
            async with context.db.reader() as session:
                try:
                    wallet = await context.wallets.find(session, signed.merchant_id, **lookup)
                except WalletNotFound:
                    raise CryptomusError("Not found wallet") from None
            wallet_address_uuid = str(wallet.uuid)
            snapshot.update(
                order_id=wallet.order_id,
                currency=wallet.currency,
                payer_currency=wallet.currency,
                network=wallet.network,
            )
        payload = payment_payload(snapshot, context.catalogue, kind="wallet",
                                  wallet_address_uuid=wallet_address_uuid)  # fmt: skip
    else:
        if referenced:
            async with context.db.reader() as session:
                invoice = await context.invoices.find_for_resend(
                    session, signed.merchant_id, invoice_uuid=body.uuid, order_id=body.order_id
                )
            if invoice is None:
                raise CryptomusError("Not found payment")
            snapshot = {**invoice_snapshot(invoice), "status": status, "is_final": final}
        else:
            snapshot = test_payment_snapshot(service.currency, service.network, status, final=final)
        payload = payment_payload(snapshot, context.catalogue)
    key = signed.credentials.payout_key if payout else signed.credentials.payment_key
    content = signed_body(payload, key)
    headers = signing.headers(
        signed.credentials.webhook_secrets, f"test_{uuid.uuid4()}", int(utcnow().timestamp()),
        content,
    )  # fmt: skip
    await context.sender.send(body.url_callback, content, headers)
    return ok([])


@router.post(
    "/v1/test-webhook/payment",
    summary="Send a test payment webhook",
    description="Of a named invoice (with the given status) or a made-up one.",
    **endpoint_doc(TestWebhookRequest, list[Any]),
)
async def test_webhook_payment(request: Request) -> Response:
    return await _test_webhook(request, "payment")


@router.post(
    "/v1/test-webhook/wallet",
    summary="Send a test static-wallet webhook",
    **endpoint_doc(TestWebhookRequest, list[Any]),
)
async def test_webhook_wallet(request: Request) -> Response:
    return await _test_webhook(request, "wallet")


@router.post(
    "/v1/test-webhook/payout",
    summary="Send a test payout webhook",
    description="Signed with the payout key.",
    **endpoint_doc(PayoutTestWebhookRequest, list[Any]),
)
async def test_webhook_payout(request: Request) -> Response:
    return await _test_webhook(request, "payout")
