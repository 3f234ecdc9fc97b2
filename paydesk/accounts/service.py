"""Accounts of the dashboard: passwords (argon2id), email links, sessions, throttling and
TOTP. Every secret given to a browser or an inbox is stored only as its SHA-256 digest."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.accounts.models import AccountToken, LoginFailure, UserSession
from paydesk.db import utcnow
from paydesk.merchants.models import User
from paydesk.merchants.service import MerchantError, normalize_email
from paydesk.notifications import service as outbox
from paydesk.notifications.rendering import email_templates
from paydesk.vault import Vault

PASSWORD_MIN = 10
PASSWORD_MAX = 256
#: A session lasts this long after its last use, and never longer than SESSION_MAX.
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX = timedelta(days=7)
#: Revealing or rotating the payout key needs the password given this recently.
RECENT_PASSWORD = timedelta(minutes=5)
#: Refused sign-ins counted per email and per client address over THROTTLE_WINDOW.
THROTTLE_WINDOW = timedelta(minutes=15)
FAILURES_PER_EMAIL = 5
FAILURES_PER_CLIENT = 20
#: Wrong second-factor codes on one half-signed-in session before it is dropped.
SECOND_FACTOR_TRIES = 5
TOTP_ISSUER = "Paydesk"


class Passwords:
    """argon2id hashing, off the event loop: one hash costs tens of milliseconds of CPU
    and 64 MiB, which would otherwise stall every other request of the process."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        #: Verified against when the email is unknown, so both cases cost the same time.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def matches(self, stored: str | None, password: str) -> bool:
        def verify() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy, password) and bool(stored)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(verify)

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


passwords = Passwords()


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    RESET = "reset"


LIFETIMES = {Purpose.CONFIRM: timedelta(hours=48), Purpose.RESET: timedelta(hours=1)}


class AccountError(ValueError):
    """A refusal the form shows as it is."""


class Throttled(AccountError):
    def __init__(self, retry_after: timedelta) -> None:
        minutes = max(1, int(retry_after.total_seconds() // 60) + 1)
        super().__init__(f"Too many failed sign-ins. Try again in {minutes} minutes.")
        self.retry_after = retry_after


class NotConfirmed(AccountError):
    def __init__(self) -> None:
        super().__init__("Confirm your email address first: follow the link we sent you.")


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A session just opened: the token goes to the browser, once."""

    token: str
    user: User
    needs_second_factor: bool


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The forms' token for a session: derived from the session's token, so it needs no
    storage and cannot be guessed without the cookie."""
    return hashlib.sha256(b"paydesk-csrf:" + session_token.encode()).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise AccountError(f"A password has at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise AccountError(f"A password has at most {PASSWORD_MAX} characters.")


async def hash_password(password: str) -> str:
    return await passwords.hash(password)


async def password_matches(user: User, password: str) -> bool:
    return await passwords.matches(user.password_hash, password)


def _email_address(email: str) -> str:
    try:
        return normalize_email(email)
    except MerchantError:
        raise AccountError("Enter a valid email address.") from None


# ------------------------------------------------------------------ email links
async def _issue_token(session: AsyncSession, user: User, purpose: Purpose) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AccountToken(
            token_digest=digest(token),
            user_id=user.id,
            purpose=purpose.value,
            created_at=now,
            expires_at=now + LIFETIMES[purpose],
        )
    )
    await session.flush()
    return token


async def _send(
    session: AsyncSession,
    vault: Vault,
    to: str,
    kind: str,
    subject: str,
    *,
    base_url: str,
    lead: str,
    closing: str,
    link: str | None = None,
    action: str | None = None,
) -> None:
    templates = email_templates()
    english = templates.language("en")
    rendered = templates.render(
        "account", english, subject, heading=subject, lead=lead, closing=closing,
        link=link, action=action, base_url=base_url,
    )  # fmt: skip
    # Sealed: the bodies carry a link that signs its holder in.
    await outbox.record(session, kind=kind, to_address=to, language=english.code,
                        rendered=rendered, vault=vault if link else None)  # fmt: skip


async def _use_token(session: AsyncSession, token: str, purpose: Purpose) -> User | None:
    """The token's user, marking the token used; None when unknown, used or expired."""
    now = utcnow()
    used = await session.execute(
        update(AccountToken)
        .where(
            AccountToken.token_digest == digest(token[:100]),
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken.user_id)
    )
    user_id = used.scalar()
    return None if user_id is None else await session.get(User, user_id)


# ------------------------------------------------------------------ sign-up
async def sign_up(
    session: AsyncSession, vault: Vault, email: str, password: str, *, base_url: str
) -> None:
    """Register the address and send the confirmation link. The answer is the same
    whether the address is new or not (no one learns who has an account): an address
    that already has a confirmed account is sent a note instead of a link."""
    address = _email_address(email)
    check_password_rules(password)
    user = await session.scalar(select(User).where(User.email == address).with_for_update())
    if user is not None and user.email_confirmed_at is not None and user.password_hash:
        await _send(
            session, vault, address, "account.exists", "You already have a Paydesk account",
            base_url=base_url,
            lead="Someone, perhaps you, tried to sign up again with this address.",
            closing="If you forgot your password, reset it from the sign-in page. "
            "If it was not you, nothing has changed.",
        )  # fmt: skip
        return
    if user is None:
        user = User(email=address)
        session.add(user)
    # Unconfirmed, the password is whoever asked last: only the owner of the inbox can
    # confirm it.
    user.password_hash = await hash_password(password)
    await session.flush()
    token = await _issue_token(session, user, Purpose.CONFIRM)
    await _send(
        session, vault, address, "account.confirm", "Confirm your email address",
        base_url=base_url,
        lead="Welcome to Paydesk. Confirm this address to finish signing up.",
        link=f"{base_url}/dashboard/confirm/{token}", action="Confirm my email",
        closing="The link works once, for 48 hours. If you did not sign up, ignore this "
        "email.",
    )  # fmt: skip


async def confirm_email(session: AsyncSession, token: str) -> User | None:
    user = await _use_token(session, token, Purpose.CONFIRM)
    if user is not None and user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
        await session.flush()
    return user


# ------------------------------------------------------------------ sign-in
async def _check_throttle(session: AsyncSession, email: str, client: str, now: datetime) -> None:
    since = now - THROTTLE_WINDOW
    for column, value, limit in (
        (LoginFailure.email, email, FAILURES_PER_EMAIL),
        (LoginFailure.client, client, FAILURES_PER_CLIENT),
    ):
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(LoginFailure.at)).where(
                    column == value, LoginFailure.at > since
                )
            )
        ).one()
        if count >= limit:
            raise Throttled(oldest + THROTTLE_WINDOW - now)


