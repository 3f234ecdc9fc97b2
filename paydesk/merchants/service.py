"""Creating merchants, issuing and rotating their keys, and looking keys up fast."""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import Database, utcnow
from paydesk.merchants.models import Merchant, User
from paydesk.merchants.moneroo_keys import ensure_keys
from paydesk.vault import Vault


class KeyKind(enum.StrEnum):
    PAYMENT = "payment"
    PAYOUT = "payout"


class MerchantError(ValueError):
    pass


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

    def key(self, kind: KeyKind) -> str:
        return self.payment_key if kind is KeyKind.PAYMENT else self.payout_key


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
    session: AsyncSession, vault: Vault, *, name: str, email: str
) -> IssuedMerchant:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise MerchantError("a merchant name is 1 to 100 characters")
    user = await get_or_create_user(session, email)
    payment_key, payout_key = generate_api_key(), generate_api_key()
    merchant = Merchant(
        user_id=user.id,
        name=name,
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
