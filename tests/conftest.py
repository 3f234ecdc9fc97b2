"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

Each backend gets one database per test worker, migrated once with the real Alembic chain
and emptied after every test. PostgreSQL is used whenever it answers on
127.0.0.1:5432 (override with PAYDESK_TEST_PG_URL); under CI an unreachable PostgreSQL
fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from paydesk import migrations
from paydesk.app import create_app
from paydesk.config import Settings
from paydesk.context import Context, build_context
from paydesk.db import Base
from paydesk.merchants.service import IssuedMerchant, create_merchant
from paydesk.vault import generate_master_key
from tests.receiver import Receiver

PG_ADMIN_URL = os.environ.get(
    "PAYDESK_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PUBLIC_URL = "https://pay.example.test"
MASTER_KEY = generate_master_key()
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


# --------------------------------------------------------------------------- PostgreSQL
def _pg_reachable() -> bool:
    url = make_url(PG_ADMIN_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2):
            return True
    except OSError:
        return False


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    url = make_url(PG_ADMIN_URL)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def pg_database_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_pg_database(name: str) -> str:
    asyncio.run(
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    )
    return pg_database_url(name)


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    if _pg_reachable():
        return True
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI and does not answer at {PG_ADMIN_URL}")
    return False


# --------------------------------------------------------------------------- databases
@dataclass(frozen=True)
class TestDatabase:
    backend: str
    url: str


@pytest.fixture(scope="session")
def migrated_databases(
    tmp_path_factory: pytest.TempPathFactory, postgres_available: bool
) -> Iterator[dict[str, TestDatabase]]:
    """One migrated database per backend for this test worker."""
    databases: dict[str, TestDatabase] = {}
    sqlite_file = tmp_path_factory.mktemp("sqlite") / "paydesk.db"
    databases["sqlite"] = TestDatabase("sqlite", f"sqlite+aiosqlite:///{sqlite_file}")
    pg_name = f"paydesk_test_{worker_id()}"
    if postgres_available:
        databases["postgresql"] = TestDatabase("postgresql", create_pg_database(pg_name))
    for database in databases.values():
        migrations.upgrade(database.url)
    yield databases
    if postgres_available:
        drop_pg_database(pg_name)


@pytest.fixture(params=BACKENDS)
def database(
    request: pytest.FixtureRequest, migrated_databases: dict[str, TestDatabase]
) -> TestDatabase:
    if request.param not in migrated_databases:
        pytest.skip("PostgreSQL is not reachable")
    return migrated_databases[request.param]


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "public_url": PUBLIC_URL,
        "master_key": MASTER_KEY,
        "auth_cache_seconds": 0.0001,
        "embedded_worker": False,
        # No test reaches the internet: rate providers are pointed at local servers by
        # the tests that use them.
        "rate_providers": [],
        "rate_cache_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings of the `context` fixture."""
    return {}


@pytest.fixture
async def context(
    database: TestDatabase, tmp_path: Path, settings_overrides: dict[str, Any]
) -> AsyncIterator[Context]:
    ctx = build_context(make_settings(database.url, tmp_path, **settings_overrides))
    try:
        yield ctx
    finally:
        await _empty_tables(ctx)
        await ctx.close()


async def _empty_tables(ctx: Context) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with ctx.db.engine.begin() as connection:
        if ctx.db.is_sqlite:
            # The ledger's append-only triggers refuse DELETE: lift them for the clean-up.
            triggers = (
                await connection.execute(
                    text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                )
            ).all()
            for name, _ in triggers:
                await connection.execute(text(f'DROP TRIGGER "{name}"'))
            for name in tables:
                await connection.execute(text(f'DELETE FROM "{name}"'))
            for _, sql in triggers:
                await connection.execute(text(sql))
        else:
            quoted = ", ".join(f'"{name}"' for name in tables)
            await connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


# --------------------------------------------------------------------------- API helpers
def sign(body: bytes, key: str) -> str:
    return hashlib.md5(base64.b64encode(body) + key.encode()).hexdigest()


def compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


@dataclass
class CryptomusClient:
    """Signs requests the way the official SDKs do; every knob is overridable per call."""

    http: httpx.AsyncClient
    merchant: IssuedMerchant

    async def post(
        self,
        path: str,
        data: Any = None,
        *,
        body: bytes | None = None,
        key: str | None = None,
        headers: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        raw = body if body is not None else (b"" if data is None else compact(data))
        all_headers = {
            "merchant": str(self.merchant.merchant_id),
            "sign": sign(raw, key if key is not None else self.merchant.payment_key),
            "content-type": "application/json",
        }
        all_headers.update(headers or {})
        return await self.http.post(path, content=raw, headers=all_headers, params=params)

    async def result(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        response = await self.post(path, data, **kwargs)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["state"] == 0, payload
        return payload["result"]


@pytest.fixture
async def http(context: Context) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(context)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://paydesk.test") as client:
        yield client


@pytest.fixture
async def merchant(context: Context) -> IssuedMerchant:
    async with context.db.transaction() as session:
        return await create_merchant(session, context.vault, name="Shop", email="owner@shop.test")


@pytest.fixture
async def api(http: httpx.AsyncClient, merchant: IssuedMerchant) -> CryptomusClient:
    return CryptomusClient(http, merchant)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (callbacks there need `callback_allowlist`)."""
    running = Receiver()
    running.start()
    try:
        yield running
    finally:
        running.stop()
