"""Rendering server-side pages: one Jinja environment, the page's language, the security
headers every page carries, and Paydesk's own static files (no CDN, no external font)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.staticfiles import StaticFiles

from paydesk.web.i18n import LANGUAGE_COOKIE, Catalogues, Language

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PATH = "/static"
#: A year: the language switcher is a preference, not a session.
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600

#: Everything a page uses comes from Paydesk itself; the QR code is inline SVG.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def template_environment(*, keep_trailing_newline: bool = False) -> Environment:
    """Jinja for Paydesk's templates (pages and emails): HTML escaped, undefined names an
    error, the gettext extension for the catalogues."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=keep_trailing_newline,
        extensions=["jinja2.ext.i18n"],
    )


class Pages:
    """Templates and catalogues, built once per process."""

    def __init__(self, catalogues: Catalogues | None = None) -> None:
        self.catalogues = catalogues or Catalogues()
        self.environment = template_environment()
        self.environment.globals["static"] = static_url

    def language(self, request: Request) -> Language:
        return self.catalogues.negotiate(
            request.query_params.get("lang"),
            request.cookies.get(LANGUAGE_COOKIE),
            request.headers.get("accept-language"),
        )

    def render_fragment(self, template: str, language: Language, **context: Any) -> str:
        return self.environment.get_template(template).render(
            **context,
            language=language,
            languages=self.catalogues.languages,
            _=language.gettext,
            gettext=language.gettext,
            ngettext=language.ngettext,
        )

    def render(
        self,
        request: Request,
        template: str,
        language: Language,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.render_fragment(
            template, language, **context, switch_url=lambda code: _with_lang(request, code)
        )
        response = HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
        requested = request.query_params.get("lang")
        if requested and self.catalogues.get(requested) is language:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language.code,
                max_age=LANGUAGE_COOKIE_SECONDS,
                httponly=True,
                samesite="lax",
            )
        return response


class _StaticFiles(StaticFiles):
    """Paydesk's CSS and scripts. A URL carrying the content hash (`static_url`) never
    changes meaning, so browsers may keep it for a year without asking again."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        scope = args[2] if len(args) > 2 else kwargs["scope"]
        if b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_files() -> StaticFiles:
    return _StaticFiles(directory=STATIC_DIR)


@cache
def static_url(name: str) -> str:
    """The file's URL with a hash of its content, so a new release is never served
    from a browser's stale cache."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PATH}/{name}?v={digest}"


def _with_lang(request: Request, code: str) -> str:
    params = [(key, value) for key, value in request.query_params.multi_items() if key != "lang"]
    params.append(("lang", code))
    return f"{request.url.path}?{urlencode(params)}"
