from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from paydesk.db import Amount, Base, UTCDateTime


@dataclass(frozen=True, slots=True)
class Rate:
    """How many `quote` one `base` buys, from `source`, as of `as_of`."""

    base: str
    quote: str
    value: Decimal
    source: str
    as_of: datetime


class StoredRate(Base):
    """The latest rate of each provider for each pair: written by the refresher in the
    worker, read by every API process (so all of them price alike)."""

    __tablename__ = "exchange_rates"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    base: Mapped[str] = mapped_column(String(16), primary_key=True)
    quote: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[Decimal] = mapped_column(Amount)
    #: When the provider says the rate held (a reference rate's publication, a ticker's time).
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def as_rate(self) -> Rate:
        return Rate(self.base, self.quote, self.value, self.source, self.as_of)
