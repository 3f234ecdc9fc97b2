from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Rate:
    """How many `quote` one `base` buys, from `source`, as of `as_of`."""

    base: str
    quote: str
    value: Decimal
    source: str
    as_of: datetime
