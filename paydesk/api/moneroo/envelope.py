"""The Moneroo envelope and its errors.

Every answer is a JSON object with `success`, `message`, `data` and `errors`. On success
`errors` is `null` (never `[]`: the Flutter SDK casts it to a map) and `message` says
"successfully" (some client code looks for the word). Failures carry the HTTP status the
SDKs map to their exceptions, `data: null`, and a list of error objects.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Response
from pydantic_core import to_json

from paydesk.api.numbers import with_json_numbers
from paydesk.api.routes import guarded_route

log = structlog.get_logger(__name__)


def success(message: str, data: Any, status: int = 200) -> Response:
    """`data` as JSON (pydantic models, dicts, lists), in the success envelope."""
    body = (
        b'{"success":true,"message":'
        + to_json(message)
        + b',"data":'
        + with_json_numbers(to_json(data, by_alias=True))
        + b',"errors":null}'
    )
    return Response(body, status_code=status, media_type="application/json")


class MonerooError(Exception):
    """A failure answered in the envelope: `errors` lists one object per problem."""

    def __init__(
        self,
        message: str,
        status: int = 422,
        errors: list[dict[str, Any]] | None = None,
        *,
        kind: str = "request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or [{"type": kind, "field": None, "message": message, "hint": None}]

    def response(self) -> Response:
        body = {"success": False, "message": self.message, "data": None, "errors": self.errors}
        headers = {"Retry-After": "60"} if self.status == 429 else None
        return Response(to_json(body), status_code=self.status, media_type="application/json",
                        headers=headers)  # fmt: skip


def field_error(field: str, message: str) -> dict[str, Any]:
    return {"type": "validation_error", "field": field, "message": message, "hint": None}


class ValidationFailed(MonerooError):
    """422 with every problem at once; `message` is the first one's, as Laravel words it."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"], 422, errors)


def not_found(message: str = "Payment transaction not found.") -> MonerooError:
    return MonerooError(message, 404, kind="not_found")


SERVER_ERROR = "An unexpected error occurred. Please try again later."


def render(exc: Exception) -> Response:
    if isinstance(exc, MonerooError):
        return exc.response()
    log.exception("moneroo.unhandled", exc_info=exc)
    return MonerooError(SERVER_ERROR, 500, kind="server_error").response()


#: Every failure inside a Moneroo endpoint leaves in the envelope, never as HTML or an
#: empty body (the PHP SDKs decode every answer as JSON).
MonerooRoute = guarded_route(render)
