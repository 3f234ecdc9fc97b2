"""Every ORM model, imported in one place so the metadata is complete (Alembic, tests)."""

from paydesk.accounts.models import AccountToken, LoginFailure, UserSession
from paydesk.chains.models import (
    AddressCounter,
    ChainBlock,
    ChainCursor,
    DepositAddress,
    DevnetBlock,
    DevnetTransaction,
    MasterSeed,
    MerchantXpub,
)
from paydesk.checkout.models import CheckoutCustomer, CheckoutPayment
from paydesk.checkout.webhook_endpoints import MonerooWebhookEndpoint
from paydesk.deposits.models import Deposit
from paydesk.discounts.models import PaymentDiscount
from paydesk.idempotency.models import IdempotencyRecord
from paydesk.invoices.models import Invoice
from paydesk.ledger.models import Account, JournalTransaction, Posting
from paydesk.links.models import PaymentLink
from paydesk.merchants.models import Merchant, User
from paydesk.notifications.models import EmailMessage
from paydesk.payouts.models import Payout, PayoutAddress, PayoutLane
from paydesk.rates.models import StoredRate
from paydesk.sweeps.models import Sweep, SweepTopUp
from paydesk.wallets.models import StaticWallet
from paydesk.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent

__all__ = [
    "Account",
    "AccountToken",
    "AddressCounter",
    "ChainBlock",
    "ChainCursor",
    "CheckoutCustomer",
    "CheckoutPayment",
    "Deposit",
    "DepositAddress",
    "DevnetBlock",
    "DevnetTransaction",
    "EmailMessage",
    "IdempotencyRecord",
    "Invoice",
    "JournalTransaction",
    "LoginFailure",
    "MasterSeed",
    "Merchant",
    "MerchantXpub",
    "MonerooWebhookEndpoint",
    "PaymentDiscount",
    "PaymentLink",
    "Payout",
    "PayoutAddress",
    "PayoutLane",
    "Posting",
    "StaticWallet",
    "StoredRate",
    "Sweep",
    "SweepTopUp",
    "User",
    "UserSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
]
