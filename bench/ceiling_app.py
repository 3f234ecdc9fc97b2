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
