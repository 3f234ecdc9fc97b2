"""Fixtures for network adapter tests against real nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.chains.anvil import ANVIL_BINARY, REPO_ROOT, Anvil


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """A fresh anvil (chain id 1) per test module; under CI a missing binary fails."""
    if not ANVIL_BINARY.exists():
        where = ANVIL_BINARY.relative_to(REPO_ROOT)
        message = f"anvil is not installed ({where}): run `npm ci --prefix tools`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    node = Anvil(chain_id=1)
    try:
        yield node
    finally:
        node.stop()
