"""Everything one Paydesk process holds, built once from settings and shared by the API,
the workers and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from paydesk.catalogue.service import Catalogue, load_catalogue
from paydesk.chains.devnet import Devnet
from paydesk.chains.registry import check_watchable
from paydesk.chains.service import AddressBook, build_address_book
from paydesk.checkout.connectors import SandboxConnector
from paydesk.checkout.methods import load_method_catalogue
from paydesk.checkout.mpesa import MpesaConnector
from paydesk.checkout.service import CheckoutService
from paydesk.config import Settings
from paydesk.db import Database
from paydesk.deposits.service import DepositService
from paydesk.discounts.service import DiscountBook
from paydesk.invoices.service import InvoiceService
from paydesk.ledger.balances import Balances
from paydesk.merchants.moneroo_keys import MonerooKeyCache
from paydesk.merchants.service import CredentialsCache
from paydesk.notifications.invoices import InvoicePaidNotices
from paydesk.payouts.connectors import SandboxPayoutConnector
from paydesk.payouts.service import PayoutService
from paydesk.paypage.service import PaymentPages
from paydesk.rates.providers import REFERENCE_PROVIDERS, max_age_of, static_rates
from paydesk.rates.service import RatesService
from paydesk.vault import Vault, load_vault
from paydesk.wallets.service import WalletService
from paydesk.webhooks.sender import WebhookSender, build_sender


@dataclass
class Context:
    settings: Settings
    db: Database
    vault: Vault
    catalogue: Catalogue
    rates: RatesService
    addresses: AddressBook
    credentials: CredentialsCache
    discounts: DiscountBook
    invoices: InvoiceService
    deposits: DepositService
    balances: Balances
    payouts: PayoutService
    wallets: WalletService
    #: Hosted-checkout payments (the Moneroo dialect) and its method catalogue.
    checkout: CheckoutService
    #: Moneroo secret key → merchant and mode.
    moneroo_keys: MonerooKeyCache
    #: The built-in test chain (present even when the devnet network is switched off, so
    #: the CLI can say so instead of failing obscurely).
    devnet: Devnet
    #: What the hosted payment page shows and lets a payer do.
    payment_pages: PaymentPages
    #: Sends the test webhooks an API request asks for (deliveries use the worker's own).
    sender: WebhookSender

    async def close(self) -> None:
        await self.sender.close()
        await self.db.dispose()


def build_context(settings: Settings) -> Context:
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    vault = load_vault(settings)
    catalogue = load_catalogue(settings.networks, settings.catalogue_file)
    check_watchable(settings, catalogue)
    rates = RatesService(
        db,
        static_rates(settings.static_rates),
        cache_seconds=settings.rate_cache_seconds,
        max_age=max_age_of(settings),
        aggregate=settings.rate_aggregate,
        min_sources=settings.rate_min_sources,
        references=[p for p in settings.rate_providers if p in REFERENCE_PROVIDERS],
        exmo_source=settings.exmo_rate_source,
    )
    addresses = build_address_book(settings.networks, catalogue, vault, settings.auth_cache_seconds)
    discounts = DiscountBook(db, settings.auth_cache_seconds)
    invoices = InvoiceService(catalogue, rates, addresses, discounts)
    payouts = PayoutService(
        catalogue, rates, approval_usd=settings.payout_approval_usd,
        connectors=[SandboxPayoutConnector()],
    )  # fmt: skip
    wallets = WalletService(catalogue, rates, addresses, payouts)
    checkout = CheckoutService(
        load_method_catalogue(),
        [SandboxConnector(), MpesaConnector(settings)],
        invoices=invoices,
        base_url=settings.base_url,
        abandon_after=timedelta(minutes=settings.checkout_abandon_minutes),
    )
    invoices.listeners.append(checkout.invoice_changed)
    invoices.listeners.append(InvoicePaidNotices(settings.base_url))
    return Context(
        settings=settings,
        db=db,
        vault=vault,
        catalogue=catalogue,
        rates=rates,
        addresses=addresses,
        credentials=CredentialsCache(db, vault, settings.auth_cache_seconds),
        discounts=discounts,
        invoices=invoices,
        deposits=DepositService(catalogue, invoices, wallets),
        balances=Balances(catalogue),
        payouts=payouts,
        wallets=wallets,
        checkout=checkout,
        moneroo_keys=MonerooKeyCache(db, settings.auth_cache_seconds),
        devnet=Devnet(catalogue),
        sender=build_sender(settings),
        payment_pages=PaymentPages(
            db,
            catalogue,
            invoices,
            renewable=settings.payer_can_renew,
            test_wallet=Devnet(catalogue) if settings.shows_devnet_test_wallet else None,
        ),
    )