async def sign_in(session: AsyncSession, email: str, password: str, *, client: str) -> SignedIn:
    """Check the password and open a session (waiting for the second factor when the
    user has one). Each refusal counts towards the throttle, whatever its cause."""
    now = utcnow()
    address = email.strip().lower()[:254]
    client = client[:64]
    await _check_throttle(session, address, client, now)
    user = await session.scalar(select(User).where(User.email == address))
    if user is None or not await password_matches(user, password[:PASSWORD_MAX]):
        session.add(LoginFailure(email=address, client=client, at=now))
        await session.flush()
        raise AccountError("Wrong email or password.")
    if user.email_confirmed_at is None:
        raise NotConfirmed()
    await session.execute(delete(LoginFailure).where(LoginFailure.email == address))
    if passwords.needs_rehash(user.password_hash or ""):
        user.password_hash = await hash_password(password)
    return await open_session(session, user, needs_second_factor=bool(user.totp_secret_encrypted))


async def open_session(
    session: AsyncSession, user: User, *, needs_second_factor: bool = False
) -> SignedIn:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        UserSession(
            token_digest=digest(token),
            user_id=user.id,
            needs_second_factor=needs_second_factor,
            password_checked_at=now,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_IDLE,
        )
    )
    await session.flush()
    return SignedIn(token, user, needs_second_factor)


async def current(session: AsyncSession, token: str | None) -> tuple[UserSession, User] | None:
    """The session and its user for a cookie's token, extending the session's life; None
    when there is none or it ran out."""
    if not token or len(token) > 100:
        return None
    now = utcnow()
    found = await session.get(UserSession, digest(token))
    if found is None:
        return None
    if found.expires_at <= now:
        await session.delete(found)
        return None
    if found.expires_at - now < SESSION_IDLE - timedelta(minutes=1):
        found.expires_at = min(now + SESSION_IDLE, found.created_at + SESSION_MAX)
        found.last_seen_at = now
    user = await session.get(User, found.user_id)
    if user is None:
        return None
    return found, user


async def sign_out(session: AsyncSession, token: str | None) -> None:
    if token and len(token) <= 100:
        await session.execute(delete(UserSession).where(UserSession.token_digest == digest(token)))


