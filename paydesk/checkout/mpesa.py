"""M-Pesa Kenya (`mpesa_ke`) through Safaricom's Daraja API: M-Pesa Express, the STK push.

Daraja pushes a payment prompt to the payer's phone (`processrequest`), then posts the
outcome to the attempt's callback URL; an STK Push Query (`stkpushquery`) asks for it again.
Every call carries a bearer token from the app's consumer key and secret (cached until
shortly before it expires) and a password derived from the short code, its passkey and a
timestamp in Kenya time.

Amounts: Daraja takes whole shillings only. A KES amount with cents is refused (a failed
attempt, no prompt sent) rather than rounded: rounding up would charge the payer more than
the payment says, rounding down would credit the merchant less, and either way the payment's
amount would no longer be what was collected.

Daraja does not sign its callbacks, so by default a callback is believed only once an STK
Push Query confirms it (`mpesa_verify_callbacks`).
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

import httpx
import structlog

from paydesk.checkout.connectors import (
    Attempt,
    AttemptResult,
    CallbackResult,
    ConnectorUnavailable,
)
from paydesk.checkout.methods import Method
from paydesk.config import Settings

log = structlog.get_logger(__name__)

METHOD: Final = "mpesa_ke"
CURRENCY: Final = "KES"
#: Kenya keeps East Africa Time all year (no daylight saving): Daraja's timestamps use it.
EAT: Final = timezone(timedelta(hours=3), "EAT")

OAUTH_PATH: Final = "/oauth/v1/generate"
PUSH_PATH: Final = "/mpesa/stkpush/v1/processrequest"
QUERY_PATH: Final = "/mpesa/stkpushquery/v1/query"

#: Renew the token this long before Daraja says it expires (clocks and transit differ).
TOKEN_MARGIN_SECONDS: Final = 60.0
#: Daraja's `expires_in` when it leaves it out (its tokens last an hour).
DEFAULT_TOKEN_SECONDS: Final = 3599.0
#: Error codes meaning the bearer token was not accepted: fetch a new one and try once more.
TOKEN_REFUSED: Final = frozenset({"404.001.03", "401.002.01"})
#: The STK Push Query's documented answer while the payer has not finished yet.
STILL_PROCESSING_ERROR: Final = "500.001.1001"
#: Result codes a query gives for a prompt still open ("still under processing").
STILL_PROCESSING_RESULTS: Final = frozenset({"4999"})
#: Error-code families of an overloaded or unreachable Daraja (system busy, spike arrest,
#: internal error, service unreachable): nothing was decided, try again later.
TRANSIENT_ERRORS: Final = ("500.002.", "500.003.")
#: Daraja's limits on the free-text fields of a push.
ACCOUNT_REFERENCE_MAX: Final = 12
TRANSACTION_DESC_MAX: Final = 13

#: The usual result codes, as a word for `gateway_status` (others are just "failed").
RESULT_STATUS: Final[dict[str, str]] = {
    "1": "insufficient_balance",
    "1019": "expired",
    "1032": "cancelled",
    "1037": "unreachable",
    "2001": "wrong_pin",
}

_SEPARATORS = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"[0-9]+")
_RECEIPT = re.compile(r"[A-Za-z0-9]{1,20}")


# ------------------------------------------------------------------------- helpers
def normalize_msisdn(phone: str | None) -> str | None:
    """A Safaricom number as Daraja wants it (2547XXXXXXXX or 2541XXXXXXXX), from the
    ways people write it (07..., 7..., +254 7..., 00254..., 01...); None if it is not one."""
    if phone is None:
        return None
    compact = _SEPARATORS.sub("", phone.strip())
    if compact.startswith("+"):
        compact = compact[1:]
        if not compact.startswith("254"):
            return None
    elif compact.startswith("00254"):
        compact = compact[2:]
    if not _DIGITS.fullmatch(compact):
        return None
    if len(compact) == 12 and compact.startswith("254"):
        national = compact[3:]
    elif len(compact) == 10 and compact.startswith("0"):
        national = compact[1:]
    elif len(compact) == 9:
        national = compact
    else:
        return None
    if national[0] not in "17":
        return None
    return "254" + national


def whole_shillings(amount: Decimal) -> int | None:
    """The amount as Daraja's integer `Amount`, or None when it has cents (see the module
    docstring: refused, never rounded)."""
    if not amount.is_finite() or amount != amount.to_integral_value():
        return None
    return int(amount)


def daraja_timestamp(now: datetime) -> str:
    """YYYYMMDDHHMMSS in Kenya time, as the password and `Timestamp` need it."""
    return now.astimezone(EAT).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """Daraja's `Password`: base64 of short code, passkey and timestamp run together."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode("ascii")


