"""Who is signed in, and the checks every dashboard form passes: the session cookie
(HttpOnly, SameSite=Lax, Secure behind HTTPS), a CSRF token in each form, and ownership
of the project a URL names (anyone else gets 404, as if it did not exist)."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

from fastapi import HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paydesk.accounts import service as accounts
from paydesk.accounts.models import UserSession
from paydesk.context import Context
from paydesk.merchants.models import Merchant, User
from paydesk.web.forms import Form, read_fields

SESSION_COOKIE = "paydesk_session"
#: Before sign-in there is no session: the forms then carry this cookie's value.
ANONYMOUS_CSRF_COOKIE = "paydesk_csrf"
CSRF_FIELD = "csrf_token"
DASHBOARD = "/dashboard"


class NotSignedIn(Exception):
    """Answered with a redirect to the sign-in page."""

    def __init__(self, second_factor: bool = False) -> None:
        self.second_factor = second_factor


class CsrfRefused(HTTPException):
    def __init__(self) -> None:
        super().__init__(403, "The form has expired. Go back, reload the page and try again.")


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in user on this request."""

    user: User
    session: UserSession
    csrf: str


def context_of(request: Request) -> Context:
    return request.app.state.context


def secure_cookies(request: Request) -> bool:
    """Cookies only over HTTPS when the server is reached over HTTPS (its public URL, or
    the request itself behind a proxy that says so)."""
    return context_of(request).settings.base_url.startswith("https://") or (
        request.url.scheme == "https"
    )


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(accounts.SESSION_MAX.total_seconds()),
        path=DASHBOARD,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=DASHBOARD)


async def visitor(request: Request, session: AsyncSession, *, complete: bool = True) -> Visitor:
    """The signed-in user (raising NotSignedIn otherwise). `complete=False` also accepts
    a session still waiting for its second factor (the page that asks for it)."""
    token = request.cookies.get(SESSION_COOKIE)
    found = await accounts.current(session, token)
    if found is None or token is None:
        raise NotSignedIn()
    user_session, user = found
    if complete and user_session.needs_second_factor:
        raise NotSignedIn(second_factor=True)
    return Visitor(user, user_session, accounts.csrf_token(token))


def anonymous_csrf(request: Request) -> tuple[str, bool]:
    """The signed-out forms' token and whether the cookie must be set now."""
    current = request.cookies.get(ANONYMOUS_CSRF_COOKIE)
    if current and 20 <= len(current) <= 100:
        return current, False
    return secrets.token_urlsafe(32), True


def set_anonymous_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        ANONYMOUS_CSRF_COOKIE,
        token,
        path=DASHBOARD,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


def check_csrf(form: Form, expected: str | None) -> None:
    given = form.get_one(CSRF_FIELD)
    if not expected or not given or not hmac.compare_digest(given, expected):
        raise CsrfRefused()


async def signed_form(request: Request, current: Visitor) -> Form:
    """A signed-in user's form, refused unless it carries the session's CSRF token."""
    form = await read_fields(request)
    check_csrf(form, current.csrf)
    return form


async def anonymous_form(request: Request) -> Form:
    """A signed-out form (sign-up, sign-in, reset), refused unless it carries the token
    of the visitor's CSRF cookie."""
    form = await read_fields(request)
    check_csrf(form, request.cookies.get(ANONYMOUS_CSRF_COOKIE))
    return form


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class ProjectRequest(NamedTuple):
    context: Context
    session: AsyncSession
    visitor: Visitor
    project: Merchant


@asynccontextmanager
async def project_request(request: Request, merchant_id: str) -> AsyncIterator[ProjectRequest]:
    """A project page's transaction: who is signed in and their project (404 for anyone
    else's); what the page writes commits with it."""
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        project = await owned_project(session, current.user, merchant_id)
        yield ProjectRequest(context, session, current, project)


async def owned_project(session: AsyncSession, user: User, merchant_id: str) -> Merchant:
    """The user's project by id; 404 for anyone else's or for no project at all."""
    try:
        parsed = uuid.UUID(merchant_id)
    except ValueError:
        raise HTTPException(404, "Not found") from None
    merchant = await session.scalar(
        select(Merchant).where(Merchant.id == parsed, Merchant.user_id == user.id)
    )
    if merchant is None:
        raise HTTPException(404, "Not found")
    return merchant
