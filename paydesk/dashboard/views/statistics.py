"""The project's statistics page: invoices created and paid, the conversion rate, money
received per day per currency and invoices by status, over the last 7, 30 or 90 UTC days.

The charts are SVG drawn on the server (`paydesk.dashboard.charts`): the page needs no
script, no external file and nothing the Content-Security-Policy would refuse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from paydesk.dashboard.charts import bar_chart, horizontal_bars
from paydesk.dashboard.pages import project_url, render
from paydesk.dashboard.security import DASHBOARD, context_of, owned_project, visitor
from paydesk.dashboard.statistics import CurrencyVolume, Statistics, merchant_statistics
from paydesk.db import utcnow

router = APIRouter(prefix=f"{DASHBOARD}/projects", include_in_schema=False)

#: The windows the page offers; any other `?days=` shows the default.
WINDOWS: tuple[int, ...] = (7, 30, 90)
DEFAULT_WINDOW = 30


def window_of(raw: str | None) -> int:
    """`?days=` from a link anyone may edit: only the offered windows, so a request never
    asks for more work than the largest of them."""
    for days in WINDOWS:
        if raw == str(days):
            return days
    return DEFAULT_WINDOW


def volume_label(volume: CurrencyVolume) -> str:
    """Test money (devnet) is never mistaken for real money on the page."""
    return f"{volume.currency} (test)" if volume.test else volume.currency


@dataclass(frozen=True, slots=True)
class Chart:
    caption: str
    svg: Markup


def volume_charts(statistics: Statistics) -> list[Chart]:
    """One bar chart per currency: amounts of different coins cannot share an axis."""
    labels = [day.isoformat() for day in statistics.days]
    charts = []
    for index, volume in enumerate(statistics.volume, start=1):
        label = volume_label(volume)
        title = f"{label} received per day"
        svg = bar_chart(labels, volume.per_day, title=title, unit=volume.currency,
                        id=f"volume-{index}")  # fmt: skip
        charts.append(Chart(f"{title} (UTC days)", svg))
    return charts


def status_chart(statistics: Statistics) -> Chart | None:
    """Invoices by status, only the statuses that occur (the vocabulary has 14)."""
    rows = [(status, count) for status, count in statistics.counts.items() if count]
    if not rows:
        return None
    title = "Invoices created in the window, by current status"
    return Chart(title, horizontal_bars(rows, title=title, id="statuses"))


def fixed(amount: Decimal) -> str:
    """The exact total as fixed-point text (`str()` may write an exponent)."""
    return f"{amount:f}"


@router.get("/{merchant_id}/statistics")
async def statistics_page(request: Request, merchant_id: str) -> Response:
    context = context_of(request)
    days = window_of(request.query_params.get("days"))
    until: date = utcnow().date()
    since = until - timedelta(days=days - 1)
    async with context.db.transaction() as session:
        current = await visitor(request, session)
        project = await owned_project(session, current.user, merchant_id)
        statistics = await merchant_statistics(session, project.id, since=since, until=until)
    return render(
        request, "statistics.html", current, project=project, section="statistics",
        statistics=statistics, days=days, since=since, until=until,
        windows=[(choice, project_url(project, f"/statistics?days={choice}"))
                 for choice in WINDOWS],
        volume_charts=volume_charts(statistics), status_chart=status_chart(statistics),
        volume_label=volume_label, fixed=fixed,
    )  # fmt: skip