def account_reference(payment_id: str) -> str:
    """At most 12 letters and digits the payer sees as the account: the payment id's
    random part (its last characters), so the merchant can find the payment from it."""
    reference = "".join(ch for ch in payment_id if ch.isascii() and ch.isalnum())
    return reference[-ACCOUNT_REFERENCE_MAX:] or "Paydesk"


def transaction_desc(description: str) -> str:
    """At most 13 plain characters of the payment's description (Daraja refuses longer)."""
    plain = " ".join(
        "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in description).split()
    )
    return plain[:TRANSACTION_DESC_MAX].rstrip() or "Payment"


def _result_code(value: Any) -> str | None:
    """Daraja sends result codes as numbers in callbacks and as strings in answers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return str(int(value.strip()))
    return None


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _daraja_error(body: dict[str, Any]) -> tuple[str, str] | None:
    """Daraja's error body (`requestId`, `errorCode`, `errorMessage`), if this is one."""
    code = _text(body.get("errorCode"))
    if code is None:
        return None
    return code, _text(body.get("errorMessage")) or "M-Pesa refused the request"


def _unavailable(code: str) -> bool:
    """An error that decides nothing about the payment: Daraja busy, or still refusing a
    freshly issued token."""
    return code.startswith(TRANSIENT_ERRORS) or code in TOKEN_REFUSED


def _outcome(checkout_id: str, code: str, description: Any, receipt: str | None) -> AttemptResult:
    """A final M-Pesa result as an attempt result (the id stays the CheckoutRequestID:
    the checkout service finds the payment by it)."""
    if code == "0":
        status = f"completed:{receipt}" if receipt else "completed"
        return AttemptResult("success", checkout_id, status)
    return AttemptResult(
        "failed",
        checkout_id,
        RESULT_STATUS.get(code, "failed"),
        failure_message=_text(description) or f"M-Pesa result {code}",
        failure_error_code=code,
        failure_error_type="mpesa",
    )


