"""The delivery worker: claim due deliveries, send them concurrently, record outcomes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import structlog

from paydesk.background import sleep_or_stop
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.webhooks import signing
from paydesk.webhooks.policy import CHECKOUT_PREFIX, policy_for
from paydesk.webhooks.sender import Outcome, WebhookSender, build_sender
from paydesk.webhooks.service import (
    INVOICE_STATUS,
    PAYOUT_STATUS,
    WALLET_PAYMENT,
    Claimed,
    claim_due,
    finish,
)

log = structlog.get_logger(__name__)

#: Pause when nothing was due.
IDLE_SECONDS = 0.2


async def render(
    context: Context,
    item: Claimed,
    now: datetime,
    endpoint_secrets: Mapping[uuid.UUID, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body in the event's dialect, signed: a Moneroo event with its endpoint's secret
    (from `endpoint_secrets` when the round fetched them), any other with the merchant's
    keys and the Standard Webhooks headers."""
    if item.topic.startswith(CHECKOUT_PREFIX):
        return await _render_moneroo(context, item, endpoint_secrets)
    credentials = await context.credentials.get(item.merchant_id)
    if credentials is None:
        raise LookupError(f"merchant {item.merchant_id} no longer exists")
    from paydesk.api.cryptomus.webhooks import payment_payload, payout_payload, signed_body

    if item.topic == INVOICE_STATUS:
        payload = payment_payload(item.payload, context.catalogue)
        body = signed_body(payload, credentials.payment_key)
    elif item.topic == WALLET_PAYMENT:
        payload = payment_payload(
            item.payload,
            context.catalogue,
            kind="wallet",
            wallet_address_uuid=item.payload["wallet_address_uuid"],
        )
        body = signed_body(payload, credentials.payment_key)
    elif item.topic == PAYOUT_STATUS:
        # Signed with the payout key, as the SDKs that verify payout webhooks expect.
        body = signed_body(payout_payload(item.payload, context.catalogue), credentials.payout_key)
    else:
        raise LookupError(f"no renderer for {item.topic}")
    headers = signing.headers(
        credentials.webhook_secrets, str(item.event_uuid), int(now.timestamp()), body
    )
    return body, headers


async def _render_moneroo(
    context: Context, item: Claimed, endpoint_secrets: Mapping[uuid.UUID, str] | None
) -> tuple[bytes, dict[str, str]]:
    from paydesk.api.moneroo import webhooks as moneroo

    if item.endpoint_id is None:
        raise LookupError(f"delivery {item.delivery_id} has no Moneroo webhook endpoint")
    if endpoint_secrets is None:
        endpoint_secrets = await _endpoint_secrets(context, [item])
    secret = endpoint_secrets.get(item.endpoint_id)
    if secret is None:
        raise LookupError(f"Moneroo webhook {item.endpoint_id} is disabled or deleted")
    return moneroo.signed(item.payload, secret)


async def _endpoint_secrets(context: Context, items: list[Claimed]) -> dict[uuid.UUID, str]:
    """The secrets a round's Moneroo deliveries are signed with, in one query."""
    from paydesk.checkout.webhook_endpoints import signing_secrets

    wanted = {item.endpoint_id for item in items if item.endpoint_id is not None}
    if not wanted:
        return {}
    async with context.db.reader() as session:
        return await signing_secrets(session, context.vault, wanted)


async def deliver_due(
    context: Context,
    sender: WebhookSender,
    *,
    limit: int = 200,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """One round: the number of deliveries attempted. `clock` lets tests move time."""
    async with context.db.transaction() as session:
        lease = timedelta(seconds=context.settings.webhook_lease_seconds)
        claimed = await claim_due(session, clock(), limit, lease)
    if not claimed:
        return 0
    gate = asyncio.Semaphore(context.settings.webhook_concurrency)
    secrets = await _endpoint_secrets(context, claimed)

    async def attempt(item: Claimed) -> Outcome:
        async with gate:
            try:
                body, headers = await render(context, item, clock(), secrets)
            except LookupError as exc:
                return Outcome(None, 0, str(exc), None)
            return await sender.send(
                item.url, body, headers, time_limit=policy_for(item.topic).timeout
            )

    outcomes = await asyncio.gather(*(attempt(item) for item in claimed))
    results = list(zip(claimed, outcomes, strict=True))
    async with context.db.transaction() as session:
        statuses = await finish(session, results, clock())
    for item, outcome in results:
        if statuses.get(item.delivery_id) == "dead":
            log.warning("webhooks.dead", delivery=item.delivery_id, url=item.url,
                        error=outcome.error or outcome.status_code)  # fmt: skip
    return len(claimed)


async def delivery_loop(context: Context, stop: asyncio.Event) -> None:
    sender = build_sender(context.settings)
    try:
        while not stop.is_set():
            try:
                sent = await deliver_due(context, sender)
            except Exception:
                log.exception("webhooks.round_failed")
                sent = 0
            if not sent:
                await sleep_or_stop(stop, IDLE_SECONDS)
    finally:
        await sender.close()
