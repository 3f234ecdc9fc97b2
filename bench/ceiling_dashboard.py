"""The bare ceilings of two dashboard requests, with the same framework, driver and
template engine as Paydesk:

- GET /dashboard/projects/{id}/invoices[?q=]: the session cookie checked with one SELECT
  by its SHA-256 digest (joined with the project, so it also checks the owner), the 25
  newest invoices of the project with the list's ORDER BY (and, with `q`, the same search
  conditions), a Jinja table. No SQLAlchemy, no transaction, no layout around the table.
- POST /dashboard/login: the form's CSRF field against its cookie, one SELECT of the
  user's argon2id hash, the same `PasswordHasher().verify` on the event loop, a 303 with a
  session cookie (no session row is written).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from urllib.parse import parse_qs

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment

DSN = os.environ["BENCH_CEILING_DSN"]
POOL = int(os.environ.get("BENCH_POOL", "20"))
PER_PAGE = 25
SESSION = (
    "SELECT m.name FROM user_sessions s JOIN merchants m ON m.user_id = s.user_id"
    " WHERE s.token_digest = $1 AND m.id = $2 AND s.expires_at > now()"
    " AND NOT s.needs_second_factor"
)
COLUMNS = (
    "SELECT uuid, created_at, order_id, amount, currency, payer_amount, payer_currency,"
    " network, status FROM invoices WHERE merchant_id = $1"
)
ORDER = " ORDER BY created_at DESC, id DESC LIMIT $2"
NEWEST = COLUMNS + ORDER
#: The dashboard's search: an order_id prefix, an address, a txid, or a deposit's txid.
SEARCH = (
    COLUMNS + " AND (substr(order_id, 1, length($3)) = $3 OR address = $3 OR txid = $3"
    " OR id IN (SELECT invoice_id FROM deposits WHERE merchant_id = $1 AND txid = $3"
    " AND invoice_id IS NOT NULL))" + ORDER
)
USER = "SELECT password_hash FROM users WHERE email = $1 AND email_confirmed_at IS NOT NULL"
TABLE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Invoices · {{ name }}</title></head>
<body><main><h1>Invoices</h1>
<table>
<thead><tr><th>Created (UTC)</th><th>Order id</th><th>Amount</th><th>Payer pays</th>
<th>Status</th><th></th></tr></thead>
<tbody>
{% for row in rows %}<tr>
<td>{{ row.created_at.strftime("%Y-%m-%d %H:%M:%S UTC") }}</td>
<td>{{ row.order_id }}</td>
<td>{{ fixed(row.amount) }} {{ row.currency }}</td>
<td>{% if row.payer_currency %}{{ fixed(row.payer_amount) }} {{ row.payer_currency }}"""
    """ ({{ row.network }}){% else %}not chosen yet{% endif %}</td>
<td>{{ row.status }}</td>
<td><a href="{{ base }}/invoices/{{ row.uuid }}">Details</a></td>
</tr>
{% endfor %}</tbody>
</table>
{% if more %}<a rel="next" href="{{ base }}/invoices?page=2">Older</a>{% endif %}
</main></body></html>
"""
)
NOT_FOUND = HTMLResponse("Not found", 404)
_hasher = PasswordHasher()


def fixed(amount: Decimal | None) -> str:
    return "" if amount is None else f"{amount:f}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/dashboard/projects/{merchant_id}/invoices")
async def invoices(request: Request, merchant_id: str, q: str | None = None) -> Response:
    token = request.cookies.get("paydesk_session")
    try:
        project = uuid.UUID(merchant_id)
    except ValueError:
        return NOT_FOUND
    if not token or len(token) > 100:
        return Response(status_code=303, headers={"Location": "/dashboard/login"})
    pool: asyncpg.Pool = request.app.state.pool
    name = await pool.fetchval(SESSION, hashlib.sha256(token.encode()).hexdigest(), project)
    if name is None:
        return NOT_FOUND
    query = (q or "").strip()[:128]
    if query:
        rows = await pool.fetch(SEARCH, project, PER_PAGE + 1, query)
    else:
        rows = await pool.fetch(NEWEST, project, PER_PAGE + 1)
    page = TABLE.render(
        name=name,
        rows=rows[:PER_PAGE],
        more=len(rows) > PER_PAGE,
        base=f"/dashboard/projects/{project}",
        fixed=fixed,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@app.post("/dashboard/login")
async def login(request: Request) -> Response:
    fields = parse_qs((await request.body()).decode(errors="replace"))
    given = (fields.get("csrf_token") or [""])[0]
    expected = request.cookies.get("paydesk_csrf") or ""
    if not expected or not hmac.compare_digest(given, expected):
        return Response("The form has expired.", 403)
    email = (fields.get("email") or [""])[0].strip().lower()
    password = (fields.get("password") or [""])[0]
    stored = await request.app.state.pool.fetchval(USER, email)
    try:
        good = stored is not None and _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        good = False
    if not good:
        return Response("Wrong email or password.", 401)
    response = Response(status_code=303, headers={"Location": "/dashboard/projects"})
    response.set_cookie(
        "paydesk_session", secrets.token_urlsafe(32), path="/dashboard", httponly=True,
        samesite="lax",
    )  # fmt: skip
    return response
