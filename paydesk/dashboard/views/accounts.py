"""Sign-up, email confirmation, sign-in (with the second factor), sign-out, password
reset and the account page (two-factor set-up)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from paydesk.accounts import service as accounts
from paydesk.dashboard.pages import render
from paydesk.dashboard.security import (
    DASHBOARD,
    NotSignedIn,
    Visitor,
    anonymous_form,
    clear_session_cookie,
    client_of,
    context_of,
    set_session_cookie,
    signed_form,
    visitor,
)
from paydesk.web.forms import see_other
from paydesk.web.qr import qr_svg

router = APIRouter(prefix=DASHBOARD, include_in_schema=False)


@router.get("")
async def home(request: Request) -> Response:
    return see_other(f"{DASHBOARD}/projects")


# ------------------------------------------------------------------ sign-up
@router.get("/signup")
async def signup_page(request: Request) -> Response:
    return render(request, "signup.html", email="")


@router.post("/signup")
async def signup(request: Request) -> Response:
    context = context_of(request)
    form = await anonymous_form(request)
    email = form.get_one("email")
    if form.get_one("password") != form.get_one("password_again"):
        return render(request, "signup.html", email=email, status_code=422,
                      error="The two passwords are not the same.")  # fmt: skip
    try:
        async with context.db.transaction() as session:
            await accounts.sign_up(session, context.vault, email, form.get_one("password"),
                                   base_url=context.settings.base_url)  # fmt: skip
    except accounts.AccountError as refused:
        return render(request, "signup.html", email=email, status_code=422, error=str(refused))
    return render(request, "signup_sent.html", email=email.strip().lower())


@router.get("/confirm/{token}")
async def confirm_page(request: Request, token: str) -> Response:
    # A button, not the GET itself: mail scanners that open links must not use the token.
    return render(request, "confirm.html", token=token)


@router.post("/confirm/{token}")
async def confirm(request: Request, token: str) -> Response:
    context = context_of(request)
    await anonymous_form(request)
    async with context.db.transaction() as session:
        user = await accounts.confirm_email(session, token)
        if user is None:
            return render(request, "confirm.html", token=None, status_code=410,
                          error="This link has expired or was already used.")  # fmt: skip
        # The inbox is proven and the password was set at sign-up: the user is in.
        signed = await accounts.open_session(session, user)
    response = see_other(f"{DASHBOARD}/projects/new?done=confirmed")
    set_session_cookie(request, response, signed.token)
    return response


# ------------------------------------------------------------------ sign-in
@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "login.html", email="")


@router.post("/login")
async def login(request: Request) -> Response:
    context = context_of(request)
    form = await anonymous_form(request)
    email = form.get_one("email")
    async with context.db.transaction() as session:
        try:
            signed = await accounts.sign_in(
                session, email, form.get_one("password"), client=client_of(request)
            )
        except accounts.AccountError as refused:
            # The transaction still commits: the failure counts towards the throttle.
            status = 429 if isinstance(refused, accounts.Throttled) else 401
            response = render(request, "login.html", email=email, status_code=status,
                              error=str(refused))  # fmt: skip
            if isinstance(refused, accounts.Throttled):
                response.headers["Retry-After"] = str(int(refused.retry_after.total_seconds()) + 1)
            return response
    target = f"{DASHBOARD}/login/code" if signed.needs_second_factor else f"{DASHBOARD}/projects"
    response = see_other(target)
    set_session_cookie(request, response, signed.token)
    return response


@router.get("/login/code")
async def code_page(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session, complete=False)
    return render(request, "login_code.html", current)


@router.post("/login/code")
async def code(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session, complete=False)
        form = await signed_form(request, current)
        try:
            await accounts.second_factor(
                session,
                context.vault,
                current.session,
                current.user,
                form.get_one("code"),
                client=client_of(request),
            )
        except accounts.AccountError as refused:
            return render(request, "login_code.html", current, status_code=401,
                          error=str(refused))  # fmt: skip
    return see_other(f"{DASHBOARD}/projects")


@router.post("/logout")
async def logout(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        try:
            current = await visitor(request, session, complete=False)
        except NotSignedIn:
            return see_other(f"{DASHBOARD}/login")
        await signed_form(request, current)
        await accounts.sign_out(session, request.cookies.get("paydesk_session"))
    response = see_other(f"{DASHBOARD}/login?done=signed-out")
    clear_session_cookie(response)
    return response


# ------------------------------------------------------------------ password reset
@router.get("/reset")
async def reset_request_page(request: Request) -> Response:
    return render(request, "reset_request.html", sent=False)


@router.post("/reset")
async def reset_request(request: Request) -> Response:
    context = context_of(request)
    form = await anonymous_form(request)
    async with context.db.transaction() as session:
        await accounts.request_reset(session, context.vault, form.get_one("email"),
                                     base_url=context.settings.base_url)  # fmt: skip
    return render(request, "reset_request.html", sent=True)


@router.get("/reset/{token}")
async def reset_page(request: Request, token: str) -> Response:
    return render(request, "reset.html", token=token)


@router.post("/reset/{token}")
async def reset(request: Request, token: str) -> Response:
    context = context_of(request)
    form = await anonymous_form(request)
    if form.get_one("password") != form.get_one("password_again"):
        return render(request, "reset.html", token=token, status_code=422,
                      error="The two passwords are not the same.")  # fmt: skip
    try:
        async with context.db.transaction() as session:
            await accounts.reset_password(session, token, form.get_one("password"))
    except accounts.AccountError as refused:
        return render(request, "reset.html", token=token, status_code=422, error=str(refused))
    response = see_other(f"{DASHBOARD}/login?done=password-reset")
    clear_session_cookie(response)
    return response


# ------------------------------------------------------------------ the account page
@router.get("/account")
async def account_page(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
    return _account(request, current)


def _account(
    request: Request,
    current: Visitor,
    *,
    secret: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    user = current.user
    secret = secret or (None if user.totp_secret_encrypted else accounts.new_totp_secret())
    uri = accounts.totp_uri(secret, user.email) if secret else None
    # The SVG is Paydesk's own drawing of the key's URI, not text from anyone.
    qr = Markup(qr_svg(uri, title="Two-factor key")) if uri else None  # noqa: S704
    return render(request, "account.html", current, totp_on=bool(user.totp_secret_encrypted),
                  secret=secret, totp_qr=qr, error=error, status_code=status_code)  # fmt: skip


@router.post("/account/totp")
async def totp_enable(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        form = await signed_form(request, current)
        secret = form.get_one("secret")[:64]
        try:
            await accounts.enable_totp(session, context.vault, current.user, secret,
                                       form.get_one("code"))  # fmt: skip
        except accounts.AccountError as refused:
            return _account(request, current, secret=secret, error=str(refused),
                            status_code=422)  # fmt: skip
    return see_other(f"{DASHBOARD}/account?done=totp-on")


@router.post("/account/totp/disable")
async def totp_disable(request: Request) -> Response:
    context = context_of(request)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        form = await signed_form(request, current)
        try:
            await accounts.disable_totp(session, context.vault, current.user, form.get_one("code"))
        except accounts.AccountError as refused:
            return _account(request, current, error=str(refused), status_code=422)
    return see_other(f"{DASHBOARD}/account?done=totp-off")
