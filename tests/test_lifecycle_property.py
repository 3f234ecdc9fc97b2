"""The invoice lifecycle as a state machine, driven by random chain events.

Each run creates an invoice and applies a random sequence of what a chain can do to it —
a transfer seen, confirmed, orphaned before or after it was credited, time passing beyond
expiry — through the real `InvoiceService.settle` and `status_for_payment`. Every status
change goes through `transition`, which refuses anything outside the table, and after
every event the status must be what the amounts say.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from paydesk.invoices.models import Invoice
from paydesk.invoices.service import InvoiceService, status_for_payment
from paydesk.invoices.status import FINAL, InvoiceStatus

S = InvoiceStatus
DUE = Decimal("10")
START = datetime(2026, 1, 1, tzinfo=UTC)

amounts = st.sampled_from([Decimal("1"), Decimal("4.5"), Decimal("9.9"), DUE, Decimal("12")])
events = st.lists(
    st.one_of(
        st.tuples(st.just("send"), amounts),
        st.tuples(st.just("confirm"), st.integers(0, 5)),
        st.tuples(st.just("orphan"), st.integers(0, 5)),
        st.tuples(st.just("expire"), st.just(None)),
    ),
    max_size=25,
)


def new_invoice(multiple: bool, accuracy: Decimal) -> Invoice:
    return Invoice(
        status=S.CHECK.value,
        payer_amount=DUE,
        payment_amount=Decimal(0),
        accuracy_payment_percent=accuracy,
        is_payment_multiple=multiple,
        expired_at=START + timedelta(hours=1),
        updated_at=START,
    )


@settings(max_examples=400, deadline=None)
@given(events, st.booleans(), st.sampled_from([Decimal(0), Decimal(1), Decimal(2)]))
def test_every_event_sequence_stays_inside_the_table(script, multiple, accuracy):
    service = InvoiceService.__new__(InvoiceService)  # settle needs no collaborators
    invoice = new_invoice(multiple, accuracy)
    seen: list[Decimal] = []  # transfers waiting for confirmations
    credited: list[Decimal] = []
    now = START
    for kind, value in script:
        was_final = invoice.status in FINAL
        taken_back = False
        if kind == "send":
            seen.append(value)
        elif kind == "confirm" and seen:
            credited.append(seen.pop(value % len(seen)))
        elif kind == "orphan" and (seen or credited):
            pool = seen if value % 2 == 0 and seen else credited or seen
            pool.pop(value % len(pool))
            taken_back = pool is credited
        elif kind == "expire":
            now = invoice.expired_at + timedelta(seconds=1)
        invoice.payment_amount = sum(credited, Decimal(0))
        # What DepositService does: a final invoice only reopens for money taken back.
        pending = bool(seen) and (not was_final or taken_back)
        service.settle(invoice, now, pending=pending)  # raises on a transition off the table

        status = InvoiceStatus(invoice.status)
        received = invoice.payment_amount
        tolerated = DUE - DUE * accuracy / 100
        if received > DUE:
            assert status == S.PAID_OVER
        elif received >= tolerated:
            assert status == S.PAID
        elif status == S.CONFIRM_CHECK:
            assert seen
        elif received > 0:
            expired = now >= invoice.expired_at
            expected = S.WRONG_AMOUNT_WAITING if multiple and not expired else S.WRONG_AMOUNT
            assert status == expected
        else:
            assert status in (S.CHECK, S.CANCEL)
        assert status == status_for_payment(invoice, now, pending=pending)
