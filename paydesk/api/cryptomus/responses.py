"""Response shapes of the Cryptomus dialect: field names, order and formats as the spec
shows them (amounts as strings, `expired_at` as integer seconds, times in UTC+3).

The models are both the serializers and the OpenAPI description, so the two cannot drift.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from paydesk.api.cryptomus.schemas import CRYPTOMUS_ZONE
from paydesk.api.numbers import json_number
from paydesk.catalogue.models import Service
from paydesk.catalogue.service import Catalogue
from paydesk.invoices.models import Invoice
from paydesk.invoices.status import InvoiceStatus, is_final
from paydesk.money import fixed, fixed_at_least
from paydesk.pagination import Cursor, Page
from paydesk.payouts.models import Payout
from paydesk.payouts.service import DONE, FINAL_STATUSES, SENT

CRYPTO_PLACES = 8
PERCENT_PLACES = 2

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class InvoiceResult(_Out):
    uuid: str
    order_id: str
    amount: str = Field(examples=["15.00"])
    payment_amount: str | None
    payer_amount: str | None
    discount_percent: int | None
    discount: str
    payer_currency: str | None
    currency: str
    comments: str | None = None
    merchant_amount: str | None
    commission: str | None
    network: str | None
    address: str | None
    from_: str | None = Field(alias="from")
    txid: str | None
    payment_status: InvoiceStatus
    url: str
    expired_at: int = Field(description="Unix time, seconds")
    status: InvoiceStatus
    is_final: bool
    additional_data: str | None
    created_at: str = Field(examples=["2023-11-15T01:13:20+03:00"])
    updated_at: str


class Limit(_Out):
    min_amount: str
    max_amount: str


class Commission(_Out):
    fee_amount: str
    percent: str


class ServiceResult(_Out):
    network: str
    currency: str
    is_available: bool
    limit: Limit
    commission: Commission


class ExchangeRateResult(_Out):
    from_: str = Field(alias="from")
    to: str
    course: str


class DiscountResult(_Out):
    currency: str
    network: str
    discount: int


class DiscountSetResult(_Out):
    currency: str
    network: str
    #: A string here, an integer in the list: as the spec's examples show.
    discount: str


class QrResult(_Out):
    image: str = Field(
        description="PNG of a QR code with the invoice's payment URI (BIP21, EIP-681) "
        "or, for networks without one wallets agree on, its bare address",
        examples=["data:image/png;base64,iVBORw0KGgo..."],
    )


class WalletBalance(_Out):
    uuid: str
    balance: str = Field(examples=["0.57000000"])
    currency_code: str
    #: Not in the documented example, but read unconditionally by real clients.
    balance_usd: str = Field(examples=["21375.00"])


class Balances(_Out):
    merchant: list[WalletBalance]
    user: list[WalletBalance]


class BalanceResult(_Out):
    balance: Balances


class TransferResult(_Out):
    user_wallet_transaction_uuid: str
    user_wallet_balance: str
    merchant_transaction_uuid: str
    merchant_balance: str


class WalletResult(_Out):
    wallet_uuid: str = Field(description="The merchant's balance in the coin")
    uuid: str = Field(description="The static wallet (QR, block, refund, webhooks)")
    address: str
    network: str
    currency: str
    url: str


class WalletBlockResult(_Out):
    uuid: str
    status: Literal["blocked", "active", "in_active"]


class WalletRefundResult(_Out):
    commission: str
    amount: str


class PayoutResult(_Out):
    uuid: str
    amount: str
    currency: str
    network: str = Field(description="As the request spelled it")
    address: str
    txid: str | None
    status: str
    is_final: bool
    balance: Any = Field(description="JSON number: the balance left after the payout")
    payer_currency: str
    payer_amount: Any = Field(description="JSON number: the amount in `payer_currency`")


class PayoutHistoryItem(_Out):
    uuid: str
    amount: str
    currency: str
    network: str
    address: str
    txid: str | None
    order_id: str | None
    payment_status: None = None
    status: str
    is_final: bool
    balance: str
    created_at: str
    updated_at: str


class Paginate(_Out):
    count: int
    hasPages: bool
    nextCursor: str | None
    previousCursor: str | None
    perPage: int


class PageResult(_Out, Generic[T]):
    items: list[T]
    paginate: Paginate


class PayoutPageResult(_Out):
    merchant_uuid: str
    items: list[PayoutHistoryItem]
    paginate: Paginate


class Success(_Out, Generic[T]):
    state: Literal[0] = 0
    result: T


class Failure(_Out):
    state: Literal[1] = 1
    message: str


class FieldFailure(_Out):
    state: Literal[1] = 1
    errors: dict[str, list[str]] = Field(examples=[{"amount": ["validation.required"]}])


class ServerFailure(_Out):
    message: str = "Server error, #1"
    code: int = 500
    error: None = None


def timestamp(moment: datetime) -> str:
    return moment.astimezone(CRYPTOMUS_ZONE).isoformat(timespec="seconds")


def _amount(value: Decimal | None, places: int) -> str | None:
    return None if value is None else fixed(value, places)


def invoice_result(invoice: Invoice, catalogue: Catalogue, base_url: str) -> InvoiceResult:
    payer_places = (
        catalogue.precision(invoice.payer_currency) if invoice.payer_currency else CRYPTO_PLACES
    )
    status = InvoiceStatus(invoice.status)
    return InvoiceResult(
        uuid=str(invoice.uuid),
        order_id=invoice.order_id,
        amount=fixed(invoice.amount, catalogue.precision(invoice.currency)),
        payment_amount=_amount(invoice.payment_amount, payer_places),
        payer_amount=_amount(invoice.payer_amount, payer_places),
        discount_percent=invoice.discount_percent,
        discount=fixed(invoice.discount, payer_places),
        payer_currency=invoice.payer_currency,
        currency=invoice.currency,
        merchant_amount=_amount(invoice.merchant_amount_now, payer_places),
        commission=_amount(invoice.commission_now, payer_places),
        network=invoice.network,
        address=invoice.address,
        from_=invoice.from_address,
        txid=invoice.txid,
        payment_status=status,
        url=f"{base_url}/pay/{invoice.uuid}",
        expired_at=int(invoice.expired_at.timestamp()),
        status=status,
        is_final=is_final(status),
        additional_data=invoice.additional_data,
        created_at=timestamp(invoice.created_at),
        updated_at=timestamp(invoice.updated_at),
    )


def service_result(service: Service) -> ServiceResult:
    return ServiceResult(
        network=service.network.upper(),
        currency=service.currency,
        is_available=service.available,
        limit=Limit(
            min_amount=fixed(service.min_amount, CRYPTO_PLACES),
            max_amount=fixed(service.max_amount, CRYPTO_PLACES),
        ),
        commission=Commission(
            fee_amount=fixed_at_least(service.fee_amount, PERCENT_PLACES),
            percent=fixed_at_least(service.percent, PERCENT_PLACES),
        ),
    )


def payout_service_result(service: Service) -> ServiceResult:
    return ServiceResult(
        network=service.network.upper(),
        currency=service.currency,
        is_available=service.available,
        limit=Limit(
            min_amount=fixed(service.payout_min_amount, CRYPTO_PLACES),
            max_amount=fixed(service.payout_max_amount, CRYPTO_PLACES),
        ),
        commission=Commission(
            fee_amount=fixed(service.payout_fee_amount, CRYPTO_PLACES),
            percent=fixed_at_least(service.payout_percent, PERCENT_PLACES),
        ),
    )


def payout_result(payout: Payout, catalogue: Catalogue) -> PayoutResult:
    return PayoutResult(
        uuid=str(payout.uuid),
        amount=fixed(payout.amount, catalogue.precision(payout.currency)),
        currency=payout.currency,
        network=payout.network_shown,
        address=payout.address,
        txid=payout.txid if payout.stage in (SENT, DONE) else None,
        status=payout.status,
        is_final=payout.status in FINAL_STATUSES,
        balance=json_number(payout.balance_after),
        payer_currency=payout.payer_currency,
        payer_amount=json_number(payout.payer_amount),
    )


def payout_history_item(payout: Payout, catalogue: Catalogue) -> PayoutHistoryItem:
    return PayoutHistoryItem(
        uuid=str(payout.uuid),
        amount=fixed(payout.amount, catalogue.precision(payout.currency)),
        currency=payout.currency,
        network=payout.network,
        address=payout.address,
        txid=payout.txid if payout.stage in (SENT, DONE) else None,
        order_id=payout.order_id,
        status=payout.status,
        is_final=payout.status in FINAL_STATUSES,
        balance=fixed(payout.balance_after, CRYPTO_PLACES),
        created_at=timestamp(payout.created_at),
        updated_at=timestamp(payout.updated_at),
    )


def course_text(rate: Decimal) -> str:
    """A rate as the spec prints it (8 decimals); a rate too small for 8 decimals keeps
    8 significant digits instead of reading as zero."""
    if rate >= Decimal("0.00000001"):
        return fixed(rate, CRYPTO_PLACES)
    places = CRYPTO_PLACES - rate.adjusted() - 1
    return fixed(rate, places)


def page_result(page: Page[Any], items: list[T]) -> PageResult[T]:
    return PageResult[T](
        items=items,
        paginate=Paginate(
            count=len(items),
            hasPages=page.has_pages,
            nextCursor=encode_cursor(page.next) if page.next else None,
            previousCursor=encode_cursor(page.previous) if page.previous else None,
            perPage=page.per_page,
        ),
    )


def encode_cursor(cursor: Cursor) -> str:
    """Laravel's cursor format: url-safe base64 of {"id":…,"_pointsToNextItems":…}."""
    raw = json.dumps({"id": cursor.id, "_pointsToNextItems": cursor.forward}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> Cursor | None:
    """A cursor this server issued, or None (first page) for anything else, such as the
    page numbers some SDKs send."""
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
        position, forward = data["id"], data["_pointsToNextItems"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        return None
    if not isinstance(position, int) or isinstance(position, bool) or not isinstance(forward, bool):
        return None
    return Cursor(position, forward)
