"""Payment method connectors: what actually collects the money behind a checkout method.

Every method of a payment goes through one interface. A connector starts an attempt (a
mobile-money push, the sandbox's test gateway...) and reports where it stands: `pending`
while the customer or the operator has not finished, then `success` or `failed`. Later
news arrives either by the processor calling back (`callback`) or by asking it again
(`refresh`, which verify uses for a pending payment). The checkout service turns these
outcomes into the payment's status, its webhook events and the redirect to the shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from paydesk.checkout.methods import Method

Outcome = Literal["pending", "success", "failed"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at collecting a payment with a method."""

    payment_id: str
    environment: str
    method: Method
    amount: Decimal
    currency: str
    description: str
    #: Digits with the country prefix (mobile money), when the method needs one.
    phone: str | None
    #: Where the processor may call back about this attempt.
    callback_url: str


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    #: The processor's own id of the transaction, and its own word for its state.
    gateway_transaction_id: str | None = None
    gateway_status: str | None = None
    failure_message: str | None = None
    failure_error_code: str | None = None
    failure_error_type: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """What a processor's call back says, about which of its transactions."""

    gateway_transaction_id: str
    result: AttemptResult


class ConnectorUnavailable(ConnectionError):
    """The processor could not be reached or answered with an error: try again later."""


class Connector(Protocol):
    #: The gateway's short code (shown in `capture.gateway.short_code`).
    short_code: str

    def handles(self, method: Method, environment: str) -> bool: ...

    async def start(self, attempt: Attempt) -> AttemptResult: ...

    async def refresh(self, gateway_transaction_id: str, environment: str) -> AttemptResult | None:
        """The processor's current answer about a pending transaction (None: no news)."""
        ...

    async def callback(self, body: Any) -> CallbackResult | None:
        """The processor's notification parsed (None: not one of ours, or not final)."""
        ...


# ---------------------------------------------------------------------- sandbox
#: The sandbox's test numbers and the outcome each one gives (spec 10, collections).
TEST_NUMBERS: dict[str, Outcome] = {
    "4149518161": "success",
    "4149518162": "pending",
    "4149518163": "failed",
}


def normalize_test_number(phone: str | None) -> str | None:
    """A test number however it was written ((414)951-8161, +1 414 951 8161...)."""
    if phone is None:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits


class SandboxConnector:
    """The test payment gateway of sandbox mode: the phone number decides the outcome,
    every other number fails, a pending one stays pending (so merchants can test how they
    handle it)."""

    short_code = "moneroo_payment_test"

    def handles(self, method: Method, environment: str) -> bool:
        return environment == "sandbox" and method.kind == "test"

    async def start(self, attempt: Attempt) -> AttemptResult:
        number = normalize_test_number(attempt.phone)
        outcome = TEST_NUMBERS.get(number or "")
        reference = f"test_{attempt.payment_id}"
        if outcome == "success":
            return AttemptResult("success", reference, "test_success")
        if outcome == "pending":
            return AttemptResult("pending", reference, "test_pending")
        return AttemptResult(
            "failed",
            reference,
            "test_failed",
            failure_message=(
                "The test payment failed: only the sandbox's test phone numbers succeed "
                "(4149518161), stay pending (4149518162) or fail on purpose (4149518163)."
            ),
            failure_error_code="test_number",
            failure_error_type="test",
        )

    async def refresh(self, gateway_transaction_id: str, environment: str) -> AttemptResult | None:
        return None  # a pending test payment stays pending

    async def callback(self, body: Any) -> CallbackResult | None:
        return None
