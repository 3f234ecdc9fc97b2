"""Webhook tests post to a real receiver on 127.0.0.1 (`tests.receiver`)."""

from __future__ import annotations

import pytest


@pytest.fixture
def settings_overrides():
    return {"callback_allowlist": ["127.0.0.0/8"]}
