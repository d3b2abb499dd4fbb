"""The HTTP edge: what is refused before routing, and uvicorn's own errors as problem+json."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import problem_response


class StrictPathMiddleware:
    """400 for a path whose percent-escapes are not UTF-8.

    The server decodes them with replacement characters, so `PUT /v1/items/%FF` would store an
    item named U+FFFD that no client ever meant; refusing keeps ids exactly what was sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _utf8_path(scope):
            response = problem_response(
                400, "Bad Request", "the request path is not valid UTF-8 once percent-decoded"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _utf8_path(scope: Scope) -> bool:
    raw = scope.get("raw_path")
    if raw is None:  # a server that does not pass the raw path: nothing to check against
        return True
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
