"""Creating merchants, issuing and rotating their keys, and looking keys up fast."""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import secrets
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import Database, utcnow
from paydesk.invoices.schemas import CoinChoice, InvoiceDraft
from paydesk.merchants.models import Merchant, User
from paydesk.merchants.moneroo_keys import ensure_keys
from paydesk.vault import Vault


class KeyKind(enum.StrEnum):
    PAYMENT = "payment"
    PAYOUT = "payout"


class MerchantError(ValueError):
    pass


class ApiAccess(enum.StrEnum):
    """A project's API access: asked for with a website and a description, then granted
    by the operator (or at once on the embedded default)."""

    NONE = "none"
    REQUESTED = "requested"
    APPROVED = "approved"


class Integration(enum.StrEnum):
    API = "api"
    LINK = "link"
    PLUGIN = "plugin"


class CommissionPayer(enum.StrEnum):
    MERCHANT = "merchant"
    PAYER = "payer"


@dataclass(frozen=True, slots=True)
class IssuedMerchant:
    """A new merchant with its keys in clear text: shown once, never stored so."""

    merchant_id: uuid.UUID
    payment_key: str
    payout_key: str


@dataclass(frozen=True, slots=True)
class MerchantCredentials:
    merchant_id: uuid.UUID
    payment_key: str
    payout_key: str
    payments_blocked: bool
    payouts_blocked: bool
    #: Standard Webhooks secrets, newest first.
    webhook_secrets: tuple[str, ...] = ()
    #: The operator granted API access (a project made in the dashboard waits for it).
    api_enabled: bool = True
    preferences: MerchantPreferences | None = None

    def key(self, kind: KeyKind) -> str:
        return self.payment_key if kind is KeyKind.PAYMENT else self.payout_key


@dataclass(frozen=True, slots=True)
class MerchantPreferences:
    """What the merchant set in the dashboard for invoices that do not say otherwise."""

    default_callback_url: str | None = None
    #: The coins and networks payers may use; None: every open service.
    enabled_services: tuple[CoinChoice, ...] | None = None
    commission_payer: CommissionPayer = CommissionPayer.MERCHANT

    @classmethod
    def of(cls, merchant: Merchant) -> MerchantPreferences:
        return cls(
            default_callback_url=merchant.default_callback_url,
            enabled_services=(
                None
                if merchant.enabled_services is None
                else tuple(CoinChoice(**choice) for choice in merchant.enabled_services)
            ),
            commission_payer=CommissionPayer(merchant.commission_payer),
        )

    def apply(self, draft: InvoiceDraft, given: Collection[str] = ()) -> InvoiceDraft:
        """The draft with the merchant's defaults where the request (whose fields are
        `given`) left them out, and the merchant's coin choice as a limit."""
        changes: dict[str, Any] = {}
        if draft.url_callback is None and self.default_callback_url:
            changes["url_callback"] = self.default_callback_url
        if "subtract" not in given and self.commission_payer is CommissionPayer.PAYER:
            changes["subtract"] = 100
        if self.enabled_services is not None:
            changes["allowed_services"] = list(self.enabled_services)
        return replace(draft, **changes) if changes else draft


def generate_api_key() -> str:
    return secrets.token_urlsafe(48)


#: Secrets kept at once: the new one and the one receivers may still verify with.
WEBHOOK_SECRETS_KEPT = 2


def generate_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _seal_secrets(vault: Vault, values: list[str]) -> str:
    return vault.encrypt(json.dumps(values))


def _open_secrets(vault: Vault, sealed: str | None) -> tuple[str, ...]:
    return tuple(json.loads(vault.decrypt(sealed))) if sealed else ()


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email or len(email) > 254:
        raise MerchantError(f"not an email address: {email!r}")
    return email


async def get_or_create_user(session: AsyncSession, email: str) -> User:
    email = normalize_email(email)
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email)
        session.add(user)
        await session.flush()
    return user


