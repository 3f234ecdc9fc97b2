"""Server-rendered SVG charts for the dashboard: no JavaScript, no inline styles.

The pages' Content-Security-Policy allows styles from the site's own stylesheet only, so
the markup carries `class` attributes (styled there) and `fill`/`stroke` presentation
attributes as defaults. Amounts are scaled with `Decimal`, never floats; every text put
into the markup is escaped.
"""

from __future__ import annotations

import itertools
import re
from decimal import ROUND_HALF_UP, Decimal

from markupsafe import Markup, escape

from paydesk.money import MONEY, ZERO, plain

WIDTH = 640
HEIGHT = 240
#: Room above and below (x labels) the plot of `bar_chart`.
TOP, BOTTOM = 12, 28
#: An estimate of one character's width at the charts' font size, to keep labels apart.
CHAR_WIDTH = 7
FONT_SIZE = 11
#: At most this many x labels under a bar chart.
MAX_X_LABELS = 8
#: Height of one row of `horizontal_bars`.
ROW_HEIGHT = 24

_CENT = Decimal("0.01")
_STEPS = (Decimal(1), Decimal(2), Decimal(5))
_ID = re.compile(r"^[A-Za-z][\w-]*$")
_ids = itertools.count(1)


def nice_ticks(top: Decimal) -> list[Decimal]:
    """Three to five ticks from zero up to at most `top`, a 1, 2 or 5 × 10ⁿ step apart.

    The step is the smallest such number above top / 5, which is never above top / 2
    (the series never jumps by more than 2.5×), hence between 3 and 5 ticks. A top of
    zero or less is taken as one (an empty chart still gets an axis).
    """
    if top <= 0:
        top = Decimal(1)
    fifth = MONEY.divide(top, Decimal(5))
    exponent = fifth.adjusted()
    step = next(
        candidate
        for candidate in (
            base.scaleb(power) for power in (exponent, exponent + 1) for base in _STEPS
        )
        if candidate > fifth
    )
    count = int(MONEY.divide_int(top, step))
    return [MONEY.multiply(step, Decimal(index)) for index in range(count + 1)]


