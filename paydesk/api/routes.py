"""What both dialects' routers share: no exception leaves an endpoint as anything but the
dialect's own error body (clients decode every answer as their envelope)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def guarded_route(render: Callable[[Exception], Response]) -> type[APIRoute]:
    """A route class whose endpoints answer every exception with `render(exc)`."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    return render(exc)

            return guarded

    return GuardedRoute
