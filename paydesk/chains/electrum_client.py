"""A client of the Electrum protocol (ElectrumX, Fulcrum): JSON-RPC 2.0 over one TCP
connection, newline-delimited, optionally TLS, through aiorpcX (the library ElectrumX
itself is built on).

One connection serves every request and carries the server's notifications (a watched
script hash changed). It is opened on first use and again after it broke; each new one
has a higher `generation`, so a caller knows its subscriptions were lost with the old one.
Every transport failure, timeout or error answer is a ChainUnavailable: the watcher tries
again later.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aiorpcx import (
    NewlineFramer,
    Notification,
    ProtocolError,
    RPCError,
    RPCSession,
    TaskTimeout,
    connect_rs,
)

from paydesk.chains.adapter import ChainUnavailable

#: URL schemes that select an Electrum server instead of a node's JSON-RPC.
ELECTRUM_SCHEMES = ("tcp", "ssl")
#: Versions of the protocol spoken: 1.4 has every call used here, 1.4.2 adds
#: `blockchain.scripthash.unsubscribe`. ElectrumX and Fulcrum both serve this range.
PROTOCOL_RANGE = ("1.4", "1.4.2")
#: Largest answer accepted, in bytes: a raw transaction of a full block's weight is 8 MB of
#: hex (aiorpcX's default of 1 MB would drop it and leave the request to time out).
MAX_MESSAGE = 16_000_000

#: Called with (method, params) for every notification the server sends.
NotificationHandler = Callable[[str, Sequence[Any]], None]


def is_electrum_url(url: str) -> bool:
    """`tcp://host:port` or `ssl://host:port`: an Electrum server, not a node's HTTP RPC."""
    return urlsplit(url).scheme.lower() in ELECTRUM_SCHEMES


class ElectrumError(ChainUnavailable):
    """The server answered a request with an error (its code and message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


class _Session(RPCSession):
    """aiorpcX's client session, handing the server's notifications to the client."""

    on_notification: NotificationHandler | None = None

    async def handle_request(self, request: Any) -> None:
        if isinstance(request, Notification) and self.on_notification is not None:
            self.on_notification(request.method, request.args)


class ElectrumClient:
    """One Electrum server at `url` (`tcp://host:port` or `ssl://host:port`; TLS checks
    the server's certificate against the system's authorities)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        on_notification: NotificationHandler | None = None,
        client_name: str = "paydesk",
    ) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ELECTRUM_SCHEMES or not parts.hostname or parts.port is None:
            raise ValueError(
                f"not an Electrum server URL (tcp://host:port or ssl://host:port): {url}"
            )
        self.host: str = parts.hostname
        self.port: int = parts.port
        self.tls = scheme == "ssl"
        self.timeout = timeout
        self.client_name = client_name
        self.on_notification = on_notification
        #: The protocol version the server agreed to ("" before the first connection).
        self.protocol = ""
        #: Counts connections opened: subscriptions live as long as one connection.
        self.generation = 0
        self._session: _Session | None = None
        self._connecting = asyncio.Lock()

    @property
    def address(self) -> str:
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.is_closing()

    async def connect(self) -> int:
        """Open the connection unless it is open; its generation."""
        await self._connected()
        return self.generation

    async def request(self, method: str, *params: Any) -> Any:
        """One call's result; ChainUnavailable when the server could not answer it."""
        session = await self._connected()
        try:
            async with asyncio.timeout(self.timeout):
                return await session.send_request(method, params)
        except RPCError as exc:
            raise ElectrumError(exc.code, exc.message) from None
        except (TimeoutError, TaskTimeout):
            # A server that stopped answering: start afresh on the next request.
            await self._drop(session)
            raise ChainUnavailable(f"{self.address}: {method} timed out") from None
        except (OSError, ProtocolError) as exc:
            await self._drop(session)
            raise ChainUnavailable(f"{self.address}: {method}: {exc!r}") from None
        except asyncio.CancelledError:
            # aiorpcX cancels the requests in flight when the connection is lost; only a
            # cancellation of this task itself goes on as one.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            await self._drop(session)
            raise ChainUnavailable(f"{self.address}: the connection was lost") from None

    async def requests(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls at once (pipelined on the one connection), results in order; the
        first failure is raised once all have finished."""
        answers = await asyncio.gather(
            *(self.request(method, *params) for method, params in calls), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return answers

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close(force_after=2)

    # ------------------------------------------------------------------ internals
    async def _connected(self) -> _Session:
        async with self._connecting:
            if self._session is not None and not self._session.is_closing():
                return self._session
            if self._session is not None:
                await self._drop(self._session)
            context = ssl.create_default_context() if self.tls else None
            client = connect_rs(
                self.host, self.port, session_factory=_Session,
                framer=NewlineFramer(max_size=MAX_MESSAGE), ssl=context,
            )  # fmt: skip
            try:
                async with asyncio.timeout(self.timeout):
                    _transport, protocol = await client.create_connection()
            except (OSError, TimeoutError) as exc:
                raise ChainUnavailable(f"{self.address} unreachable: {exc!r}") from None
            session: _Session = protocol.session
            session.on_notification = self._notified
            session.sent_request_timeout = self.timeout
            try:
                async with asyncio.timeout(self.timeout):
                    _server, agreed = await session.send_request(
                        "server.version", (self.client_name, list(PROTOCOL_RANGE))
                    )
            except RPCError as exc:
                await session.close(force_after=2)
                raise ChainUnavailable(
                    f"{self.address} refused protocol {PROTOCOL_RANGE}: {exc.message}"
                ) from None
            except (OSError, ProtocolError, TimeoutError, TaskTimeout, asyncio.CancelledError):
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                await session.abort()
                raise ChainUnavailable(f"{self.address} did not answer server.version") from None
            self.protocol = str(agreed)
            self.generation += 1
            self._session = session
            return session

    def _notified(self, method: str, params: Sequence[Any]) -> None:
        if self.on_notification is not None:
            self.on_notification(method, params)

    async def _drop(self, session: _Session) -> None:
        if self._session is session:
            self._session = None
        if not session.is_closing():
            await session.abort()