def bar_chart(
    labels: list[str],
    values: list[Decimal],
    *,
    title: str,
    unit: str,
    id: str | None = None,
) -> Markup:
    """Vertical bars, one per label (e.g. the volume of each day), scaled so the highest
    bar fills the plot; the y axis shows round values below it."""
    if len(labels) != len(values):
        raise ValueError("one label per value")
    if any(value < 0 for value in values):
        raise ValueError("bar charts show amounts of zero or more")
    prefix = _prefix(id)
    highest = max(values, default=ZERO)
    top = highest if highest > 0 else Decimal(1)
    ticks = nice_ticks(top)
    tick_texts = [plain(tick) for tick in ticks]
    # Each x label is centred under its bar: half the longest one fits on either side.
    label_width = CHAR_WIDTH * max((len(label) for label in labels), default=1)
    left = max(CHAR_WIDTH * max(len(text) for text in tick_texts) + 12, label_width // 2)
    right = max(8, label_width // 2)
    plot_width = Decimal(WIDTH - left - right)
    plot_height = Decimal(HEIGHT - TOP - BOTTOM)
    base = TOP + plot_height

    def y_of(value: Decimal) -> Decimal:
        return base - _scale(value, top, plot_height)

    parts = [_open(prefix, WIDTH, HEIGHT, title, _bar_description(labels, values, unit))]
    parts.append('<g class="chart-axis">')
    for tick, text in zip(ticks, tick_texts, strict=True):
        y = _num(y_of(tick))
        parts.append(
            f'<line class="chart-grid" x1="{left}" x2="{WIDTH - right}" y1="{y}" y2="{y}"'
            ' stroke="currentColor" stroke-opacity="0.2"/>'
            f'<text x="{left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle"'
            f' font-size="{FONT_SIZE}" fill="currentColor">{escape(text)}</text>'
        )
    parts.append("</g>")
    slot = MONEY.divide(plot_width, Decimal(len(values))) if values else plot_width
    bar_width = _num(MONEY.multiply(slot, Decimal("0.8")))
    parts.append('<g class="chart-bars">')
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + MONEY.multiply(slot, Decimal(index)) + MONEY.multiply(slot, Decimal("0.1"))
        y = y_of(value)
        parts.append(
            f'<rect class="chart-bar" x="{_num(x)}" y="{_num(y)}" width="{bar_width}"'
            f' height="{_num(base - y)}" fill="currentColor">'
            f"<title>{escape(label)}: {escape(_amount(value, unit))}</title></rect>"
        )
    parts.append("</g>")
    parts.append('<g class="chart-labels">')
    room = int(plot_width) // (label_width + 8)
    every = -(-len(labels) // max(1, min(MAX_X_LABELS, room))) if labels else 1
    for index in range(0, len(labels), every):
        x = left + MONEY.multiply(slot, Decimal(index) + Decimal("0.5"))
        parts.append(
            f'<text x="{_num(x)}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle"'
            f' font-size="{FONT_SIZE}" fill="currentColor">{escape(labels[index])}</text>'
        )
    parts.append("</g></svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def horizontal_bars(items: list[tuple[str, int]], *, title: str, id: str | None = None) -> Markup:
    """One labelled row per item (e.g. invoices per status), the largest filling the
    width, each with its count written after the bar."""
    if any(count < 0 for _, count in items):
        raise ValueError("counts are zero or more")
    prefix = _prefix(id)
    height = max(1, len(items)) * ROW_HEIGHT + 8
    left = CHAR_WIDTH * max((len(label) for label, _ in items), default=1) + 12
    right = CHAR_WIDTH * max((len(str(count)) for _, count in items), default=1) + 12
    span = Decimal(WIDTH - left - right)
    top = Decimal(max((count for _, count in items), default=0) or 1)
    total = sum(count for _, count in items)
    description = f"{len(items)} rows, {total} in all."
    parts = [_open(prefix, WIDTH, height, title, description)]
    for index, (label, count) in enumerate(items):
        y = 4 + index * ROW_HEIGHT
        middle = y + ROW_HEIGHT // 2
        length = _scale(Decimal(count), top, span)
        parts.append(
            f'<g class="chart-row"><title>{escape(label)}: {count}</title>'
            f'<text x="{left - 6}" y="{middle}" text-anchor="end" dominant-baseline="middle"'
            f' font-size="{FONT_SIZE}" fill="currentColor">{escape(label)}</text>'
            f'<rect class="chart-bar" x="{left}" y="{y + 4}" width="{_num(length)}"'
            f' height="{ROW_HEIGHT - 8}" fill="currentColor"/>'
            f'<text x="{_num(left + length + 6)}" y="{middle}" dominant-baseline="middle"'
            f' font-size="{FONT_SIZE}" fill="currentColor">{count}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


# --------------------------------------------------------------------------- helpers
def _prefix(id: str | None) -> str:
    """The caller's id prefix, or a fresh one: two charts on a page never share an id."""
    if id is None:
        return f"chart{next(_ids)}"
    if not _ID.match(id):
        raise ValueError("a chart id starts with a letter and has letters, digits, - or _")
    return id


def _open(prefix: str, width: int, height: int, title: str, description: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' width="100%" role="img" aria-labelledby="{prefix}-title"'
        f' aria-describedby="{prefix}-desc">'
        f'<title id="{prefix}-title">{escape(title)}</title>'
        f'<desc id="{prefix}-desc">{escape(description)}</desc>'
    )


def _bar_description(labels: list[str], values: list[Decimal], unit: str) -> str:
    if not values:
        return "No data."
    highest = max(range(len(values)), key=values.__getitem__)
    total = ZERO
    for value in values:
        total = MONEY.add(total, value)
    return (
        f"{len(values)} bars from {labels[0]} to {labels[-1]}; highest"
        f" {_amount(values[highest], unit)} ({labels[highest]}), total {_amount(total, unit)}."
    )


def _amount(value: Decimal, unit: str) -> str:
    """The exact amount as fixed-point text (as stored: "12.50" stays "12.50")."""
    text = f"{value:f}"
    return f"{text} {unit}" if unit else text


def _scale(value: Decimal, top: Decimal, length: Decimal) -> Decimal:
    """`value`'s share of `length`, rounded to what is printed; `top` is never zero."""
    exact = MONEY.divide(MONEY.multiply(value, length), top)
    return exact.quantize(_CENT, rounding=ROUND_HALF_UP, context=MONEY)


def _num(value: Decimal | int) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    rounded = Decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP, context=MONEY)
    return plain(rounded)
