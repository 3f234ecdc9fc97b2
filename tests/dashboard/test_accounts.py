"""Dashboard accounts over the app's HTTP interface, on both databases: sign-up with the
confirmation link caught by a real SMTP server on 127.0.0.1, sign-in, throttling, the
second factor, sign-out and password reset; and the checks every page makes (CSRF, cookie
flags, another user's project)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from paydesk.accounts import service as accounts
from paydesk.accounts.models import AccountToken, LoginFailure, UserSession
from paydesk.db import utcnow
from paydesk.merchants.models import Merchant, User
from paydesk.merchants.service import create_merchant
from paydesk.notifications.mailer import build_mailer
from paydesk.notifications.models import EmailMessage
from paydesk.notifications.worker import send_due
from tests.dashboard.conftest import PASSWORD, csrf_of, make_user, sign_in
from tests.notifications.conftest import SmtpServer, smtp  # noqa: F401 (a fixture)


@pytest.fixture
def settings_overrides(smtp: SmtpServer) -> dict[str, Any]:  # noqa: F811
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_starttls": False,
        "mail_from": "Paydesk <accounts@paydesk.test>",
        "smtp_timeout_seconds": 5,
    }


async def deliver_emails(context) -> None:
    mailer = build_mailer(context.settings)
    while await send_due(context, mailer):
        pass


def link_in(smtp: SmtpServer, address: str, path: str) -> str:  # noqa: F811
    """The path of the last link to `path` sent to `address`."""
    messages = smtp.inbox.to(address)
    assert messages, f"no email to {address}"
    text = messages[-1].get_body(("plain",)).get_content()
    found = re.findall(rf"https://pay\.example\.test(/dashboard/{path}/[\w-]+)", text)
    assert found, text
    return found[-1]


async def sign_up(
    browser: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    page = await browser.get("/dashboard/signup")
    return await browser.post(
        "/dashboard/signup",
        data={
            "csrf_token": csrf_of(page.text),
            "email": email,
            "password": password,
            "password_again": password,
        },
    )


async def test_sign_up_confirm_by_email_and_land_in_the_project_wizard(context, browser, smtp):  # noqa: F811
    answered = await sign_up(browser, "New.Owner@Shop.test")
    assert answered.status_code == 200 and "Check your email" in answered.text
    # The link travels sealed: the outbox row does not hold it in clear text.
    async with context.db.reader() as session:
        stored = (await session.scalars(select(EmailMessage))).one()
    assert stored.sealed and "/dashboard/confirm/" not in stored.text_body

    await deliver_emails(context)
    confirm = link_in(smtp, "new.owner@shop.test", "confirm")
    # Opening the link (a mail scanner, a preview) does not use it up.
    page = await browser.get(confirm)
    assert page.status_code == 200 and "Confirm and sign in" in page.text
    page = await browser.get(confirm)
    done = await browser.post(confirm, data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303
    assert done.headers["location"].startswith("/dashboard/projects/new")
    cookie = next(
        v
        for k, v in done.headers.multi_items()
        if k == "set-cookie" and v.startswith("paydesk_session=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=lax", "path=/dashboard"} <= flags

    wizard = await browser.get("/dashboard/projects/new")
    assert wizard.status_code == 200 and "Create a project" in wizard.text
    # A used link does not work twice.
    again = await browser.post(confirm, data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 410


async def test_sign_up_again_does_not_reveal_or_take_over_an_account(context, browser, smtp):  # noqa: F811
    await make_user(context, "taken@shop.test")
    answered = await sign_up(browser, "taken@shop.test", "another password")
    assert answered.status_code == 200 and "Check your email" in answered.text
    await deliver_emails(context)
    [note] = smtp.inbox.to("taken@shop.test")
    assert "already have a Paydesk account" in note["Subject"]
    async with context.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(AccountToken)) == 0
    assert (await sign_in(browser, "taken@shop.test", "another password")).status_code == 401
    assert (await sign_in(browser, "taken@shop.test")).status_code == 303


@pytest.mark.parametrize(
    ("email", "password", "again"),
    [
        ("not-an-email", PASSWORD, PASSWORD),
        ("a@b.test", "short", "short"),
        ("a@b.test", PASSWORD, PASSWORD + "x"),
    ],
)
async def test_sign_up_refusals_write_nothing(context, browser, email, password, again):
    page = await browser.get("/dashboard/signup")
    answered = await browser.post(
        "/dashboard/signup",
        data={
            "csrf_token": csrf_of(page.text),
            "email": email,
            "password": password,
            "password_again": again,
        },
    )
    assert answered.status_code == 422 and 'class="error"' in answered.text
    async with context.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0
        assert await session.scalar(select(func.count()).select_from(EmailMessage)) == 0


async def test_an_unconfirmed_account_cannot_sign_in(context, browser):
    await sign_up(browser, "later@shop.test")
    refused = await sign_in(browser, "later@shop.test")
    assert refused.status_code == 401 and "Confirm your email address" in refused.text


async def test_forms_without_their_token_are_refused(context, browser, dashboard):
    await make_user(context, "victim@shop.test")
    for path, data in [
        ("/dashboard/login", {"email": "victim@shop.test", "password": PASSWORD}),
        (
            "/dashboard/signup",
            {"email": "x@shop.test", "password": PASSWORD, "password_again": PASSWORD},
        ),
        (
            f"{dashboard.base}/settings",
            {"default_callback_url": "https://evil.test/hook", "commission_payer": "payer"},
        ),
        (f"{dashboard.base}/api/payment-key", {}),
        ("/dashboard/logout", {}),
    ]:
        for token in (None, "forged-token-of-the-right-length-000000"):
            form = dict(data) if token is None else {**data, "csrf_token": token}
            refused = await browser.post(path, data=form)
            assert refused.status_code == 403, (path, refused.status_code)
    async with context.db.reader() as session:
        merchant = await session.get(Merchant, dashboard.project.merchant_id)
        assert merchant.default_callback_url is None
        assert merchant.commission_payer == "merchant"
    assert (await dashboard.get(f"{dashboard.base}/api")).status_code == 200  # still signed in


async def test_brute_force_is_throttled_per_email_and_per_client(context, browser):
    await make_user(context, "owner@shop.test")
    for _ in range(accounts.FAILURES_PER_EMAIL):
        assert (await sign_in(browser, "owner@shop.test", "wrong guess 123")).status_code == 401
    # Now even the right password waits: the attacker cannot tell when it was found.
    throttled = await sign_in(browser, "owner@shop.test")
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    # Guessing many accounts from one address is throttled too.
    for n in range(accounts.FAILURES_PER_CLIENT - accounts.FAILURES_PER_EMAIL):
        await sign_in(browser, f"user{n}@shop.test", "wrong guess 123")
    await make_user(context, "fresh@shop.test")
    assert (await sign_in(browser, "fresh@shop.test")).status_code == 429
    # The window passes.
    async with context.db.transaction() as session:
        for failure in await session.scalars(select(LoginFailure)):
            failure.at -= accounts.THROTTLE_WINDOW + timedelta(seconds=1)
    assert (await sign_in(browser, "owner@shop.test")).status_code == 303


async def test_sign_out_ends_the_session_on_the_server(context, browser, dashboard):
    cookie = browser.cookies.get("paydesk_session", path="/dashboard")
    out = await dashboard.post("/dashboard/logout")
    assert out.status_code == 303 and out.headers["location"].startswith("/dashboard/login")
    async with context.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(UserSession)) == 0
    # The old cookie, replayed, is worth nothing.
    browser.cookies.set("paydesk_session", cookie, domain="paydesk.test", path="/dashboard")
    again = await browser.get(dashboard.base)
    assert again.status_code == 303 and "/dashboard/login" in again.headers["location"]


async def test_password_reset_by_email(context, browser, dashboard, smtp):  # noqa: F811
    other = httpx.AsyncClient(transport=browser._transport, base_url="https://paydesk.test")
    async with other:
        page = await other.get("/dashboard/reset")
        sent = await other.post(
            "/dashboard/reset", data={"csrf_token": csrf_of(page.text), "email": "owner@shop.test"}
        )
        assert sent.status_code == 200 and "we sent it a link" in sent.text
        unknown = await other.post(
            "/dashboard/reset", data={"csrf_token": csrf_of(page.text), "email": "nobody@shop.test"}
        )
        assert unknown.text.replace("nobody", "owner") == sent.text.replace("nobody", "owner")
        await deliver_emails(context)
        assert smtp.inbox.to("nobody@shop.test") == []
        reset = link_in(smtp, "owner@shop.test", "reset")
        form = await other.get(reset)
        short = await other.post(
            reset,
            data={"csrf_token": csrf_of(form.text), "password": "short", "password_again": "short"},
        )
        assert short.status_code == 422
        new = "a brand new passphrase"
        done = await other.post(
            reset, data={"csrf_token": csrf_of(form.text), "password": new, "password_again": new}
        )
        assert done.status_code == 303 and "password-reset" in done.headers["location"]
        used = await other.post(
            reset, data={"csrf_token": csrf_of(form.text), "password": new, "password_again": new}
        )
        assert used.status_code == 422
    # The session opened with the old password is over.
    gone = await browser.get(dashboard.base)
    assert gone.status_code == 303
    assert (await sign_in(browser, "owner@shop.test")).status_code == 401
    assert (await sign_in(browser, "owner@shop.test", new)).status_code == 303


async def test_two_factor_sign_in(context, browser, dashboard):
    page = await dashboard.get("/dashboard/account")
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    totp = pyotp.TOTP(secret)
    wrong = await dashboard.post("/dashboard/account/totp", {"secret": secret, "code": "000000"})
    assert wrong.status_code == 422
    on = await dashboard.post("/dashboard/account/totp", {"secret": secret, "code": totp.now()})
    assert on.status_code == 303
    async with context.db.reader() as session:
        user = await session.get(User, dashboard.user.id)
        assert user.totp_secret_encrypted and secret not in user.totp_secret_encrypted

    await dashboard.post("/dashboard/logout")
    signed = await sign_in(browser, "owner@shop.test")
    assert signed.headers["location"] == "/dashboard/login/code"
    # Half signed in: every page sends back to the code.
    held = await browser.get(dashboard.base)
    assert held.status_code == 303 and held.headers["location"] == "/dashboard/login/code"
    code_page = await browser.get("/dashboard/login/code")
    token = csrf_of(code_page.text)
    bad = await browser.post("/dashboard/login/code", data={"csrf_token": token, "code": "123456"})
    assert bad.status_code == 401
    # The code used to switch it on was spent; a code of the next step is good.
    step = totp.timecode(utcnow()) + 1
    good = totp.generate_otp(step)
    ok = await browser.post("/dashboard/login/code", data={"csrf_token": token, "code": good})
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard/projects"
    assert (await browser.get(dashboard.base)).status_code == 200
    # A code is good once.
    await dashboard.get("/dashboard/account")
    replay = await dashboard.post("/dashboard/account/totp/disable", {"code": good})
    assert replay.status_code == 422


async def test_another_users_project_is_not_found(context, browser, dashboard):
    stranger = await make_user(context, "stranger@other.test")
    async with context.db.transaction() as session:
        theirs = await create_merchant(session, context.vault, name="Theirs", user=stranger)
    base = f"/dashboard/projects/{theirs.merchant_id}"
    for path in (
        "",
        "/api",
        "/settings",
        "/moneroo",
        "/integration",
        "/wallets",
        "/links",
        "/invoices",
        "/statistics",
    ):
        answered = await dashboard.get(base + path)
        assert answered.status_code == 404, path
        assert theirs.payment_key not in answered.text
    for path in ("/settings", "/api/payment-key", "/api/request"):
        assert (await dashboard.post(base + path, {"commission_payer": "payer"})).status_code == 404
    assert (await dashboard.get("/dashboard/projects/not-a-uuid")).status_code == 404


async def test_signed_out_visitors_are_sent_to_sign_in(context, browser):
    answered = await browser.get("/dashboard/projects")
    assert answered.status_code == 303
    assert answered.headers["location"] == "/dashboard/login?next=/dashboard/projects"
    page = await browser.get("/dashboard/login")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie


async def test_what_ran_out_is_forgotten(context, browser, dashboard):
    await sign_in(browser, "nobody@shop.test", "wrong guess 123")
    later = utcnow() + accounts.SESSION_MAX + timedelta(days=2)
    async with context.db.transaction() as session:
        assert await accounts.purge(session, utcnow()) == 0
        assert await accounts.purge(session, later) == 2  # the session and the failure
    assert (await browser.get(dashboard.base)).status_code == 303
