"""Sending one email: over SMTP (aiosmtplib), or to the log when no SMTP server is set
(the embedded default, so a demo shows what would have gone out)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol

import aiosmtplib
import structlog

from paydesk.config import Settings
from paydesk.db import utcnow
from paydesk.notifications.service import Claimed, Failure

#: One send (connect, greet, authenticate, transmit) may take this many SMTP timeouts.
SEND_TIMEOUTS = 4
#: Refusals that will not change by trying again: the address, the sender or the message
#: itself. Others (authentication, greeting) are the operator's to fix, so they are retried.
_REFUSALS = (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPSenderRefused,
             aiosmtplib.SMTPDataError)  # fmt: skip


class Mailer(Protocol):
    async def send(self, item: Claimed) -> Failure | None:
        """None once the email is handed over; otherwise why not."""
        ...


class ConsoleMailer:
    """Writes each email's text part to the log instead of sending it."""

    def __init__(self) -> None:
        # Bound per mailer, so the logging configured when it is built is the one used.
        self.log = structlog.get_logger(__name__)

    async def send(self, item: Claimed) -> Failure | None:
        self.log.info("email.console", email=item.id, kind=item.kind, to=item.to_address,
                      subject=item.subject, text=item.text_body)  # fmt: skip
        return None


class SmtpMailer:
    """One SMTP conversation per email: a failure affects that email only."""

    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.mail_from = settings.mail_from
        address = parseaddr(settings.mail_from)[1]
        self.domain = address.rpartition("@")[2] or "localhost"
        self.time_limit = settings.smtp_timeout_seconds * SEND_TIMEOUTS
        self._options: dict[str, Any] = {
            "hostname": settings.smtp_host,
            "port": settings.smtp_port,
            "username": settings.smtp_username,
            "password": (
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            "use_tls": settings.smtp_tls,
            "start_tls": False if settings.smtp_tls else settings.smtp_starttls,
            "timeout": settings.smtp_timeout_seconds,
        }

    def message(self, item: Claimed) -> MimeMessage:
        """multipart/alternative: the text part, then the HTML one (clients show the
        last they can)."""
        message = MimeMessage()
        message["From"] = self.mail_from
        message["To"] = item.to_address
        message["Subject"] = item.subject
        message["Date"] = format_datetime(utcnow())
        # The same on every attempt, so a receiver can drop a copy sent twice.
        stamp = int(item.created_at.timestamp())
        message["Message-ID"] = f"<paydesk.{item.id}.{stamp}@{self.domain}>"
        # RFC 3834: no vacation replies to a receipt.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(item.text_body)
        message.add_alternative(item.html_body, subtype="html")
        return message

    async def send(self, item: Claimed) -> Failure | None:
        try:
            message = self.message(item)
        except (ValueError, TypeError) as exc:  # an address no header can carry
            return Failure(_describe(exc), permanent=True)
        try:
            async with asyncio.timeout(self.time_limit):
                await aiosmtplib.send(message, **self._options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            permanent = all(refused.code >= 500 for refused in exc.recipients)
            return Failure(_describe(exc), permanent=permanent)
        except _REFUSALS as exc:
            return Failure(_describe(exc), permanent=exc.code >= 500)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Failure(_describe(exc))
        return None


def build_mailer(settings: Settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    return ConsoleMailer()


def _describe(exc: BaseException) -> str:
    """The error as the operator reads it (aiosmtplib's messages carry no credentials)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
