"""Fixtures for network adapter tests against real nodes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chains.anvil import Anvil
from tests.evm import start_anvil


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    """A fresh anvil per test module."""
    yield from start_anvil()