# ------------------------------------------------------------------ password
async def request_reset(session: AsyncSession, vault: Vault, email: str, *, base_url: str) -> None:
    """Send a reset link to a confirmed account's address; the same answer otherwise."""
    try:
        address = _email_address(email)
    except AccountError:
        return
    user = await session.scalar(select(User).where(User.email == address))
    if user is None:
        return
    token = await _issue_token(session, user, Purpose.RESET)
    await _send(
        session, vault, address, "account.reset", "Reset your Paydesk password",
        base_url=base_url,
        lead="Someone, perhaps you, asked to reset the password of this account.",
        link=f"{base_url}/dashboard/reset/{token}", action="Choose a new password",
        closing="The link works once, for one hour. If you did not ask, ignore this email: "
        "your password stays as it is.",
    )  # fmt: skip


async def reset_password(session: AsyncSession, token: str, password: str) -> User:
    """Set a new password from an emailed link; every open session of the user ends
    (whoever knew the old password is signed out). Following the link also confirms the
    address."""
    check_password_rules(password)
    user = await _use_token(session, token, Purpose.RESET)
    if user is None:
        raise AccountError("This link has expired or was already used. Ask for a new one.")
    user.password_hash = await hash_password(password)
    user.email_confirmed_at = user.email_confirmed_at or utcnow()
    await session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    await session.execute(delete(LoginFailure).where(LoginFailure.email == user.email))
    await session.flush()
    return user


async def recheck_password(
    session: AsyncSession, found: UserSession, user: User, password: str, *, client: str
) -> None:
    """Ask for the password again before a sensitive step; a wrong one counts towards the
    sign-in throttle."""
    now = utcnow()
    await _check_throttle(session, user.email, client[:64], now)
    if not await password_matches(user, password[:PASSWORD_MAX]):
        session.add(LoginFailure(email=user.email, client=client[:64], at=now))
        await session.flush()
        raise AccountError("Wrong password.")
    found.password_checked_at = now
    await session.flush()


def password_is_recent(found: UserSession) -> bool:
    return utcnow() - found.password_checked_at < RECENT_PASSWORD


# ------------------------------------------------------------------ two-factor
def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def _accepted_step(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step the code belongs to (this one or a neighbour, for clock drift), if it
    is right and newer than the last one used."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(utcnow())
    for step in (now_step, now_step - 1, now_step + 1):
        if secrets.compare_digest(totp.generate_otp(step), code) and (
            last_step is None or step > last_step
        ):
            return step
    return None


async def enable_totp(
    session: AsyncSession, vault: Vault, user: User, secret: str, code: str
) -> None:
    step = _accepted_step(secret, code, None)
    if step is None:
        raise AccountError("That code is not right. Check the time on your phone and try again.")
    user.totp_secret_encrypted = vault.encrypt(secret)
    user.totp_last_step = step
    await session.flush()


async def disable_totp(session: AsyncSession, vault: Vault, user: User, code: str) -> None:
    await _check_code(session, vault, user, code)
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    await session.flush()


async def _check_code(session: AsyncSession, vault: Vault, user: User, code: str) -> None:
    if not user.totp_secret_encrypted:
        raise AccountError("Two-factor sign-in is not on.")
    secret = vault.decrypt(user.totp_secret_encrypted)
    step = _accepted_step(secret, code, user.totp_last_step)
    if step is None:
        raise AccountError("That code is not right.")
    user.totp_last_step = step
    await session.flush()


async def second_factor(
    session: AsyncSession, vault: Vault, found: UserSession, user: User, code: str, *, client: str
) -> None:
    """Finish a sign-in with the code; wrong codes count towards the throttle and, after
    a few, end the half-open session."""
    now = utcnow()
    try:
        await _check_throttle(session, user.email, client[:64], now)
        await _check_code(session, vault, user, code)
    except AccountError:
        session.add(LoginFailure(email=user.email, client=client[:64], at=now))
        await session.flush()
        recent = await session.scalar(
            select(func.count()).where(
                LoginFailure.email == user.email, LoginFailure.at > found.created_at
            )
        )
        if (recent or 0) >= SECOND_FACTOR_TRIES:
            await session.delete(found)
        raise
    found.needs_second_factor = False
    await session.flush()


async def purge(session: AsyncSession, now: datetime) -> int:
    """Forget what has run out: sessions, email links a day after their end, and failed
    sign-ins older than the throttle's window."""
    removed = 0
    for statement in (
        delete(UserSession).where(UserSession.expires_at <= now),
        delete(AccountToken).where(AccountToken.expires_at <= now - timedelta(days=1)),
        delete(LoginFailure).where(LoginFailure.at <= now - THROTTLE_WINDOW),
    ):
        removed += (await session.execute(statement)).rowcount or 0
    return removed
