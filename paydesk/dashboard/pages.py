"""Rendering a dashboard page: the shared layout's values (who is signed in, the project
and its navigation, the form token) and the signed-out forms' CSRF cookie."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from paydesk.dashboard.security import (
    CSRF_FIELD,
    DASHBOARD,
    Visitor,
    anonymous_csrf,
    set_anonymous_csrf,
)
from paydesk.merchants.models import Merchant
from paydesk.web.templating import Pages

#: The dashboard is in English for now; its templates are not in the catalogues.
DASHBOARD_LANGUAGE = "en"

#: A project's sections, in the order of its navigation.
SECTIONS = (
    ("overview", "Overview", ""),
    ("invoices", "Invoices", "/invoices"),
    ("links", "Payment links", "/links"),
    ("wallets", "Wallets", "/wallets"),
    ("statistics", "Statistics", "/statistics"),
    ("api", "API", "/api"),
    ("moneroo", "Checkout API", "/moneroo"),
    ("settings", "Settings", "/settings"),
)


#: What a page says after a form moved on (`?done=<code>`): fixed texts, so a link cannot
#: make the dashboard say anything else.
NOTICES = {
    "confirmed": "Your email address is confirmed. Welcome!",
    "password-reset": "Your password is changed. Sign in with the new one.",
    "signed-out": "You are signed out.",
    "project-created": "Your project is created. It has a business wallet and you have a "
    "personal one.",
    "access-requested": "Your request for API access is sent.",
    "key-rotated": "A new key is issued; the old one no longer works.",
    "settings-saved": "Settings saved.",
    "totp-on": "Two-factor sign-in is on.",
    "totp-off": "Two-factor sign-in is off.",
    "transferred": "Transfer done.",
    "link-created": "Payment link created.",
    "link-disabled": "Payment link disabled.",
    "resent": "The webhook is queued again.",
    "endpoint-added": "Webhook endpoint added.",
    "endpoint-changed": "Webhook endpoint updated.",
}


def project_url(merchant: Merchant, path: str = "") -> str:
    return f"{DASHBOARD}/projects/{merchant.id}{path}"


def render(
    request: Request,
    template: str,
    visitor: Visitor | None = None,
    *,
    project: Merchant | None = None,
    section: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    pages: Pages = request.app.state.pages
    language = pages.catalogues.get(DASHBOARD_LANGUAGE)
    assert language is not None
    new_cookie = None
    if visitor is not None:
        token = visitor.csrf
    else:
        token, fresh = anonymous_csrf(request)
        new_cookie = token if fresh else None
    context.setdefault("notice", NOTICES.get(request.query_params.get("done", "")))
    context.setdefault("error", None)
    response = pages.render(
        request,
        f"dashboard/{template}",
        language,
        status_code=status_code,
        visitor=visitor,
        project=project,
        section=section,
        sections=SECTIONS,
        project_url=project_url,
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        dashboard=DASHBOARD,
        **context,
    )
    if new_cookie is not None:
        set_anonymous_csrf(request, response, new_cookie)
    return response
