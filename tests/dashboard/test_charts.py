"""The dashboard's SVG charts: well-formed, exact, escaped, and allowed by the CSP."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from markupsafe import Markup

from paydesk.dashboard.charts import (
    BOTTOM,
    HEIGHT,
    ROW_HEIGHT,
    TOP,
    bar_chart,
    horizontal_bars,
    nice_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"
PLOT_HEIGHT = Decimal(HEIGHT - TOP - BOTTOM)


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    text = str(markup)
    assert "style=" not in text
    assert "<script" not in text.lower()
    # Coordinates carry at most two decimals.
    assert not re.search(r'="-?\d+\.\d{3,}"', text)
    return ET.fromstring(text)


def bars(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "chart-bar"]


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def days(count: int) -> list[str]:
    return [f"2025-11-{day:02d}" for day in range(1, count + 1)]


def test_bar_chart_scales_exactly_and_says_the_exact_values() -> None:
    values = [Decimal("12.50"), Decimal(0), Decimal("25"), Decimal("0.000000000000000001")]
    root = parse(bar_chart(days(4), values, title="Volume", unit="USDT", id="vol"))

    assert root.get("viewBox") == "0 0 640 240"
    assert root.get("width") == "100%"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "vol-title"
    assert root.find(f"{SVG}title").text == "Volume"
    assert root.find(f"{SVG}title").get("id") == "vol-title"
    assert root.find(f"{SVG}desc").get("id") == root.get("aria-describedby")
    drawn = bars(root)
    assert len(drawn) == len(values)
    heights = [Decimal(bar.get("height")) for bar in drawn]
    assert max(heights) == PLOT_HEIGHT == heights[2]
    assert heights[0] == PLOT_HEIGHT / 2
    assert heights[1] == 0
    # Every bar stands on the same base line.
    assert {Decimal(bar.get("y")) + Decimal(bar.get("height")) for bar in drawn} == {
        TOP + PLOT_HEIGHT
    }
    assert [bar.find(f"{SVG}title").text for bar in drawn] == [
        "2025-11-01: 12.50 USDT",
        "2025-11-02: 0 USDT",
        "2025-11-03: 25 USDT",
        "2025-11-04: 0.000000000000000001 USDT",
    ]


def test_y_axis_has_three_to_five_nice_ticks() -> None:
    root = parse(bar_chart(days(2), [Decimal("37"), Decimal(3)], title="t", unit=""))
    assert texts(root)[:4] == ["0", "10", "20", "30"]


@pytest.mark.parametrize(
    "top",
    ["1", "2", "2.5", "3", "4.99", "5", "7", "9.99", "10", "37", "100", "123456.78",
     "0.000000000000000001", "999999999999999999999999999999"],
)  # fmt: skip
def test_nice_ticks(top: str) -> None:
    ticks = nice_ticks(Decimal(top))
    assert 3 <= len(ticks) <= 5
    assert ticks[0] == 0
    assert ticks[-1] <= Decimal(top)
    step = ticks[1]
    assert step.normalize().as_tuple().digits in ((1,), (2,), (5,))
    assert all(b - a == step for a, b in itertools.pairwise(ticks))


def test_all_zeros_and_empty_still_render() -> None:
    root = parse(bar_chart(days(3), [Decimal(0)] * 3, title="Nothing", unit="BTC"))
    assert [bar.get("height") for bar in bars(root)] == ["0", "0", "0"]
    assert 3 <= len(texts(root)) - 3 <= 5
    assert bars(parse(bar_chart([], [], title="Nothing", unit="BTC"))) == []
    assert bars(parse(horizontal_bars([], title="No invoices"))) == []


def test_x_labels_are_thinned() -> None:
    labels = days(30)
    root = parse(bar_chart(labels, [Decimal(n) for n in range(30)], title="t", unit="u"))
    shown = [text for text in texts(root) if text in labels]
    assert 2 <= len(shown) <= 8
    assert shown[0] == labels[0]
    xs = [
        Decimal(element.get("x")) for element in root.iter(f"{SVG}text") if element.text in labels
    ]
    assert all(b - a >= 7 * 10 for a, b in itertools.pairwise(xs))
    assert min(xs) >= 35 and max(xs) <= 640 - 35


def test_text_is_escaped() -> None:
    nasty = "<b>&\"'</b>"
    for markup in (
        bar_chart([nasty], [Decimal(1)], title=nasty, unit=nasty),
        horizontal_bars([(nasty, 2)], title=nasty),
    ):
        assert "<b>" not in str(markup)
        root = parse(markup)
        assert root.find(f"{SVG}title").text == nasty
        assert all(nasty in (element.text or "") for element in root.iter(f"{SVG}title"))
        assert nasty in texts(root)


def test_ids_are_unique_per_call_and_checked() -> None:
    first = parse(bar_chart(["a"], [Decimal(1)], title="t", unit="u"))
    second = parse(horizontal_bars([("a", 1)], title="t"))
    assert first.get("aria-labelledby") != second.get("aria-labelledby")
    with pytest.raises(ValueError):
        bar_chart(["a"], [Decimal(1)], title="t", unit="u", id='x" onload="')


def test_refuses_mismatched_or_negative_input() -> None:
    with pytest.raises(ValueError):
        bar_chart(["a", "b"], [Decimal(1)], title="t", unit="u")
    with pytest.raises(ValueError):
        bar_chart(["a"], [Decimal(-1)], title="t", unit="u")
    with pytest.raises(ValueError):
        horizontal_bars([("a", -1)], title="t")


def test_horizontal_bars() -> None:
    items = [("check", 3), ("paid", 6), ("cancel", 0)]
    root = parse(horizontal_bars(items, title="Invoices by status", id="st"))
    assert root.get("viewBox") == f"0 0 640 {3 * ROW_HEIGHT + 8}"
    drawn = bars(root)
    widths = [Decimal(bar.get("width")) for bar in drawn]
    assert widths[2] == 0
    assert widths[1] == 2 * widths[0]
    assert [row.find(f"{SVG}title").text for row in root.iter(f"{SVG}g")] == [
        "check: 3",
        "paid: 6",
        "cancel: 0",
    ]
    assert {"check", "paid", "cancel", "3", "6", "0"} <= set(texts(root))
