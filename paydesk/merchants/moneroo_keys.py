"""A merchant's Moneroo-dialect keys: a sandbox and a live secret key (the key alone
decides the mode, as Moneroo's do) and the secret its webhooks are signed with.

Keys look like Moneroo's (`pvk_sandbox_<6>|<ULID>`, `pvk_<6>|<ULID>`: the pipe included, as
integrations already cope with it) and are stored encrypted, with a SHA-256 digest to find
the merchant by: a key is 100+ random bits, so its digest needs no secret salt.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import Database
from paydesk.merchants.models import Merchant
from paydesk.vault import Vault

SANDBOX, LIVE = "sandbox", "live"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def crockford(value: int, length: int) -> str:
    """`value` in Crockford base32, `length` characters (a ULID is 26)."""
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_ulid() -> str:
    """48 bits of milliseconds, 80 random bits."""
    return crockford((time.time_ns() // 1_000_000) << 80 | secrets.randbits(80), 26)


def app_id(merchant_id: uuid.UUID) -> str:
    """The merchant as a Moneroo application id (26 characters, like a ULID)."""
    return crockford(merchant_id.int, 26)


def generate_secret_key(environment: str) -> str:
    prefix = "pvk_sandbox_" if environment == SANDBOX else "pvk_"
    tag = "".join(secrets.choice(_LOWER_ALNUM) for _ in range(6))
    return f"{prefix}{tag}|{new_ulid()}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MonerooKeys:
    sandbox_secret_key: str
    live_secret_key: str
    webhook_secret: str


async def ensure_keys(session: AsyncSession, vault: Vault, merchant: Merchant) -> MonerooKeys:
    """The merchant's keys, made on first use (merchants older than the dialect have none)."""
    if merchant.moneroo_sandbox_key_encrypted is None:
        sandbox = generate_secret_key(SANDBOX)
        merchant.moneroo_sandbox_key_encrypted = vault.encrypt(sandbox)
        merchant.moneroo_sandbox_key_digest = key_digest(sandbox)
    if merchant.moneroo_live_key_encrypted is None:
        live = generate_secret_key(LIVE)
        merchant.moneroo_live_key_encrypted = vault.encrypt(live)
        merchant.moneroo_live_key_digest = key_digest(live)
    if merchant.moneroo_webhook_secret_encrypted is None:
        merchant.moneroo_webhook_secret_encrypted = vault.encrypt(secrets.token_hex(24))
    await session.flush()
    return MonerooKeys(
        sandbox_secret_key=vault.decrypt(merchant.moneroo_sandbox_key_encrypted),
        live_secret_key=vault.decrypt(merchant.moneroo_live_key_encrypted),
        webhook_secret=vault.decrypt(merchant.moneroo_webhook_secret_encrypted),
    )


async def find_by_key(session: AsyncSession, key: str) -> tuple[Merchant, str] | None:
    """The merchant a secret key belongs to and the mode it selects."""
    digest = key_digest(key)
    merchant = await session.scalar(
        select(Merchant).where(
            or_(
                Merchant.moneroo_sandbox_key_digest == digest,
                Merchant.moneroo_live_key_digest == digest,
            )
        )
    )
    if merchant is None:
        return None
    return merchant, SANDBOX if merchant.moneroo_sandbox_key_digest == digest else LIVE


@dataclass(frozen=True, slots=True)
class MonerooCaller:
    """Who a secret key is: the merchant (its Moneroo "application") and the mode."""

    merchant_id: uuid.UUID
    environment: str
    app_name: str
    created_at: datetime
    updated_at: datetime
    enabled: bool


class MonerooKeyCache:
    """Secret key → caller, kept briefly so a request does not pay a lookup each (unknown
    keys too, so a flood of made-up keys does not reach the database)."""

    def __init__(self, db: Database, ttl_seconds: float, size: int = 10_000) -> None:
        self._db = db
        self._cache: TTLCache[str, MonerooCaller | None] = TTLCache(
            maxsize=size, ttl=max(ttl_seconds, 0.001)
        )

    async def caller(self, key: str) -> MonerooCaller | None:
        digest = key_digest(key)
        cached = self._cache.get(digest, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        async with self._db.reader() as session:
            found = await find_by_key(session, key)
        caller = None
        if found is not None:
            merchant, environment = found
            caller = MonerooCaller(
                merchant_id=merchant.id,
                environment=environment,
                app_name=merchant.name,
                created_at=merchant.created_at,
                updated_at=merchant.updated_at,
                # Sandbox keys work at once; live keys once API access is granted.
                enabled=not merchant.payments_blocked
                and (environment == SANDBOX or merchant.api_access == "approved"),
            )
        self._cache[digest] = caller
        return caller


_MISSING = object()
