"""Bearer API keys with scopes. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request

from app.errors import Forbidden, Unauthorized


def find_scopes(api_keys: dict[str, frozenset[str]], presented: str) -> frozenset[str] | None:
    """The scopes of `presented`, checking every key so timing says nothing about which matched."""
    found: frozenset[str] | None = None
    for key, scopes in api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = scopes
    return found


def require(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency that lets the request through only with a key holding `scope`. Async,
    because it never blocks: a plain `def` dependency costs a trip to the thread pool."""

    async def check(request: Request) -> None:
        api_keys = request.app.state.settings.api_keys
        if not api_keys:
            return  # open mode, announced loudly at start-up
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        scopes = find_scopes(api_keys, token.strip())
        if scopes is None:
            raise Unauthorized("the API key is not valid")
        if scope not in scopes:
            raise Forbidden(f"this API key lacks the '{scope}' scope")

    return check