def parse_callback(body: Any) -> CallbackResult | None:
    """Daraja's STK callback as a final result; None for anything else (not a callback,
    malformed, not final, or a success without its receipt number)."""
    envelope = body.get("Body") if isinstance(body, dict) else None
    stk = envelope.get("stkCallback") if isinstance(envelope, dict) else None
    if not isinstance(stk, dict):
        return None
    checkout_id = _text(stk.get("CheckoutRequestID"))
    code = _result_code(stk.get("ResultCode"))
    if checkout_id is None or len(checkout_id) > 128 or code is None:
        return None
    if code in STILL_PROCESSING_RESULTS:
        return None
    receipt = None
    if code == "0":
        metadata = stk.get("CallbackMetadata")
        items = metadata.get("Item") if isinstance(metadata, dict) else None
        if not isinstance(items, list):
            return None
        values = {
            item["Name"]: item.get("Value")
            for item in items
            if isinstance(item, dict) and isinstance(item.get("Name"), str)
        }
        receipt = values.get("MpesaReceiptNumber")
        if not isinstance(receipt, str) or not _RECEIPT.fullmatch(receipt):
            return None
    return CallbackResult(checkout_id, _outcome(checkout_id, code, stk.get("ResultDesc"), receipt))


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ----------------------------------------------------------------------- connector
class MpesaConnector:
    """Collects `mpesa_ke` payments by STK push on the configured Daraja host.

    The base URL decides sandbox or real money, so it serves both environments of a
    payment; it is enabled only once consumer key, secret, short code and passkey are set.
    """

    short_code = "mpesa"

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`client` (owned by the caller) is reused when given, else each call opens its
        own; `clock` times the token cache, `now` makes the timestamps (tests move them)."""
        self._settings = settings
        self._base_url = settings.mpesa_base_url.rstrip("/")
        self._client = client
        self._clock = clock
        self._now = now
        self._token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        s = self._settings
        return bool(
            s.mpesa_consumer_key
            and s.mpesa_consumer_key.get_secret_value()
            and s.mpesa_consumer_secret
            and s.mpesa_consumer_secret.get_secret_value()
            and s.mpesa_shortcode
            and s.mpesa_passkey
            and s.mpesa_passkey.get_secret_value()
        )

    @property
    def environment(self) -> str:
        """The mode whose payments this Daraja account collects."""
        if self._settings.mpesa_environment:
            return self._settings.mpesa_environment
        return "sandbox" if "sandbox." in self._base_url else "live"

    def handles(self, method: Method, environment: str) -> bool:
        return method.short_code == METHOD and self.enabled and environment == self.environment

    # ---------------------------------------------------------------- operations
    async def start(self, attempt: Attempt) -> AttemptResult:
        if not self.enabled:
            raise ConnectorUnavailable("M-Pesa is not configured")
        refused = self._refusal(attempt)
        if refused is not None:
            return refused
        phone = normalize_msisdn(attempt.phone)
        amount = whole_shillings(attempt.amount)
        assert phone is not None and amount is not None  # checked by _refusal
        timestamp, password = self._credentials()
        shortcode = self._shortcode
        payload = {
            "BusinessShortCode": shortcode,
            "Password": password,
            "Timestamp": timestamp,
            "TransactionType": self._settings.mpesa_transaction_type,
            "Amount": amount,
            "PartyA": phone,
            "PartyB": self._settings.mpesa_party_b or shortcode,
            "PhoneNumber": phone,
            "CallBackURL": attempt.callback_url,
            "AccountReference": account_reference(attempt.payment_id),
            "TransactionDesc": transaction_desc(attempt.description),
        }
        status, body = await self._post(PUSH_PATH, payload)
        error = _daraja_error(body)
        if error is not None:
            code, message = error
            if _unavailable(code):
                raise ConnectorUnavailable(f"M-Pesa is unavailable ({code}: {message})")
            log.warning(
                "mpesa.push_refused",
                payment_id=attempt.payment_id,
                error_code=code,
                request_id=_text(body.get("requestId")),
            )
            return AttemptResult(
                "failed",
                None,
                "rejected",
                failure_message=message,
                failure_error_code=code,
                failure_error_type="mpesa",
            )
        if status >= 500:
            raise ConnectorUnavailable(f"M-Pesa answered HTTP {status}")
        response_code = _result_code(body.get("ResponseCode"))
        checkout_id = _text(body.get("CheckoutRequestID"))
        if status == 200 and response_code == "0" and checkout_id is not None:
            return AttemptResult("pending", checkout_id, "stk_sent")
        if response_code not in (None, "0"):
            log.warning(
                "mpesa.push_refused", payment_id=attempt.payment_id, error_code=response_code
            )
            return AttemptResult(
                "failed",
                checkout_id,
                "rejected",
                failure_message=_text(body.get("ResponseDescription"))
                or f"M-Pesa response {response_code}",
                failure_error_code=response_code,
                failure_error_type="mpesa",
            )
        raise ConnectorUnavailable(f"M-Pesa answered HTTP {status} without a CheckoutRequestID")

    async def refresh(self, gateway_transaction_id: str, environment: str) -> AttemptResult | None:
        """The STK Push Query's answer: final, or None while the prompt is still open (or
        when Daraja will not say)."""
        if not self.enabled:
            return None
        timestamp, password = self._credentials()
        payload = {
            "BusinessShortCode": self._shortcode,
            "Password": password,
            "Timestamp": timestamp,
            "CheckoutRequestID": gateway_transaction_id,
        }
        status, body = await self._post(QUERY_PATH, payload)
        error = _daraja_error(body)
        if error is not None:
            code, message = error
            if code == STILL_PROCESSING_ERROR:
                return None
            if _unavailable(code):
                raise ConnectorUnavailable(f"M-Pesa is unavailable ({code}: {message})")
            # A refused query says nothing about the payment: it stays as it is.
            log.warning(
                "mpesa.query_refused",
                checkout_request_id=gateway_transaction_id,
                error_code=code,
                request_id=_text(body.get("requestId")),
            )
            return None
        if status >= 500:
            raise ConnectorUnavailable(f"M-Pesa answered HTTP {status}")
        code = _result_code(body.get("ResultCode"))
        if status != 200 or code is None:
            raise ConnectorUnavailable(f"M-Pesa answered HTTP {status} without a ResultCode")
        if code in STILL_PROCESSING_RESULTS:
            return None
        return _outcome(gateway_transaction_id, code, body.get("ResultDesc"), None)

    async def callback(self, body: Any) -> CallbackResult | None:
        """Daraja's callback, confirmed by a query unless `mpesa_verify_callbacks` is off
        (then anyone who learns a CheckoutRequestID could post a result)."""
        parsed = parse_callback(body)
        if parsed is None or not self._settings.mpesa_verify_callbacks:
            return parsed
        if not self.enabled:
            return None
        try:
            confirmed = await self.refresh(parsed.gateway_transaction_id, "")
        except ConnectorUnavailable as exc:
            log.warning(
                "mpesa.callback_unconfirmed",
                checkout_request_id=parsed.gateway_transaction_id,
                reason=str(exc),
            )
            return None
        if confirmed is None:
            return None
        if confirmed.outcome != parsed.result.outcome:
            log.warning(
                "mpesa.callback_contradicted",
                checkout_request_id=parsed.gateway_transaction_id,
                callback_outcome=parsed.result.outcome,
                query_outcome=confirmed.outcome,
            )
            return CallbackResult(parsed.gateway_transaction_id, confirmed)
        return parsed  # keeps the receipt number, which only the callback carries

    # ------------------------------------------------------------------ plumbing
    @property
    def _shortcode(self) -> str:
        assert self._settings.mpesa_shortcode is not None
        return self._settings.mpesa_shortcode

    def _credentials(self) -> tuple[str, str]:
        """A fresh timestamp and the password that goes with it."""
        assert self._settings.mpesa_passkey is not None
        timestamp = daraja_timestamp(self._now())
        passkey = self._settings.mpesa_passkey.get_secret_value()
        return timestamp, stk_password(self._shortcode, passkey, timestamp)

    def _refusal(self, attempt: Attempt) -> AttemptResult | None:
        """What stops a push before it is sent: no prompt for a request Daraja would refuse."""

        def refuse(message: str, code: str) -> AttemptResult:
            return AttemptResult(
                "failed",
                None,
                None,
                failure_message=message,
                failure_error_code=code,
                failure_error_type="invalid_request",
            )

        if attempt.currency.upper() != CURRENCY:
            return refuse(f"M-Pesa Kenya collects KES, not {attempt.currency}.", "currency")
        if normalize_msisdn(attempt.phone) is None:
            return refuse(
                "The phone number is not a Kenyan mobile number M-Pesa can prompt "
                "(e.g. 0712345678 or 254712345678).",
                "invalid_phone",
            )
        amount = whole_shillings(attempt.amount)
        if amount is None:
            return refuse(
                "M-Pesa collects whole shillings only: the amount has cents.",
                "amount_not_whole",
            )
        if amount < 1:
            return refuse("M-Pesa collects at least 1 KES.", "amount_too_small")
        return None

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is not None:
            yield self._client
            return
        timeout = httpx.Timeout(self._settings.mpesa_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout) as client:
            yield client

    async def _send(
        self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """One request; a Daraja that cannot be reached is ConnectorUnavailable (the error
        names no URL parameters or headers: the token travels in a header)."""
        timeout = self._settings.mpesa_timeout_seconds
        try:
            return await client.request(
                method, f"{self._base_url}{path}", timeout=timeout, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise ConnectorUnavailable(f"M-Pesa did not answer within {timeout:g}s") from exc
        except httpx.HTTPError as exc:
            raise ConnectorUnavailable(
                f"M-Pesa could not be reached ({type(exc).__name__})"
            ) from exc

    async def _post(self, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST with a bearer token; a refused token is renewed once (Daraja may drop a
        token before its announced expiry)."""
        async with self._session() as client:
            for first in (True, False):
                token = await self._access_token(client)
                response = await self._send(
                    client, "POST", path, json=payload, headers={"Authorization": f"Bearer {token}"}
                )
                body = _json_object(response)
                error = _daraja_error(body)
                refused = response.status_code == 401 or (
                    error is not None and error[0] in TOKEN_REFUSED
                )
                if refused and first:
                    self._forget_token(token)
                    continue
                return response.status_code, body
        raise AssertionError("unreachable")  # pragma: no cover

    async def _access_token(self, client: httpx.AsyncClient) -> str:
        """The cached token, or a new one (one fetch at a time: concurrent pushes share it)."""
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token[1]:
                return self._token[0]
            s = self._settings
            assert s.mpesa_consumer_key is not None and s.mpesa_consumer_secret is not None
            auth = httpx.BasicAuth(
                s.mpesa_consumer_key.get_secret_value(), s.mpesa_consumer_secret.get_secret_value()
            )
            response = await self._send(
                client, "GET", OAUTH_PATH, params={"grant_type": "client_credentials"}, auth=auth
            )
            body = _json_object(response)
            token = _text(body.get("access_token"))
            if response.status_code != 200 or token is None:
                error = _daraja_error(body)
                detail = f", {error[0]}: {error[1]}" if error else ""
                raise ConnectorUnavailable(
                    f"M-Pesa refused the Daraja app's credentials (HTTP {response.status_code}"
                    f"{detail})"
                )
            lifetime = _seconds(body.get("expires_in"))
            margin = min(TOKEN_MARGIN_SECONDS, lifetime / 2)
            self._token = (token, self._clock() + lifetime - margin)
            return token

    def _forget_token(self, token: str) -> None:
        if self._token is not None and self._token[0] == token:
            self._token = None


def _seconds(value: Any) -> float:
    """Daraja's `expires_in` (a string such as "3599")."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_SECONDS
    return seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_TOKEN_SECONDS
