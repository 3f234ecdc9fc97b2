"""The dashboard's pages on one router, and how its refusals look (a page, not JSON)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from paydesk.dashboard.pages import render
from paydesk.dashboard.security import DASHBOARD, NotSignedIn

__all__ = ["DASHBOARD", "error_page", "install", "router"]
from paydesk.dashboard.views import accounts, invoices, links, projects, statistics, wallets
from paydesk.web.forms import see_other

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> Response:
    """A browser pointed at the server lands in the dashboard (sign-in or sign-up)."""
    return see_other(DASHBOARD)


for view in (accounts, projects, invoices, links, wallets, statistics):
    router.include_router(view.router)

HEADINGS = {403: "Not allowed", 404: "Page not found", 405: "Not allowed"}


def install(app: FastAPI) -> None:
    app.include_router(router)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if exc.second_factor:
            return see_other(f"{DASHBOARD}/login/code")
        return see_other(f"{DASHBOARD}/login?next={quote(request.url.path)}")


def error_page(request: Request, exc: StarletteHTTPException) -> Response:
    """The dashboard's 403/404 as a page (the API's stay JSON)."""
    heading = HEADINGS.get(exc.status_code, "Something went wrong")
    message = (
        str(exc.detail)
        if exc.status_code != 404
        else ("There is nothing here, or it belongs to another account.")
    )
    return render(request, "error.html", heading=heading, message=message,
                  status_code=exc.status_code)  # fmt: skip
