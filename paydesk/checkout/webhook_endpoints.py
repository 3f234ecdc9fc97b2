"""A merchant's Moneroo webhooks: up to 15 `{url, secret, enabled}` endpoints per
environment (spec moneroo-api 8.1), each receiving every checkout event of its environment.

The secret is the merchant's choice (plugins generate their own and register it) or, when
none is given, the merchant's default Moneroo webhook secret (`paydesk merchant keys`).
It is stored encrypted; it signs each body in `X-Moneroo-Signature`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, Uuid, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Base, UTCDateTime, new_uuid, utcnow
from paydesk.merchants.models import Merchant
from paydesk.merchants.moneroo_keys import LIVE, SANDBOX, ensure_keys
from paydesk.vault import Vault
from paydesk.webhooks import service as webhooks

#: Moneroo's documented limit, counted per merchant and environment.
MAX_PER_ENVIRONMENT = 15
ENVIRONMENTS = (SANDBOX, LIVE)
#: A delivery's URL column holds this much.
MAX_URL_LENGTH = 255
MAX_SECRET_LENGTH = 255


class MonerooWebhookEndpoint(Base):
    """Where a merchant's Moneroo-dialect events are POSTed, and the secret that signs them."""

    __tablename__ = "moneroo_webhook_endpoints"
    __table_args__ = (
        Index("ix_moneroo_webhook_endpoints_merchant_id_environment", "merchant_id", "environment"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("merchants.id"))
    #: sandbox or live: only that environment's events reach it.
    environment: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EndpointError(ValueError):
    """The endpoint cannot be registered as asked (URL, secret, environment)."""


class TooManyEndpoints(EndpointError):
    pass


class UnknownEndpoint(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint as its merchant sees it, the secret decrypted."""

    id: uuid.UUID
    merchant_id: uuid.UUID
    environment: str
    url: str
    secret: str
    enabled: bool
    created_at: datetime

    def as_json(self, *, with_secret: bool) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": str(self.id),
            "merchant": str(self.merchant_id),
            "environment": self.environment,
            "url": self.url,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
        }
        if with_secret:
            shown["secret"] = self.secret
        return shown


def _shown(row: MonerooWebhookEndpoint, vault: Vault) -> Endpoint:
    return Endpoint(
        id=row.id,
        merchant_id=row.merchant_id,
        environment=row.environment,
        url=row.url,
        secret=vault.decrypt(row.secret_encrypted),
        enabled=row.enabled,
        created_at=row.created_at,
    )


def _check_url(url: str) -> str:
    """An absolute http(s) URL that fits a delivery; where it resolves is checked at each
    send (the sender's guard), since DNS answers change."""
    if len(url) > MAX_URL_LENGTH:
        raise EndpointError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise EndpointError(f"not a URL: {url}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"not an http(s) URL: {url}")
    if parts.username or parts.password:
        raise EndpointError("credentials in a webhook URL are not sent")
    return url


def _check_secret(secret: str) -> str:
    if not secret.strip():
        raise EndpointError("the secret is empty")
    if len(secret) > MAX_SECRET_LENGTH:
        raise EndpointError(f"the secret is longer than {MAX_SECRET_LENGTH} characters")
    return secret


async def add(
    session: AsyncSession,
    vault: Vault,
    merchant_id: uuid.UUID,
    url: str,
    *,
    environment: str = SANDBOX,
    secret: str | None = None,
    enabled: bool = True,
) -> Endpoint:
    """Register an endpoint; the merchant's default secret when `secret` is None."""
    if environment not in ENVIRONMENTS:
        raise EndpointError(f"environment must be one of {', '.join(ENVIRONMENTS)}")
    _check_url(url)
    if secret is not None:
        _check_secret(secret)
    # The merchant's row is locked so two concurrent adds cannot both pass the limit.
    merchant = await session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise LookupError(f"no merchant {merchant_id}")
    count = await session.scalar(
        select(func.count())
        .select_from(MonerooWebhookEndpoint)
        .where(
            MonerooWebhookEndpoint.merchant_id == merchant_id,
            MonerooWebhookEndpoint.environment == environment,
        )
    )
    if (count or 0) >= MAX_PER_ENVIRONMENT:
        raise TooManyEndpoints(
            f"at most {MAX_PER_ENVIRONMENT} webhooks per environment ({environment})"
        )
    if secret is None:
        secret = (await ensure_keys(session, vault, merchant)).webhook_secret
    row = MonerooWebhookEndpoint(
        id=new_uuid(),
        merchant_id=merchant_id,
        environment=environment,
        url=url,
        secret_encrypted=vault.encrypt(secret),
        enabled=enabled,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return _shown(row, vault)


async def list_endpoints(
    session: AsyncSession, vault: Vault, merchant_id: uuid.UUID, environment: str | None = None
) -> list[Endpoint]:
    """The merchant's endpoints, oldest first."""
    query = select(MonerooWebhookEndpoint).where(MonerooWebhookEndpoint.merchant_id == merchant_id)
    if environment is not None:
        query = query.where(MonerooWebhookEndpoint.environment == environment)
    rows = await session.scalars(
        query.order_by(MonerooWebhookEndpoint.created_at, MonerooWebhookEndpoint.id)
    )
    return [_shown(row, vault) for row in rows]


async def _find(
    session: AsyncSession, endpoint_id: uuid.UUID, merchant_id: uuid.UUID | None
) -> MonerooWebhookEndpoint:
    """The endpoint, if it exists (and belongs to `merchant_id` when one is given)."""
    row = await session.get(MonerooWebhookEndpoint, endpoint_id, with_for_update=True)
    if row is None or (merchant_id is not None and row.merchant_id != merchant_id):
        raise UnknownEndpoint(f"no Moneroo webhook {endpoint_id}")
    return row


async def set_enabled(
    session: AsyncSession,
    vault: Vault,
    endpoint_id: uuid.UUID,
    enabled: bool,
    *,
    merchant_id: uuid.UUID | None = None,
) -> Endpoint:
    """Enable or disable: a disabled endpoint gets no new events, and its deliveries
    already queued fail (and are retried) until it is enabled again."""
    row = await _find(session, endpoint_id, merchant_id)
    row.enabled = enabled
    await session.flush()
    return _shown(row, vault)


async def delete(
    session: AsyncSession, endpoint_id: uuid.UUID, *, merchant_id: uuid.UUID | None = None
) -> int:
    """Delete the endpoint; its pending deliveries become dead (they could not be signed
    any more). Returns how many were abandoned."""
    row = await _find(session, endpoint_id, merchant_id)
    abandoned = await webhooks.abandon_endpoint(session, row.id)
    await session.delete(row)
    await session.flush()
    return abandoned


async def receiving(
    session: AsyncSession, merchant_id: uuid.UUID, environment: str
) -> list[tuple[uuid.UUID, str]]:
    """(id, url) of each enabled endpoint an event of this environment goes to."""
    rows = await session.execute(
        select(MonerooWebhookEndpoint.id, MonerooWebhookEndpoint.url)
        .where(
            MonerooWebhookEndpoint.merchant_id == merchant_id,
            MonerooWebhookEndpoint.environment == environment,
            MonerooWebhookEndpoint.enabled.is_(True),
        )
        .order_by(MonerooWebhookEndpoint.created_at, MonerooWebhookEndpoint.id)
    )
    return [(endpoint_id, url) for endpoint_id, url in rows.all()]


async def signing_secrets(
    session: AsyncSession, vault: Vault, endpoint_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The secrets of those endpoints that still exist and are enabled: a delivery to any
    other is not sent."""
    wanted = set(endpoint_ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(MonerooWebhookEndpoint.id, MonerooWebhookEndpoint.secret_encrypted).where(
            MonerooWebhookEndpoint.id.in_(wanted), MonerooWebhookEndpoint.enabled.is_(True)
        )
    )
    return {endpoint_id: vault.decrypt(secret) for endpoint_id, secret in rows.all()}
