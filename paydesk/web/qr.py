"""QR codes of payment URIs: a PNG data URI for the API, inline SVG for the hosted pages.

Always a full QR code (never a Micro QR, which phone cameras do not read), error
correction level M, the standard quiet zone of four modules, and dark modules on an
opaque white background so the code still scans on a page in dark mode.
"""

from __future__ import annotations

import functools

import segno

ERROR_LEVEL = "m"
#: The quiet zone the QR standard asks for, in modules.
BORDER = 4
#: The PNG's width and height aim at this many pixels (whole pixels per module).
PNG_TARGET_PIXELS = 290
DARK = "#000"
LIGHT = "#fff"


def _make(text: str) -> segno.QRCode:
    return segno.make_qr(text, error=ERROR_LEVEL, boost_error=False)


def qr_png_data_uri(text: str) -> str:
    """`data:image/png;base64,…` of `text`, about 250 to 330 pixels wide."""
    code = _make(text)
    width, _ = code.symbol_size(scale=1, border=BORDER)
    scale = max(1, round(PNG_TARGET_PIXELS / width))
    return code.png_data_uri(scale=scale, border=BORDER, dark=DARK, light=LIGHT)


# Cached: a page reloaded, or re-rendered for its live status, draws its code once.
@functools.lru_cache(maxsize=1024)
def qr_svg(text: str, *, title: str) -> str:
    """Inline `<svg>` of `text` for an HTML page: no XML declaration, no width or height
    (a viewBox only, so CSS sizes it), `title` as its accessible name."""
    markup = _make(text).svg_inline(
        scale=1, border=BORDER, dark=DARK, light=LIGHT, title=title, omitsize=True
    )
    # An image to assistive technology; no anti-aliased seams between modules when scaled.
    return markup.replace("<svg ", '<svg role="img" shape-rendering="crispEdges" ', 1)
