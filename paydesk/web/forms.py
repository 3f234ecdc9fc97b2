"""What the server-rendered pages share for their forms: reading a small urlencoded body
safely, and answering a POST with a redirect (so reloading never posts twice)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from paydesk.web.templating import PAGE_HEADERS

#: A payment page's form is a few short fields; anything longer is not one of ours.
MAX_FORM_BYTES = 2048


class Form(dict[str, list[str]]):
    """A form's fields, each with every value it was sent (checkboxes repeat a name)."""

    def get_one(self, name: str, default: str = "") -> str:
        values = self.get(name)
        return values[0] if values else default


async def read_fields(
    request: Request, *, max_bytes: int = 16 * 1024, max_fields: int = 200, max_length: int = 500
) -> Form:
    """The urlencoded body's fields, each value cut at `max_length`; an empty form for
    a body that is too long or not a form at all."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return Form()
    try:
        parsed = parse_qs(body.decode(), max_num_fields=max_fields, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return Form()
    return Form({key: [value[:max_length] for value in values] for key, values in parsed.items()})


async def read_form(request: Request, max_fields: int = 8) -> dict[str, str]:
    """A payment page's form: the first value of each field, at most 64 characters."""
    fields = await read_fields(request, max_bytes=MAX_FORM_BYTES, max_fields=max_fields,
                               max_length=64)  # fmt: skip
    return {key: values[0] for key, values in fields.items() if values and values[0]}


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=PAGE_HEADERS)
