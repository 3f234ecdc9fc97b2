"""The statistics page as a signed-in merchant sees it, on SQLite and PostgreSQL: the
counts, the conversion rate, inline SVG charts whose bars carry the exact amounts, the
totals table, and the 7/30/90-day windows (anything else is 30)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, time, timedelta

from paydesk.db import utcnow
from paydesk.merchants.service import create_merchant
from tests.dashboard.conftest import Dashboard, make_user
from tests.dashboard.test_statistics import add_deposit, add_invoice

SVG = "{http://www.w3.org/2000/svg}"
_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)


def charts(page: str) -> dict[str, ET.Element]:
    """Every inline chart on the page by its title, parsed as XML (so also well-formed)."""
    parsed = [ET.fromstring(markup) for markup in _SVG.findall(page)]
    return {svg.findtext(f"{SVG}title") or "": svg for svg in parsed}


def bar_titles(svg: ET.Element) -> list[str]:
    return [rect.findtext(f"{SVG}title") or "" for rect in svg.iter(f"{SVG}rect")]


def row_titles(svg: ET.Element) -> list[str]:
    return [
        row.findtext(f"{SVG}title") or ""
        for row in svg.iter(f"{SVG}g")
        if row.get("class") == "chart-row"
    ]


def shown(page: str, name: str) -> str:
    found = re.search(rf'data-testid="{name}">([^<]*)<', page)
    assert found, f"no {name} on the page"
    return found.group(1)


def early(day: date) -> datetime:
    """A moment of that UTC day that is never in the future (the window ends today)."""
    return datetime.combine(day, time(0, 0, 1), tzinfo=UTC)


async def statistics(dashboard: Dashboard, query: str = "") -> str:
    response = await dashboard.get(f"{dashboard.base}/statistics{query}")
    assert response.status_code == 200, response.text
    return response.text


VOLUME = "USDT received per day"
TEST_VOLUME = "USDT (test) received per day"
ETH_VOLUME = "ETH received per day"
STATUSES = "Invoices created in the window, by current status"


async def test_counts_charts_and_totals(dashboard, context):
    me = dashboard.project.merchant_id
    today = utcnow().date()
    two_days_ago, yesterday, long_ago = (today - timedelta(days=n) for n in (2, 1, 20))
    await add_deposit(context, me, "12.50", early(two_days_ago))
    await add_deposit(context, me, "0.25", early(two_days_ago))
    await add_deposit(context, me, "3", early(yesterday), network="devnet")  # test money
    await add_deposit(context, me, "1.000000000000000001", early(long_ago), currency="ETH")
    await add_deposit(context, me, "99", early(yesterday), status="reversed")  # not counted
    for status in ("paid", "paid_over", "check"):
        await add_invoice(context, me, status, early(yesterday))

    page = await statistics(dashboard)
    assert 'aria-current="page">Statistics</a>' in page
    assert 'aria-current="page">Last 30 days</a>' in page
    assert shown(page, "window") == (
        f"{(today - timedelta(days=29)).isoformat()} to {today.isoformat()} (UTC days, 30 in all)."
    )
    assert (shown(page, "created"), shown(page, "paid")) == ("3", "2")
    assert shown(page, "conversion") == "66.7%"
    # Inline SVG only: no script, no inline style, nothing fetched from elsewhere.
    assert "<script" not in page and " style=" not in page and '<figure class="chart">' in page
    assert f"<figcaption>{VOLUME} (UTC days)</figcaption>" in page

    drawn = charts(page)
    assert set(drawn) == {VOLUME, TEST_VOLUME, ETH_VOLUME, STATUSES}
    usdt = bar_titles(drawn[VOLUME])
    assert len(usdt) == 30
    assert usdt[-3] == f"{two_days_ago.isoformat()}: 12.75 USDT"  # one day, summed exactly
    assert usdt[-1] == f"{today.isoformat()}: 0 USDT"
    assert bar_titles(drawn[TEST_VOLUME])[-2] == f"{yesterday.isoformat()}: 3 USDT"
    assert f"{long_ago.isoformat()}: 1.000000000000000001 ETH" in bar_titles(drawn[ETH_VOLUME])
    # Statuses that occur, none of the zeros.
    assert row_titles(drawn[STATUSES]) == ["check: 1", "paid: 1", "paid_over: 1"]

    assert shown(page, "total-USDT") == "12.75"
    assert shown(page, "total-USDT-test") == "3"
    assert shown(page, "total-ETH") == "1.000000000000000001"
    assert "<td>USDT (test)</td>" in page


async def test_the_windows(dashboard, context):
    me = dashboard.project.merchant_id
    today = utcnow().date()
    await add_deposit(context, me, "5", early(today - timedelta(days=20)), currency="ETH")
    await add_deposit(context, me, "7", early(today - timedelta(days=3)))

    week = await statistics(dashboard, "?days=7")
    assert 'aria-current="page">Last 7 days</a>' in week
    drawn = charts(week)
    assert ETH_VOLUME not in drawn and len(bar_titles(drawn[VOLUME])) == 7
    assert "total-ETH" not in week

    quarter = charts(await statistics(dashboard, "?days=90"))
    assert len(bar_titles(quarter[VOLUME])) == 90 and ETH_VOLUME in quarter

    default = await statistics(dashboard)
    for junk in ("junk", "365", "-7", "7.0", "0", "9" * 40):
        page = await statistics(dashboard, f"?days={junk}")
        assert 'aria-current="page">Last 30 days</a>' in page, junk
        assert shown(page, "window") == shown(default, "window")
        assert len(bar_titles(charts(page)[VOLUME])) == 30
        assert shown(page, "total-ETH") == "5"


async def test_an_empty_window(dashboard):
    page = await statistics(dashboard)
    assert (shown(page, "created"), shown(page, "paid"), shown(page, "conversion")) == (
        "0", "0", "—",
    )  # fmt: skip
    assert "No money received in this window." in page
    assert "No invoice was created in this window." in page
    assert "<svg" not in page


async def test_another_accounts_statistics_are_not_found(dashboard, context):
    stranger = await make_user(context, "stranger@elsewhere.test")
    async with context.db.transaction() as session:
        theirs = await create_merchant(session, context.vault, name="Elsewhere", user=stranger)
    await add_deposit(context, theirs.merchant_id, "8", early(utcnow().date()))
    answer = await dashboard.get(f"/dashboard/projects/{theirs.merchant_id}/statistics")
    assert answer.status_code == 404
    assert "<svg" not in (await statistics(dashboard))  # none of their money here either
