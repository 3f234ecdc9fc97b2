"""The JSON-RPC that Bitcoin Core and its forks (Litecoin Core, Dogecoin Core, Dash Core)
share: one call or a batch, credentials from the node URL, amounts read as Decimal."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from paydesk.chains.adapter import ChainUnavailable


class RpcError(RuntimeError):
    """The node answered the call with an error (its code and message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


#: Codes of the node's own answers that mean "no such thing", not "something broke".
NOT_FOUND = (-5, -8)  # RPC_INVALID_ADDRESS_OR_KEY, RPC_INVALID_PARAMETER
#: The node has no such call (JSON-RPC's own code).
METHOD_NOT_FOUND = -32601


class BitcoinRpc:
    """A node at `url` (`http://user:password@host:port/`; the credentials go into a Basic
    header, never into logs). Amounts in answers are JSON numbers: they are parsed
    straight into Decimal, never through a float."""

    def __init__(self, url: str, *, timeout: float = 20.0) -> None:
        parts = urlsplit(url)
        auth = None
        if parts.username is not None:
            auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        self.endpoint = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self._client = httpx.AsyncClient(auth=auth, timeout=timeout)
        self._ids = 0

    async def call(self, method: str, *params: Any) -> Any:
        [answer] = await self._post([self._request(method, params)])
        return _result(answer)

    async def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one round trip; results in the calls' order."""
        if not calls:
            return []
        requests = [self._request(method, params) for method, params in calls]
        answers = await self._post(requests)
        by_id = {answer.get("id"): answer for answer in answers}
        return [_result(by_id.get(request["id"], {})) for request in requests]

    async def close(self) -> None:
        await self._client.aclose()

    def _request(self, method: str, params: Any) -> dict[str, Any]:
        self._ids += 1
        return {"jsonrpc": "1.0", "id": self._ids, "method": method, "params": list(params)}

    async def _post(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = requests[0] if len(requests) == 1 else requests
        try:
            response = await self._client.post(self.endpoint, content=json.dumps(body, default=str))
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"node unreachable: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise ChainUnavailable(
                f"the node refused the credentials (HTTP {response.status_code})"
            )
        try:
            decoded = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            raise ChainUnavailable(
                f"the node answered HTTP {response.status_code}, not JSON"
            ) from None
        # Bitcoin Core answers an error call with HTTP 500 and a JSON-RPC body.
        return decoded if isinstance(decoded, list) else [decoded]


def _result(answer: dict[str, Any]) -> Any:
    error = answer.get("error")
    if error:
        raise RpcError(int(error.get("code", 0)), str(error.get("message", "")))
    if "result" not in answer:
        raise ChainUnavailable("the node's answer has no result")
    return answer["result"]