async def create_merchant(
    session: AsyncSession,
    vault: Vault,
    *,
    name: str,
    email: str | None = None,
    user: User | None = None,
    api_access: ApiAccess = ApiAccess.APPROVED,
) -> IssuedMerchant:
    """A project with its keys. The operator's CLI names the owner by email; the
    dashboard passes the signed-in user, and its projects start without API access."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise MerchantError("a merchant name is 1 to 100 characters")
    if user is None:
        if email is None:
            raise MerchantError("a merchant needs an owner")
        user = await get_or_create_user(session, email)
    payment_key, payout_key = generate_api_key(), generate_api_key()
    merchant = Merchant(
        user_id=user.id,
        name=name,
        api_access=api_access.value,
        payment_key_encrypted=vault.encrypt(payment_key),
        payout_key_encrypted=vault.encrypt(payout_key),
        webhook_secrets_encrypted=_seal_secrets(vault, [generate_webhook_secret()]),
    )
    session.add(merchant)
    await session.flush()
    await ensure_keys(session, vault, merchant)
    return IssuedMerchant(merchant.id, payment_key, payout_key)


async def list_merchants(session: AsyncSession) -> list[tuple[Merchant, User]]:
    rows = await session.execute(
        select(Merchant, User).join(User, Merchant.user_id == User.id).order_by(Merchant.created_at)
    )
    return [(merchant, user) for merchant, user in rows]


async def rotate_key(
    session: AsyncSession,
    vault: Vault,
    merchant_id: uuid.UUID,
    kind: KeyKind,
    *,
    payout_hold: timedelta = timedelta(0),
) -> str:
    """Replace one key; the old one stops working at once on this process and within the
    credential cache's lifetime on the others. A new payout key holds payouts for
    `payout_hold` (whoever changed the key may not be the merchant)."""
    merchant = await session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise MerchantError(f"no merchant {merchant_id}")
    key = generate_api_key()
    if kind is KeyKind.PAYMENT:
        merchant.payment_key_encrypted = vault.encrypt(key)
    else:
        merchant.payout_key_encrypted = vault.encrypt(key)
        if payout_hold > timedelta(0):
            merchant.payouts_held_until = utcnow() + payout_hold
    await session.flush()
    return key


async def set_blocked(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    *,
    payments: bool | None = None,
    payouts: bool | None = None,
) -> Merchant:
    """Stop (or allow again) a merchant's new invoices and its money leaving: the API
    answers "You are forbidden" within the credential cache's lifetime."""
    merchant = await session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise MerchantError(f"no merchant {merchant_id}")
    if payments is not None:
        merchant.payments_blocked = payments
    if payouts is not None:
        merchant.payouts_blocked = payouts
    await session.flush()
    return merchant


async def webhook_secrets(
    session: AsyncSession, vault: Vault, merchant_id: uuid.UUID, *, rotate: bool = False
) -> tuple[str, ...]:
    """The merchant's webhook secrets, newest first; `rotate` puts a new one in front and
    keeps the previous one, so receivers can switch without missing a delivery."""
    merchant = await session.get(Merchant, merchant_id, with_for_update=rotate)
    if merchant is None:
        raise MerchantError(f"no merchant {merchant_id}")
    current = list(_open_secrets(vault, merchant.webhook_secrets_encrypted))
    if rotate or not current:
        current = [generate_webhook_secret(), *current][:WEBHOOK_SECRETS_KEPT]
        merchant.webhook_secrets_encrypted = _seal_secrets(vault, current)
        await session.flush()
    return tuple(current)


async def load_credentials(
    session: AsyncSession, vault: Vault, merchant_id: uuid.UUID
) -> MerchantCredentials | None:
    row = (
        await session.execute(
            select(
                Merchant.payment_key_encrypted,
                Merchant.payout_key_encrypted,
                Merchant.payments_blocked,
                Merchant.payouts_blocked,
                Merchant.webhook_secrets_encrypted,
                Merchant.api_access,
                Merchant.default_callback_url,
                Merchant.enabled_services,
                Merchant.commission_payer,
            ).where(Merchant.id == merchant_id)
        )
    ).first()
    if row is None:
        return None
    return MerchantCredentials(
        merchant_id=merchant_id,
        payment_key=vault.decrypt(row.payment_key_encrypted),
        payout_key=vault.decrypt(row.payout_key_encrypted),
        payments_blocked=row.payments_blocked,
        payouts_blocked=row.payouts_blocked,
        webhook_secrets=_open_secrets(vault, row.webhook_secrets_encrypted),
        api_enabled=row.api_access == ApiAccess.APPROVED,
        preferences=MerchantPreferences.of(row),  # type: ignore[arg-type]
    )


