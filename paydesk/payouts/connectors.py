"""Payout connectors: what actually pays a processor payout (the Moneroo dialect's).

The mirror of the checkout's collection connectors: a connector starts a payout with a
processor and reports where it stands, `pending` until the processor has finished, then
`success` or `failed`; a pending payout is asked about again (`refresh`). The payout core
turns these outcomes into the payout's status, its ledger entries and its events.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from paydesk.checkout.connectors import Outcome, normalize_test_number
from paydesk.checkout.methods import Method


@dataclass(frozen=True, slots=True)
class PayoutOrder:
    """One payout as a connector needs it."""

    #: The payout's public id: the reference a processor knows it by, so a payout asked
    #: about again after a crash is found rather than paid twice.
    payout_id: str
    environment: str
    method: Method
    amount: Decimal
    currency: str
    description: str
    #: The method's recipient fields, as digits (`msisdn`, `account_number`).
    recipient: dict[str, str]


@dataclass(frozen=True, slots=True)
class PayoutResult:
    outcome: Outcome
    #: The processor's own id of the transaction, and its own word for its state.
    gateway_transaction_id: str | None = None
    gateway_status: str | None = None
    failure_message: str | None = None
    failure_error_code: str | None = None
    failure_error_type: str | None = None


class PayoutConnector(Protocol):
    #: The gateway's short code: the payout's `network`, and the processor holdings it
    #: pays from.
    short_code: str

    def handles(self, method: Method, environment: str) -> bool: ...

    async def start(self, order: PayoutOrder) -> PayoutResult:
        """Ask the processor to pay; raise ConnectorUnavailable when it cannot be asked."""
        ...

    async def refresh(
        self, order: PayoutOrder, gateway_transaction_id: str | None
    ) -> PayoutResult | None:
        """The processor's current answer about a payout started before (None: no news).
        Without a transaction id the start's answer was lost: look it up by reference."""
        ...


# ---------------------------------------------------------------------- sandbox
#: The sandbox's test numbers and the outcome each gives a payout (spec 10: the payout
#: table, which differs from the collections' one on 8162 and 8163).
TEST_PAYOUT_NUMBERS: dict[str, Outcome] = {
    "4149518161": "success",
    "4149518162": "failed",
    "4149518163": "pending",
}
TEST_PAYOUT_FAILURE = (
    "The test payout failed: only the sandbox's test account numbers succeed (4149518161), "
    "fail on purpose (4149518162) or stay pending (4149518163)."
)


class SandboxPayoutConnector:
    """The sandbox's test payout gateway: the recipient's account number decides the
    outcome, every other number fails, a pending one stays pending (so merchants can test
    how they handle it). No money leaves anywhere."""

    short_code = "moneroo_payout_test"

    def handles(self, method: Method, environment: str) -> bool:
        return environment == "sandbox" and method.kind == "test"

    async def start(self, order: PayoutOrder) -> PayoutResult:
        number = normalize_test_number(order.recipient.get("account_number"))
        outcome = TEST_PAYOUT_NUMBERS.get(number or "")
        reference = f"test_{order.payout_id}"
        if outcome == "success":
            return PayoutResult("success", reference, "test_success")
        if outcome == "pending":
            return PayoutResult("pending", reference, "test_pending")
        if outcome == "failed":
            return PayoutResult(
                "failed", reference, "test_failed",
                failure_message="The test payout failed on purpose (test number 4149518162).",
                failure_error_code="test_failure", failure_error_type="test",
            )  # fmt: skip
        return PayoutResult(
            "failed", reference, "test_failed", failure_message=TEST_PAYOUT_FAILURE,
            failure_error_code="test_number", failure_error_type="test",
        )  # fmt: skip

    async def refresh(
        self, order: PayoutOrder, gateway_transaction_id: str | None
    ) -> PayoutResult | None:
        if gateway_transaction_id is None:
            return await self.start(order)  # nothing moves: asking again is the lookup
        return None  # a pending test payout stays pending
