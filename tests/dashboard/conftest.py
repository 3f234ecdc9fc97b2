"""A signed-in dashboard user with one project, driven over the app's ASGI interface."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from paydesk.accounts import service as accounts
from paydesk.app import create_app
from paydesk.context import Context
from paydesk.db import utcnow
from paydesk.merchants.models import User
from paydesk.merchants.service import ApiAccess, IssuedMerchant, create_merchant

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form token"
    return found.group(1)


@dataclass
class Dashboard:
    """A browser-like client: keeps cookies, reads the form token from the last page."""

    http: httpx.AsyncClient
    user: User
    project: IssuedMerchant
    csrf: str = ""

    @property
    def base(self) -> str:
        return f"/dashboard/projects/{self.project.merchant_id}"

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(path, **kwargs)
        token = _CSRF.search(response.text)
        if token:
            self.csrf = token.group(1)
        return response

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        if not self.csrf:
            await self.get(f"{self.base}")
        form = {"csrf_token": self.csrf, **(data or {})}
        return await self.http.post(path, data=form, **kwargs)


async def make_user(context: Context, email: str, password: str = PASSWORD) -> User:
    async with context.db.transaction() as session:
        user = User(
            id=uuid.uuid4(),
            email=email,
            password_hash=await accounts.hash_password(password),
            email_confirmed_at=utcnow(),
        )
        session.add(user)
        await session.flush()
        return user


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await http.get("/dashboard/login")
    return await http.post(
        "/dashboard/login",
        data={
            "csrf_token": csrf_of(page.text),
            "email": email,
            "password": password,
        },
    )


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its lowest cost: these tests hash and verify hundreds of passwords. The
    browser tests run `paydesk serve` with the real parameters."""
    cheap = accounts.Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(accounts, "passwords", cheap)


@pytest.fixture
async def browser(context: Context) -> AsyncIterator[httpx.AsyncClient]:
    """Over https, as the test server's public URL is: its cookies are Secure."""
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="https://paydesk.test") as client:
        yield client


@pytest.fixture
async def dashboard(browser: httpx.AsyncClient, context: Context) -> Dashboard:
    user = await make_user(context, "owner@shop.test")
    async with context.db.transaction() as session:
        project = await create_merchant(
            session, context.vault, name="Sock shop", user=user, api_access=ApiAccess.APPROVED
        )
    signed = await sign_in(browser, user.email)
    assert signed.status_code == 303, signed.text
    client = Dashboard(browser, user, project)
    await client.get(client.base)
    return client
