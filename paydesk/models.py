"""Every ORM model, imported in one place so the metadata is complete (Alembic, tests)."""

from paydesk.chains.models import AddressCounter, DepositAddress
from paydesk.discounts.models import PaymentDiscount
from paydesk.idempotency.models import IdempotencyRecord
from paydesk.invoices.models import Invoice
from paydesk.merchants.models import Merchant, User
from paydesk.rates.models import StoredRate

__all__ = [
    "AddressCounter",
    "DepositAddress",
    "IdempotencyRecord",
    "Invoice",
    "Merchant",
    "PaymentDiscount",
    "StoredRate",
    "User",
]
