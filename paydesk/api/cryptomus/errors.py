"""The Cryptomus envelope: `{"state":0,"result":…}` on success, the documented error
bodies otherwise, and the route class that guarantees no exception escapes as anything
else."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import to_json

from paydesk.api.cryptomus.validation import RequestInvalid
from paydesk.api.routes import guarded_route
from paydesk.catalogue.service import OutOfLimits
from paydesk.idempotency.service import IdempotencyConflict, InvalidIdempotencyKey
from paydesk.invoices.service import (
    ConversionFailed,
    CurrencyNotFound,
    InvoiceError,
    InvoiceNotFound,
    NetworkNotFound,
    ServiceUnavailable,
    ToCurrencyNotFound,
)
from paydesk.ledger.balances import TooManyDecimals
from paydesk.ledger.service import InsufficientFunds
from paydesk.money import plain
from paydesk.payouts import service as payouts
from paydesk.wallets import service as wallets

log = structlog.get_logger(__name__)

SERVER_ERROR_BODY = {"message": "Server error, #1", "code": 500, "error": None}


class CryptomusError(Exception):
    """An error with a fixed Cryptomus body."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def response(self) -> JSONResponse:
        return JSONResponse({"state": 1, "message": self.message}, status_code=self.status)


def ok(result: Any) -> Response:
    """The success envelope, serialized by pydantic-core straight to bytes."""
    return Response(
        b'{"state":0,"result":' + to_json(result, by_alias=True) + b"}",
        media_type="application/json",
    )


def validation_response(errors: dict[str, list[str]]) -> JSONResponse:
    return JSONResponse({"state": 1, "errors": errors}, status_code=422)


_MESSAGES: dict[type[InvoiceError], str] = {
    CurrencyNotFound: "The currency was not found",
    NetworkNotFound: "The network was not found",
    ServiceUnavailable: "Wallet not found",
    ToCurrencyNotFound: "Not found service to_currency",
    ConversionFailed: "Error convert to_currency",
    InvoiceNotFound: "Payment not found",
}


_PAYOUT_MESSAGES: dict[type[Exception], str] = {
    payouts.PayoutNotFound: "Payout not found",
    payouts.PayoutsForbidden: "You are forbidden",
    payouts.PayoutCurrencyNotFound: "The currency was not found",
    payouts.PayoutServiceNotFound: "The service was not found",
    payouts.ToCurrencyNotFound: "Not found service to_currency",
    payouts.ConversionFailed: "Error convert to_currency",
    payouts.AmountTooSmall: "The withdrawal amount is too small",
    payouts.AddressNotAllowed: "The address is not on the merchant's payout allowlist",
    payouts.NotPending: "The payout is not waiting for approval",
    wallets.WalletNotFound: "Not found",
    wallets.WalletServiceNotFound: "The service was not found",
    wallets.OrderIdTaken: "The order_id is already used by an invoice",
    wallets.NotBlocked: "You are forbidden",
    wallets.AlreadyRefunded: "You can withdraw only once",
    wallets.RefundInProcess: "Refund is in process",
    wallets.NothingToWithdraw: "Nothing to withdraw",
}
#: Errors reported against a field, as Laravel reports a failed rule.
_PAYOUT_FIELD_ERRORS: dict[type[Exception], tuple[str, str]] = {
    payouts.InvalidAddress: ("address", "validation.invalid_address"),
    payouts.NetworkRequired: ("network", "validation.required"),
}


def payout_error_response(exc: Exception) -> Response:
    if isinstance(exc, payouts.AmountTooLarge):
        return CryptomusError(f"Maximum amount {plain(exc.limit)} {exc.currency}").response()
    if isinstance(exc, payouts.NotEnoughToConvert):
        return CryptomusError(
            f"Not enough balance for convert {exc.source} to {exc.target}"
        ).response()
    field = _PAYOUT_FIELD_ERRORS.get(type(exc))
    if field is not None:
        return validation_response({field[0]: [field[1]]})
    return CryptomusError(_PAYOUT_MESSAGES[type(exc)]).response()


def limit_message(error: OutOfLimits) -> str:
    word = "Minimum" if error.below else "Maximum"
    return f"{word} amount {plain(error.limit)} {error.currency}"


def invoice_error_message(error: InvoiceError) -> str:
    if isinstance(error, OutOfLimits):
        return limit_message(error)
    return _MESSAGES[type(error)]


def render_exception(exc: Exception) -> Response:
    if isinstance(exc, CryptomusError):
        return exc.response()
    if isinstance(exc, RequestInvalid):
        return validation_response(exc.errors)
    if isinstance(exc, InvoiceError):
        return CryptomusError(invoice_error_message(exc)).response()
    if isinstance(exc, payouts.PayoutError | wallets.WalletError):
        return payout_error_response(exc)
    if isinstance(exc, InsufficientFunds):
        return CryptomusError("Not enough funds").response()
    if isinstance(exc, OutOfLimits):
        return CryptomusError(limit_message(exc)).response()
    if isinstance(exc, TooManyDecimals):
        return validation_response({"amount": ["validation.decimal"]})
    if isinstance(exc, IdempotencyConflict):
        return CryptomusError(
            "The Idempotency-Key was already used for a different request", 422
        ).response()
    if isinstance(exc, InvalidIdempotencyKey):
        return CryptomusError(
            "The Idempotency-Key header must be 1 to 255 visible ASCII characters", 422
        ).response()
    if isinstance(exc, RequestValidationError):
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            errors.setdefault(str(error["loc"][-1]), []).append("validation.invalid")
        return validation_response(errors)
    log.exception("cryptomus.unhandled", exc_info=exc)
    return JSONResponse(SERVER_ERROR_BODY, status_code=500)


#: Every failure inside a Cryptomus endpoint leaves as a Cryptomus body.
CryptomusRoute = guarded_route(render_exception)
