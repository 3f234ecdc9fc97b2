"""The email outbox: recording emails in the caller's transaction, and moving them
through their lives (pending → sent, or dead after the last failed attempt).

Recording never talks to the network. Workers claim due emails under a lease, send outside
any transaction, and record the outcome only if they still hold the lease.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.db import utcnow
from paydesk.notifications.models import EmailMessage
from paydesk.notifications.rendering import Rendered
from paydesk.vault import Vault

PENDING, SENT, DEAD = "pending", "sent", "dead"

#: The wait after each failed attempt; once they are used up the email is dead (seven
#: attempts over about half a day: an SMTP server down for a night is waited out).
RETRY_WAITS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=8),
)
MAX_ATTEMPTS = len(RETRY_WAITS) + 1
#: Spreads the retries of emails that failed together.
JITTER = 0.1
LAST_ERROR_LENGTH = 500


async def record(
    session: AsyncSession,
    *,
    kind: str,
    to_address: str,
    language: str,
    rendered: Rendered,
    reference: str | None = None,
    vault: Vault | None = None,
) -> EmailMessage:
    """Add the email to the caller's transaction: it is sent exactly when that commits.
    With a `vault`, the bodies are stored encrypted (they carry a secret link)."""
    now = utcnow()
    text_body, html_body = rendered.text, rendered.html
    if vault is not None:
        text_body, html_body = vault.encrypt(text_body), vault.encrypt(html_body)
    message = EmailMessage(
        kind=kind,
        reference=reference,
        to_address=to_address,
        language=language,
        subject=rendered.subject,
        text_body=text_body,
        html_body=html_body,
        sealed=vault is not None,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    return message


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased email and everything sending it needs."""

    id: int
    token: uuid.UUID
    kind: str
    to_address: str
    subject: str
    text_body: str
    html_body: str
    attempts: int
    created_at: datetime
    sealed: bool = False

    def opened(self, vault: Vault) -> Claimed:
        """The email with its bodies in clear text, ready to send."""
        if not self.sealed:
            return self
        return replace(self, text_body=vault.decrypt(self.text_body),
                       html_body=vault.decrypt(self.html_body), sealed=False)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed; a permanent one (the server refused the address or the
    message for good) is not attempted again."""

    error: str
    permanent: bool = False


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Lease up to `limit` due emails for `lease` (well above the SMTP timeout).

    `SKIP LOCKED` lets several workers claim at once on PostgreSQL without waiting for or
    taking each other's rows; SQLite's write lock serialises claims."""
    due = (
        select(EmailMessage.id)
        .where(
            EmailMessage.status == PENDING,
            EmailMessage.next_attempt_at <= now,
            or_(EmailMessage.leased_until.is_(None), EmailMessage.leased_until < now),
        )
        .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    token = uuid.uuid4()
    leased = await session.execute(
        update(EmailMessage)
        .where(EmailMessage.id.in_(due))
        .values(leased_until=now + lease, lease_token=token)
        .returning(
            EmailMessage.id,
            EmailMessage.kind,
            EmailMessage.to_address,
            EmailMessage.subject,
            EmailMessage.text_body,
            EmailMessage.html_body,
            EmailMessage.attempts,
            EmailMessage.created_at,
            EmailMessage.sealed,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = [Claimed(row[0], token, *row[1:]) for row in leased.all()]
    claimed.sort(key=lambda item: item.id)
    return claimed


def retry_wait(attempts: int) -> timedelta | None:
    """The wait before the next attempt after `attempts` failed ones (None: no more)."""
    if attempts >= MAX_ATTEMPTS:
        return None
    wait = RETRY_WAITS[attempts - 1]
    return wait * (1 + random.uniform(-JITTER, JITTER))


async def finish(
    session: AsyncSession, results: list[tuple[Claimed, Failure | None]], now: datetime
) -> dict[int, str]:
    """Settle or reschedule each attempted email (None: sent). Returns each recorded
    email's new status; one whose lease was lost (another worker holds it now) is left
    out and its outcome dropped."""
    statuses: dict[int, str] = {}
    for claimed, failure in results:
        tries = claimed.attempts + 1
        values: dict[str, object] = {
            "attempts": tries,
            "leased_until": None,
            "lease_token": None,
        }
        if failure is None:
            values.update(status=SENT, sent_at=now, last_error=None)
        else:
            wait = None if failure.permanent else retry_wait(tries)
            values["last_error"] = failure.error[:LAST_ERROR_LENGTH]
            if wait is None:
                values["status"] = DEAD
            else:
                values["next_attempt_at"] = now + wait
        changed = await session.execute(
            update(EmailMessage)
            .where(EmailMessage.id == claimed.id, EmailMessage.lease_token == claimed.token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            statuses[claimed.id] = str(values.get("status", PENDING))
    return statuses
