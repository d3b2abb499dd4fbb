"""Errors carry their own status; one set of handlers renders all of them as problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db.errors import ADVICE, Trouble, classify, describe

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """Base class: subclasses fix `status` and `title`; `detail` says what happened."""

    status = 400
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra  # more members of the problem object (RFC 9457 extensions)


class ValidationFailed(ProblemError):
    status = 422
    title = "Validation failed"


class NotFound(ProblemError):
    status = 404
    title = "Not found"


class Unauthorized(ProblemError):
    status = 401
    title = "Unauthorized"


class Forbidden(ProblemError):
    status = 403
    title = "Forbidden"


class PayloadTooLarge(ProblemError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    title = "Unsupported media type"


class Unavailable(ProblemError):
    status = 503
    title = "Service unavailable"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        **(extra or {}),
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors -> [{"index", "field", "message"}]: the index is the event/item position,
    the field the rest of the location (without FastAPI's "body" prefix)."""
    out = []
    for err in errors:
        loc = [p for p in err["loc"] if p != "body"]
        index = next((p for p in loc if isinstance(p, int)), None)
        field = ".".join(str(p) for p in loc if not isinstance(p, int)) or None
        message = str(err["msg"]).removeprefix("Value error, ")
        out.append({"index": index, "field": field, "message": message})
    return out


def validation_failed(errors: list[dict[str, Any]], *, otherwise: str) -> ValidationFailed:
    """The 422 for these field errors, its detail naming every bad index (else `otherwise`)."""
    bad = sorted({e["index"] for e in errors if e["index"] is not None})
    detail = f"invalid entries at index {bad}" if bad else otherwise
    return ValidationFailed(detail + "; nothing was stored", errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(
            exc.status, exc.title, exc.detail, errors=exc.errors, extra=exc.extra, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        failed = validation_failed(field_errors(exc.errors()), otherwise="the request is invalid")
        return await _problem(request, failed)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Keep the exception's headers: a 405 must say which methods are allowed (RFC 9110).
        return problem_response(
            exc.status_code, _title(exc.status_code), str(exc.detail), headers=exc.headers
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_trouble(request: Request, exc: Exception) -> JSONResponse:
        trouble = classify(exc)
        if trouble is None:  # not the database's state: a bug or data it refused
            return await _unexpected(request, exc)
        # The route template, never the path: paths carry user and item ids.
        log.error(
            "database %s on %s %s: %s", trouble, request.method, _route(request), describe(exc)
        )
        headers = {"Retry-After": "1"} if trouble is Trouble.busy else None
        return problem_response(503, "Service unavailable", ADVICE[trouble], headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error on %s %s: %s",
            request.method,
            _route(request),
            type(exc).__name__,
            exc_info=exc,
        )
        return problem_response(
            500, "Internal error", "an unexpected error occurred; it was logged"
        )


def _route(request: Request) -> str:
    """The matched route's template (`/v1/users/{user_id}/cluster`), or a placeholder."""
    return getattr(request.scope.get("route"), "path", None) or "<unmatched>"


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
