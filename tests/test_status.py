"""The invoice status table, enumerated."""

from __future__ import annotations

import pytest

from paydesk.invoices.status import (
    FINAL,
    ON_EXPIRY,
    TRANSITIONS,
    InvalidTransition,
    InvoiceStatus,
    check_transition,
    is_final,
)

S = InvoiceStatus


def test_every_status_has_a_row():
    assert set(TRANSITIONS) == set(InvoiceStatus)


def test_vocabulary_is_cryptomus():
    assert {s.value for s in InvoiceStatus} == {
        "check", "process", "confirm_check", "wrong_amount_waiting", "paid", "paid_over",
        "wrong_amount", "cancel", "fail", "system_fail", "refund_process", "refund_fail",
        "refund_paid", "locked",
    }  # fmt: skip


@pytest.mark.parametrize("current", list(InvoiceStatus))
@pytest.mark.parametrize("target", list(InvoiceStatus))
def test_transition_table_is_enforced(current, target):
    if target in TRANSITIONS[current]:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current, target)


def test_final_statuses():
    assert not is_final("check") and not is_final("confirm_check") and not is_final("locked")
    assert is_final("paid") and is_final("cancel") and is_final("refund_paid")
    assert all(is_final(target) for target in ON_EXPIRY.values())
    assert S.CHECK not in FINAL


def test_terminal_statuses_go_nowhere():
    for status in (S.FAIL, S.SYSTEM_FAIL, S.REFUND_PAID):
        assert TRANSITIONS[status] == frozenset()


SETTLED = {S.PAID, S.PAID_OVER, S.WRONG_AMOUNT}


def test_only_an_expired_unpaid_invoice_can_be_renewed():
    renewable = [
        s for s, targets in TRANSITIONS.items()
        if S.CHECK in targets and s in FINAL and s not in SETTLED
    ]  # fmt: skip
    assert renewable == [S.CANCEL]


def test_settled_invoices_move_to_refunds_or_as_deposits_change():
    recomputed = SETTLED | {S.CHECK, S.CANCEL, S.CONFIRM_CHECK, S.WRONG_AMOUNT_WAITING}
    for status in SETTLED:
        assert TRANSITIONS[status] == {S.REFUND_PROCESS} | (recomputed - {status})


def test_a_payment_after_expiry_settles_a_cancelled_invoice():
    assert TRANSITIONS[S.CANCEL] == {S.CHECK} | SETTLED
