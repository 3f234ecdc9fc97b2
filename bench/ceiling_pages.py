"""The bare ceiling of a payment page view: the same framework and driver doing the least
a page can do: one indexed read of the invoice and an HTML page from an f-string (values
html-escaped), no template, no translations, no QR code."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

DSN = os.environ["BENCH_CEILING_DSN"]
POOL = int(os.environ.get("BENCH_POOL", "20"))
QUERY = (
    "SELECT amount, payer_amount, payer_currency, address, status, expired_at"
    " FROM invoices WHERE uuid = $1"
)
NOT_FOUND = HTMLResponse("<!doctype html><title>Not found</title><h1>Not found</h1>", 404)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/pay/{invoice_id}")
async def page(request: Request, invoice_id: str) -> HTMLResponse:
    try:
        invoice_uuid = uuid.UUID(invoice_id)
    except ValueError:
        return NOT_FOUND
    row = await request.app.state.pool.fetchrow(QUERY, invoice_uuid)
    if row is None:
        return NOT_FOUND
    amount = escape(f"{row['payer_amount'] or row['amount']:f}")
    currency = escape(row["payer_currency"] or "")
    address = escape(row["address"] or "")
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Pay {amount} {currency}</title></head>
<body>
<main>
<h1>Pay {amount} {currency}</h1>
<p>Status: {escape(row["status"])}</p>
<p>Send exactly <strong>{amount} {currency}</strong> to</p>
<p><code>{address}</code></p>
<p>Expires at <time datetime="{escape(row["expired_at"].isoformat())}">"""
        f"""{escape(row["expired_at"].strftime("%Y-%m-%d %H:%M UTC"))}</time></p>
</main>
</body>
</html>
""",
        headers={"Cache-Control": "no-store"},
    )
