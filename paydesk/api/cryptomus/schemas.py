"""Request bodies of the Cryptomus dialect, with the spec's rules and limits."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from paydesk.api.cryptomus.validation import (
    Boolean,
    RequestModel,
    UuidText,
    array_rule,
    fail,
    integer_type,
    numeric_type,
    string_type,
)
from paydesk.invoices.schemas import CoinChoice, InvoiceDraft

COURSE_SOURCES = ("Binance", "BinanceP2P", "Exmo", "Kucoin")

#: Cryptomus reports and reads times in UTC+3.
CRYPTOMUS_ZONE = timezone(timedelta(hours=3))

OrderId = string_type(min_length=1, max_length=128, alpha_dash=True, numbers_as_text=True)
CurrencyCode = string_type(min_length=1, max_length=16)
NetworkCode = string_type(min_length=1, max_length=32)
Url = string_type(min_length=6, max_length=255, url=True)
Text255 = string_type(max_length=255)
#: Amounts are stored exactly up to 30 integer digits.
MAX_AMOUNT = Decimal(10**30 - 1)
PositiveAmount = numeric_type(positive=True, maximum=MAX_AMOUNT)
Lifetime = integer_type(300, 43200)
Subtract = integer_type(0, 100)
AccuracyPercent = numeric_type(minimum=Decimal(0), maximum=Decimal(5))
DiscountPercent = integer_type(-99, 100)
CourseSource = string_type(min_length=4, max_length=20, one_of=COURSE_SOURCES)
Cursor = string_type(max_length=2048, numbers_as_text=True)
Txid = string_type(min_length=1, max_length=128)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{1,2}:\d{2}:\d{2}$")


def _history_date(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        raise fail("validation.regex")
    try:
        local = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError as exc:
        raise fail("validation.regex") from exc
    return local.replace(tzinfo=CRYPTOMUS_ZONE)


HistoryDate = Annotated[
    datetime,
    BeforeValidator(_history_date),
    WithJsonSchema({"type": "string", "pattern": _DATE.pattern, "example": "2023-05-04 00:00:00"}),
]


class CoinItem(RequestModel):
    currency: CurrencyCode
    network: NetworkCode | None = None

    def to_choice(self) -> CoinChoice:
        return CoinChoice(self.currency, self.network)


CoinList = Annotated[list[CoinItem], array_rule()]


class CreateInvoiceRequest(RequestModel):
    """`POST /v1/payment`."""

    amount: PositiveAmount
    currency: CurrencyCode
    order_id: OrderId
    network: NetworkCode | None = None
    url_return: Url | None = None
    url_success: Url | None = None
    url_callback: Url | None = None
    is_payment_multiple: Boolean | None = None
    lifetime: Lifetime | None = None
    to_currency: CurrencyCode | None = None
    subtract: Subtract | None = None
    accuracy_payment_percent: AccuracyPercent | None = None
    additional_data: Text255 | None = None
    currencies: CoinList | None = None
    except_currencies: CoinList | None = None
    course_source: CourseSource | None = None
    from_referral_code: Text255 | None = None
    discount_percent: DiscountPercent | None = None
    is_refresh: Boolean | None = None

    def to_draft(self) -> InvoiceDraft:
        return InvoiceDraft(
            amount=self.amount,
            currency=self.currency,
            order_id=self.order_id,
            network=self.network,
            to_currency=self.to_currency,
            url_return=self.url_return,
            url_success=self.url_success,
            url_callback=self.url_callback,
            is_payment_multiple=True
            if self.is_payment_multiple is None
            else self.is_payment_multiple,
            lifetime=3600 if self.lifetime is None else self.lifetime,
            subtract=self.subtract or 0,
            accuracy_payment_percent=self.accuracy_payment_percent or Decimal(0),
            additional_data=self.additional_data,
            currencies=[c.to_choice() for c in self.currencies] if self.currencies else None,
            except_currencies=[c.to_choice() for c in self.except_currencies]
            if self.except_currencies
            else None,
            course_source=self.course_source,
            from_referral_code=self.from_referral_code,
            discount_percent=self.discount_percent,
            is_refresh=bool(self.is_refresh),
        )


class ResendRequest(RequestModel):
    """`POST /v1/payment/resend` (and `/v2/…`, which some clients call with a `txid`)."""

    required_without = ("uuid", "order_id", "txid")

    uuid: UuidText | None = None
    order_id: OrderId | None = None
    txid: Txid | None = None


PAYMENT_TEST_STATUSES = (
    "process", "check", "paid", "paid_over", "fail", "wrong_amount", "cancel", "system_fail",
    "refund_process", "refund_fail", "refund_paid",
)  # fmt: skip
PAYOUT_TEST_STATUSES = ("process", "check", "paid", "fail", "cancel", "system_fail")
TestCallbackUrl = string_type(min_length=6, max_length=150, url=True)
TestOrderId = string_type(min_length=1, max_length=32, alpha_dash=True, numbers_as_text=True)
PaymentTestStatus = string_type(one_of=PAYMENT_TEST_STATUSES)
PayoutTestStatus = string_type(one_of=PAYOUT_TEST_STATUSES)


class TestWebhookRequest(RequestModel):
    """`POST /v1/test-webhook/payment|wallet|payout`."""

    url_callback: TestCallbackUrl
    currency: CurrencyCode
    network: NetworkCode
    uuid: UuidText | None = None
    order_id: TestOrderId | None = None
    status: PaymentTestStatus | None = None


class PayoutTestWebhookRequest(TestWebhookRequest):
    status: PayoutTestStatus | None = None  # type: ignore[assignment]


class TransferRequest(RequestModel):
    """`POST /v1/transfer/to-personal` and `/v1/transfer/to-business`."""

    amount: PositiveAmount
    currency: CurrencyCode


class DiscountSetRequest(RequestModel):
    """`POST /v1/payment/discount/set`."""

    currency: CurrencyCode
    network: NetworkCode
    discount_percent: DiscountPercent


class InvoiceLookupRequest(RequestModel):
    """`POST /v1/payment/info`: by uuid or order_id; order_id wins when both are given."""

    required_without = ("uuid", "order_id")

    uuid: UuidText | None = None
    order_id: OrderId | None = None

    def target(self) -> dict[str, Any]:
        if self.order_id is not None:
            return {"order_id": self.order_id}
        return {"invoice_uuid": self.uuid}


class PaymentQrRequest(RequestModel):
    """`POST /v1/payment/qr`."""

    merchant_payment_uuid: UuidText


class HistoryRequest(RequestModel):
    """`POST /v1/payment/list`; `cursor` may also come in the body (official SDKs)."""

    date_from: HistoryDate | None = None
    date_to: HistoryDate | None = None
    cursor: Cursor | None = None


class EmptyRequest(RequestModel):
    """Endpoints without parameters: any body that is empty, `{}`, `[]` or `null`."""


# ------------------------------------------------------------------ static wallets
WalletOrderId = string_type(min_length=1, max_length=100, alpha_dash=True, numbers_as_text=True)
RefundAddress = string_type(min_length=10, max_length=128, alpha_dash=True)


class WalletCreateRequest(RequestModel):
    """`POST /v1/wallet`."""

    currency: CurrencyCode
    network: NetworkCode
    order_id: WalletOrderId
    url_callback: Url | None = None
    from_referral_code: Text255 | None = None


class WalletQrRequest(RequestModel):
    """`POST /v1/wallet/qr`."""

    wallet_address_uuid: UuidText


class WalletBlockRequest(RequestModel):
    """`POST /v1/wallet/block-address`: order_id wins when both ids are given."""

    required_without = ("uuid", "order_id")

    uuid: UuidText | None = None
    order_id: OrderId | None = None
    is_force_refund: Boolean | None = None


class WalletRefundRequest(RequestModel):
    """`POST /v1/wallet/blocked-address-refund`: uuid wins when both ids are given."""

    required_without = ("uuid", "order_id")

    uuid: UuidText | None = None
    order_id: OrderId | None = None
    address: RefundAddress


# ------------------------------------------------------------------ payouts
PAYOUT_COURSE_SOURCES = ("Binance", "BinanceP2p", "Exmo", "Kucoin")
PayoutOrderId = string_type(min_length=1, max_length=100, alpha_dash=True, numbers_as_text=True)
PayoutAddressText = string_type(min_length=1, max_length=128)
PayoutCourseSource = string_type(min_length=4, max_length=20, one_of=PAYOUT_COURSE_SOURCES)
FromCurrency = string_type(one_of=("USDT",))
Priority = string_type(
    min_length=4, max_length=11, one_of=("recommended", "economy", "high", "highest")
)
Memo = string_type(min_length=1, max_length=30)


class PayoutCreateRequest(RequestModel):
    """`POST /v1/payout`."""

    amount: PositiveAmount
    currency: CurrencyCode
    order_id: PayoutOrderId
    address: PayoutAddressText
    is_subtract: Boolean
    network: NetworkCode | None = None
    url_callback: Url | None = None
    to_currency: CurrencyCode | None = None
    course_source: PayoutCourseSource | None = None
    from_currency: FromCurrency | None = None
    priority: Priority | None = None
    memo: Memo | None = None


class PayoutLookupRequest(RequestModel):
    """`POST /v1/payout/info`: order_id wins when both are given."""

    required_without = ("uuid", "order_id")

    uuid: UuidText | None = None
    order_id: OrderId | None = None
