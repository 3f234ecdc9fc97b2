"""The bare ceiling: the same framework and driver doing the least a signed invoice
create can do — parse and validate the JSON body, check the md5 signature, insert one
invoice-like row with asyncpg, answer in the Cryptomus envelope."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

DSN = os.environ["BENCH_CEILING_DSN"]
MERCHANT = uuid.UUID(os.environ["BENCH_MERCHANT"])
KEY = os.environ["BENCH_PAYMENT_KEY"].encode()
POOL = int(os.environ.get("BENCH_POOL", "20"))


class Body(BaseModel):
    amount: Decimal
    currency: str = Field(max_length=16)
    order_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/payment")
@app.post("/v1/payout")
async def create(request: Request) -> JSONResponse:
    raw = await request.body()
    expected = hashlib.md5(base64.b64encode(raw) + KEY, usedforsecurity=False).hexdigest()
    if request.headers.get("merchant") != str(MERCHANT) or not hmac.compare_digest(
        expected, request.headers.get("sign", "")
    ):
        return JSONResponse({"state": 1, "message": "Invalid Sign."}, status_code=401)
    body = Body.model_validate_json(raw)
    now = datetime.now(UTC)
    invoice_uuid = uuid.uuid4()
    await request.app.state.pool.execute(
        "INSERT INTO bench_invoices VALUES ($1, $2, $3, $4, $5, 'check', $6, $7)",
        invoice_uuid,
        MERCHANT,
        body.order_id,
        body.amount,
        body.currency,
        now,
        now,
    )
    return JSONResponse(
        {
            "state": 0,
            "result": {
                "uuid": str(invoice_uuid),
                "order_id": body.order_id,
                "amount": f"{body.amount:f}",
                "currency": body.currency,
                "status": "check",
                "created_at": now.isoformat(timespec="seconds"),
            },
        }
    )


BEARER = os.environ.get("BENCH_BEARER", "")


class Customer(BaseModel):
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)


class MonerooBody(BaseModel):
    amount: Decimal = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    description: str = Field(default="", max_length=155)
    return_url: str = Field(max_length=2000)
    customer: Customer
    metadata: dict[str, str] = Field(default_factory=dict, max_length=10)


@app.post("/v1/payments/initialize")
async def initialize(request: Request) -> JSONResponse:
    """The least a Moneroo initialize can do: the Bearer key, the body validated, one row."""
    header = request.headers.get("authorization", "")
    if not hmac.compare_digest(header, f"Bearer {BEARER}"):
        return JSONResponse({"success": False, "message": "Unauthenticated.", "data": None,
                             "errors": None}, status_code=401)  # fmt: skip
    body = MonerooBody.model_validate_json(await request.body())
    now = datetime.now(UTC)
    payment_id = uuid.uuid4()
    await request.app.state.pool.execute(
        "INSERT INTO bench_invoices VALUES ($1, $2, $3, $4, $5, 'initiated', $6, $7)",
        payment_id,
        MERCHANT,
        payment_id.hex,
        body.amount,
        body.currency,
        now,
        now,
    )
    url = f"http://127.0.0.1/moneroo/checkout/{payment_id.hex}"
    return JSONResponse(
        {"success": True, "message": "Transaction initialized successfully",
         "data": {"id": payment_id.hex, "checkout_url": url, "link": url}, "errors": None},
        status_code=201,
    )  # fmt: skip
