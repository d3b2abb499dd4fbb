"""Serving under uvicorn, with the errors uvicorn answers itself rendered as problem+json."""

from __future__ import annotations

import json

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import PROBLEM_JSON


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's default HTTP/1.1 protocol, except that a request it cannot parse (a malformed
    Content-Length, a broken request line) is answered as problem+json, like every other error,
    instead of uvicorn's `text/plain` "Invalid HTTP request received."."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "the request is not valid HTTP/1.1 (request line or headers)",
            }
        ).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class LoggedOnce:
    """Starlette re-raises an error after its 500 handler has answered and logged it, and
    uvicorn then logs the same traceback again ("Exception in ASGI application"), with the path
    and without the request id. The 500 is sent either way: one log record is enough."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            if scope["type"] != "http":  # lifespan failures must still stop the server
                raise


def serve(app: FastAPI, *, host: str, port: int) -> None:
    # Our logging setup stays in charge; the access line comes from app.access, with request id.
    uvicorn.run(
        LoggedOnce(app),
        host=host,
        port=port,
        http=ProblemHttpToolsProtocol,
        log_config=None,
        access_log=False,
    )
