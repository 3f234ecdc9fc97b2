"""What the server-rendered pages share for their forms: reading a small urlencoded body
safely, and answering a POST with a redirect (so reloading never posts twice)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from paydesk.web.templating import PAGE_HEADERS

#: A page's form is a few short fields; anything longer is not one of ours.
MAX_FORM_BYTES = 2048


async def read_form(request: Request, max_fields: int = 8) -> dict[str, str]:
    """The form's fields (first value each, at most 64 characters); {} for anything else."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        parsed = parse_qs(body.decode(), max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {key: values[0][:64] for key, values in parsed.items()}


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=PAGE_HEADERS)
