"""The invoice status vocabulary (Cryptomus' own strings) and the one transition table.

Every status change goes through `paydesk.invoices.service.InvoiceService.transition`,
which consults `TRANSITIONS`; tests enumerate the table.
"""

from __future__ import annotations

import enum


class InvoiceStatus(enum.StrEnum):
    CHECK = "check"
    PROCESS = "process"
    CONFIRM_CHECK = "confirm_check"
    WRONG_AMOUNT_WAITING = "wrong_amount_waiting"
    PAID = "paid"
    PAID_OVER = "paid_over"
    WRONG_AMOUNT = "wrong_amount"
    CANCEL = "cancel"
    FAIL = "fail"
    SYSTEM_FAIL = "system_fail"
    REFUND_PROCESS = "refund_process"
    REFUND_FAIL = "refund_fail"
    REFUND_PAID = "refund_paid"
    LOCKED = "locked"


S = InvoiceStatus

#: Paying is no longer possible (paid, expired, failed, or refunding afterwards).
FINAL: frozenset[InvoiceStatus] = frozenset(
    {
        S.PAID,
        S.PAID_OVER,
        S.WRONG_AMOUNT,
        S.CANCEL,
        S.FAIL,
        S.SYSTEM_FAIL,
        S.REFUND_PROCESS,
        S.REFUND_FAIL,
        S.REFUND_PAID,
    }
)

#: Statuses an invoice leaves when its lifetime ends, and where it goes.
ON_EXPIRY: dict[InvoiceStatus, InvoiceStatus] = {
    S.CHECK: S.CANCEL,
    S.WRONG_AMOUNT_WAITING: S.WRONG_AMOUNT,
}

_SETTLED = frozenset({S.PAID, S.PAID_OVER, S.WRONG_AMOUNT})
_IN_FLIGHT_EXITS = _SETTLED | {S.WRONG_AMOUNT_WAITING, S.FAIL, S.SYSTEM_FAIL, S.LOCKED}
#: Where deposits can move an invoice that was already final: a reversal (its block was
#: orphaned) takes money back, a late or extra payment adds some.
_RECOMPUTED = _SETTLED | {S.CHECK, S.CANCEL, S.CONFIRM_CHECK, S.WRONG_AMOUNT_WAITING}

TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    S.CHECK: frozenset({S.PROCESS, S.CONFIRM_CHECK, S.CANCEL} | _IN_FLIGHT_EXITS),
    S.PROCESS: frozenset({S.CONFIRM_CHECK, S.CANCEL} | _IN_FLIGHT_EXITS),
    # Back to unpaid when the seen transfer vanished (its block orphaned), or to `cancel`
    # when that happens after expiry.
    S.CONFIRM_CHECK: frozenset({S.CHECK, S.CANCEL} | _IN_FLIGHT_EXITS),
    S.WRONG_AMOUNT_WAITING: frozenset(
        {S.PROCESS, S.CONFIRM_CHECK, S.CHECK, S.CANCEL} | _IN_FLIGHT_EXITS
    )
    - {S.WRONG_AMOUNT_WAITING},
    S.LOCKED: frozenset({S.CHECK, S.PROCESS, S.CONFIRM_CHECK, S.FAIL} | _SETTLED),
    # `is_refresh` renews an invoice that expired unpaid; a payment arriving after expiry
    # is credited and settles it for what arrived.
    S.CANCEL: frozenset({S.CHECK} | _SETTLED),
    S.PAID: frozenset({S.REFUND_PROCESS} | (_RECOMPUTED - {S.PAID})),
    S.PAID_OVER: frozenset({S.REFUND_PROCESS} | (_RECOMPUTED - {S.PAID_OVER})),
    S.WRONG_AMOUNT: frozenset({S.REFUND_PROCESS} | (_RECOMPUTED - {S.WRONG_AMOUNT})),
    S.REFUND_PROCESS: frozenset({S.REFUND_PAID, S.REFUND_FAIL}),
    S.REFUND_FAIL: frozenset({S.REFUND_PROCESS}),
    S.REFUND_PAID: frozenset(),
    S.FAIL: frozenset(),
    S.SYSTEM_FAIL: frozenset(),
}

#: Statuses whose next status the deposits decide (`InvoiceService.settle`).
SETTLED_BY_DEPOSITS: frozenset[InvoiceStatus] = frozenset(
    {S.CHECK, S.PROCESS, S.CONFIRM_CHECK, S.WRONG_AMOUNT_WAITING, S.CANCEL} | _SETTLED
)


class InvalidTransition(ValueError):
    def __init__(self, current: InvoiceStatus, target: InvoiceStatus) -> None:
        super().__init__(f"invoice cannot go from {current} to {target}")
        self.current = current
        self.target = target


def is_final(status: InvoiceStatus | str) -> bool:
    return InvoiceStatus(status) in FINAL


def check_transition(current: InvoiceStatus | str, target: InvoiceStatus) -> None:
    current = InvoiceStatus(current)
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(current, target)
