"""The OpenAPI document, with every error response described as it really is: problem+json.

FastAPI documents its own 422 shape (`HTTPValidationError`, `detail` a list) and knows nothing
of the errors our handlers raise (401/403 from keys, 413/422 from bodies read by hand, 503 when
the database is down). Clients generate code from this document, so it must say what we send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from app.errors import PROBLEM_JSON

PROBLEM = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation problems: the item index (if any), field and message.",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    "field": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
DESCRIPTIONS = {
    "401": "No API key, or not a valid one",
    "403": "The API key lacks the scope",
    "413": "Body too large",
    "415": "The body is not declared as JSON",
    "422": "Invalid request; nothing was stored",
    "503": "The database is unreachable",
}


def problem_openapi(app: FastAPI, *, event_types: list[str]) -> Callable[[], dict[str, Any]]:
    """A replacement for `app.openapi` that documents errors as problem+json and the event
    types this deployment accepts (they come from settings, so the model cannot list them)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # generate() caches the document; edit it in place
            _document_problems(document)
            _document_event_types(document, event_types)
        return app.openapi_schema  # type: ignore[return-value]

    return openapi


def _document_event_types(document: dict[str, Any], event_types: list[str]) -> None:
    """An `enum` on the event's `type`: without it a schema-driven client or fuzzer cannot build
    one valid event."""
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    event = body["schema"]["properties"]["events"]["items"]
    event["properties"]["type"]["enum"] = list(event_types)


def _document_problems(document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape: not ours
        schemas.pop(name, None)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            added = set()
            if path.startswith("/v1/"):  # behind API keys and the database
                added |= {"401", "403", "503"}
            if operation.get("parameters") or operation.get("requestBody"):
                added.add("422")
            if operation.get("requestBody"):
                added |= {"413", "415"}
            for status in added:
                responses.setdefault(status, {"description": DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {
                        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
