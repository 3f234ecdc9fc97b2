"""The ASGI application: both dialects on one host, plus health and OpenAPI."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from paydesk import __version__, migrations
from paydesk.api import openapi
from paydesk.api.cryptomus.payouts import router as payouts_router
from paydesk.api.cryptomus.router import router as cryptomus_router
from paydesk.api.cryptomus.static_wallets import router as wallets_router
from paydesk.api.cryptomus.testmode import router as testmode_router
from paydesk.api.moneroo.envelope import MonerooError
from paydesk.api.moneroo.methods import router as moneroo_methods_router
from paydesk.api.moneroo.payments import router as moneroo_payments_router
from paydesk.api.moneroo.payouts import router as moneroo_payouts_router
from paydesk.checkout.router import router as checkout_router
from paydesk.config import Settings
from paydesk.context import Context, build_context
from paydesk.dashboard import router as dashboard
from paydesk.logs import configure_logging
from paydesk.paypage.router import router as paypage_router
from paydesk.web.templating import STATIC_PATH, Pages, static_files
from paydesk.worker import run_workers

API_PREFIXES = ("/v1/", "/v2/")
#: Paths of the Moneroo dialect, whose errors take its envelope.
MONEROO_PREFIXES = ("/v1/payments", "/v1/payouts", "/v1/utils", "/utils/")


class SchemaOutOfDate(RuntimeError):
    pass


async def prepare_schema(context: Context) -> None:
    """Embedded SQLite migrates itself; PostgreSQL must be migrated by the operator
    (`paydesk migrate`), so that several API processes never race a migration."""
    url = context.settings.resolved_database_url
    head = migrations.head_revision()
    current = await migrations.current_revision(url)
    if current == head:
        return
    if context.settings.is_sqlite:
        await asyncio.to_thread(migrations.upgrade, url)
        return
    raise SchemaOutOfDate(
        f"the database schema is at revision {current or 'none'}, this Paydesk needs {head}: "
        "run `paydesk migrate` first"
    )


class StripTrailingSlash:
    """`/v1/payment/` is `/v1/payment`, and `/v1//payments/x` is `/v1/payments/x`: clients
    join base URLs and paths in different ways, and a redirect would turn their POST into a
    GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            cleaned = re.sub(r"/{2,}", "/", path)
            if len(cleaned) > 1 and cleaned.endswith("/"):
                cleaned = cleaned.rstrip("/") or "/"
            if cleaned != path:
                scope = dict(scope, path=cleaned)
        await self.app(scope, receive, send)


def create_app(context: Context | None = None, settings: Settings | None = None) -> FastAPI:
    """An app over `context`, or over one built from `settings` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = context is None
        if context is None:
            resolved = settings or Settings()
            configure_logging(resolved.log_level, resolved.log_json)
            ctx = build_context(resolved)
        else:
            ctx = context
        app.state.context = ctx
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        try:
            await prepare_schema(ctx)
            if owned:
                # A key path changed under addresses already handed out stops the
                # server here, not at its first invoice.
                async with ctx.db.transaction() as session:
                    await ctx.addresses.keys.load(session)
            if owned and ctx.settings.runs_embedded_worker:
                worker = asyncio.create_task(run_workers(ctx, stop))
            # Everything allocated so far lives as long as the process: keep the cyclic
            # garbage collector from rescanning it on every collection.
            gc.freeze()
            # Each request allocates a few thousand short-lived objects; collecting the
            # young generation every 700 allocations costs more than the memory saved.
            gc.set_threshold(50_000, 20, 100)
            yield
        finally:
            stop.set()
            live = getattr(app.state, "live_status", None)
            if live is not None:
                await live.close()
            if worker is not None:
                with suppress(Exception):
                    await worker
            if owned:
                await ctx.close()

    app = FastAPI(
        title="Paydesk",
        version=__version__,
        description="Self-hosted crypto payment gateway. Cryptomus-compatible API under "
        "`/v1/payment…`; authenticate with the `merchant` and `sign` headers.",
        lifespan=lifespan,
    )
    if context is not None:
        app.state.context = context
    app.add_middleware(StripTrailingSlash)
    app.include_router(cryptomus_router)
    app.include_router(wallets_router)
    app.include_router(payouts_router)
    app.include_router(moneroo_payments_router)
    app.include_router(moneroo_payouts_router)
    app.include_router(moneroo_methods_router)
    app.include_router(testmode_router)
    app.include_router(paypage_router)
    app.include_router(checkout_router)
    dashboard.install(app)
    app.mount(STATIC_PATH, static_files(), name="static")
    app.state.pages = Pages()

    @app.get("/healthz", tags=["Operations"], summary="Liveness and database reachability")
    async def healthz(request: Request) -> dict[str, Any]:
        ctx: Context = request.app.state.context
        async with ctx.db.reader() as session:
            await session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if path.startswith(dashboard.DASHBOARD):
            return dashboard.error_page(request, exc)
        if path.startswith(MONEROO_PREFIXES):
            # Moneroo's own wording; its SDKs decode every answer as the envelope.
            route = path.strip("/")
            message = (
                f"The route {route} could not be found."
                if exc.status_code == 404
                else f"The {request.method} method is not supported for route {route}."
            )
            return MonerooError(message, exc.status_code, kind="not_found").response()
        if path.startswith(API_PREFIXES):
            message = "Not found" if exc.status_code == 404 else str(exc.detail)
            return JSONResponse(
                {"state": 1, "message": message}, status_code=exc.status_code, headers=exc.headers
            )
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    openapi.install(app)
    return app
