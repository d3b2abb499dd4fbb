"""Reading JSON bodies ourselves: a hard size cap, and validation with run-time context."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.errors import PayloadTooLarge, UnsupportedMediaType, field_errors, validation_failed

M = TypeVar("M", bound=BaseModel)


def is_json(content_type: str | None) -> bool:
    """`application/json` or a `+json` type, with any parameters (charset)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 415 unless it is declared JSON, and with 413 as soon as it
    passes `max_bytes` (declared or streamed).

    Bodies are JSON whatever their label, so the label is checked: a `text/plain` or form POST is
    what a web page can send cross-site without a CORS preflight (in open mode, anyone's)."""
    if not is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes, model: type[M], context: dict[str, Any]) -> M:
    """Validate JSON bytes into `model`; every problem is listed with its item index and field."""
    try:
        return model.model_validate_json(raw, context=context)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_url=False))
        raise validation_failed(errors, otherwise="the body is not valid") from None


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` that documents a body we read by hand."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_defs(model.model_json_schema())}},
        }
    }


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace `$ref`s to the schema's own `$defs` by their definitions: FastAPI never adds
    these models to `components`, so a reference there would dangle (bodies aren't recursive)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)