class CredentialsCache:
    """Decrypted merchant keys, kept for a short time so that signed requests do not pay a
    database round trip and a decryption each. Unknown merchants are cached too, so a
    flood of made-up ids does not reach the database."""

    def __init__(self, db: Database, vault: Vault, ttl_seconds: float, size: int = 10_000):
        self._db = db
        self._vault = vault
        self._cache: TTLCache[uuid.UUID, MerchantCredentials | None] = TTLCache(
            maxsize=size, ttl=ttl_seconds
        )
        self._loading: dict[uuid.UUID, asyncio.Lock] = {}

    async def get(self, merchant_id: uuid.UUID) -> MerchantCredentials | None:
        try:
            return self._cache[merchant_id]
        except KeyError:
            pass
        # One load per merchant at a time: a burst of requests (or a batch of webhook
        # deliveries) for a merchant whose entry just expired waits for a single load.
        lock = self._loading.setdefault(merchant_id, asyncio.Lock())
        try:
            async with lock:
                try:
                    return self._cache[merchant_id]
                except KeyError:
                    pass
                async with self._db.reader() as session:
                    credentials = await load_credentials(session, self._vault, merchant_id)
                self._cache[merchant_id] = credentials
                return credentials
        finally:
            if not lock.locked() and self._loading.get(merchant_id) is lock:
                del self._loading[merchant_id]

    def invalidate(self, merchant_id: uuid.UUID) -> None:
        self._cache.pop(merchant_id, None)


async def request_api_access(
    session: AsyncSession, merchant: Merchant, *, website: str, description: str, approve: bool
) -> None:
    """Record the project's request (its website and what it sells); granted at once when
    the operator lets requests through (`approve`), else by `paydesk merchant approve`."""
    website = website.strip()
    description = description.strip()
    parts = urlsplit(website)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(website) > 255:
        raise MerchantError("Enter your website's address, starting with https://.")
    if not 10 <= len(description) <= 500:
        raise MerchantError("Describe the project in 10 to 500 characters.")
    merchant.website = website
    merchant.description = description
    merchant.api_requested_at = utcnow()
    if merchant.api_access != ApiAccess.APPROVED:
        merchant.api_access = (ApiAccess.APPROVED if approve else ApiAccess.REQUESTED).value
    await session.flush()


async def approve_api_access(session: AsyncSession, merchant_id: uuid.UUID) -> Merchant:
    merchant = await session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise MerchantError(f"no merchant {merchant_id}")
    merchant.api_access = ApiAccess.APPROVED.value
    await session.flush()
    return merchant


MAX_NOTIFICATION_EMAILS = 5


async def save_preferences(
    session: AsyncSession,
    merchant: Merchant,
    *,
    default_callback_url: str | None,
    enabled: list[dict[str, str]] | None,
    commission_payer: str,
    notification_emails: str,
    customer_receipts: bool,
    merchant_notices: bool,
) -> None:
    """The dashboard's settings, checked as a whole: nothing is saved when one is wrong."""
    if default_callback_url is not None:
        parts = urlsplit(default_callback_url)
        if (parts.scheme not in ("http", "https") or not parts.hostname
                or len(default_callback_url) > 255):  # fmt: skip
            raise MerchantError("The callback URL must be an http(s) URL of at most 255 "
                                "characters.")  # fmt: skip
    if enabled is not None and not enabled:
        raise MerchantError("Keep at least one coin and network enabled.")
    try:
        payer = CommissionPayer(commission_payer)
    except ValueError:
        raise MerchantError("Choose who pays the commission.") from None
    addresses = [part.strip() for part in notification_emails.replace(";", ",").split(",")]
    addresses = [normalize_email(part) for part in addresses if part]
    if len(addresses) > MAX_NOTIFICATION_EMAILS:
        raise MerchantError(f"At most {MAX_NOTIFICATION_EMAILS} notification addresses.")
    merchant.default_callback_url = default_callback_url
    merchant.enabled_services = enabled
    merchant.commission_payer = payer.value
    merchant.notification_emails = ", ".join(addresses) or None
    merchant.checkout_customer_receipts = customer_receipts
    merchant.checkout_merchant_notices = merchant_notices
    await session.flush()
