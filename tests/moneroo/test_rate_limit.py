"""Moneroo's rate limit: so many requests per minute per key, then 429 in the envelope with
`Retry-After: 60`; other keys and the next minute are not affected."""

from __future__ import annotations

import pytest

from paydesk.api.moneroo.ratelimit import RateLimiter
from tests.moneroo.test_payments_api import MonerooClient, keys_of


@pytest.fixture
def settings_overrides():
    return {"moneroo_rate_limit_per_minute": 5}


async def test_the_sixth_request_of_a_minute_is_refused(http, context, merchant):
    keys = await keys_of(context, merchant.merchant_id)
    sandbox = MonerooClient(http, keys.sandbox_secret_key)
    live = MonerooClient(http, keys.live_secret_key)
    for _ in range(5):
        assert (await sandbox.call("GET", "/v1/payments/py_000000000000")).status_code == 404
    refused = await sandbox.call("GET", "/v1/payments/py_000000000000")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    assert refused.json()["success"] is False and refused.json()["data"] is None
    assert (await live.call("GET", "/v1/payments/py_000000000000")).status_code == 404


def test_windows_roll_over_each_minute():
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    assert limiter.allow("other")
    now[0] += 60
    assert limiter.allow("k")
    assert RateLimiter(0).allow("k")  # 0: no limit
