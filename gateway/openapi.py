"""An OpenAPI 3.1 document of the HTTP API, generated from the action catalog (never by hand)."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.actions.catalog import Catalog

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "retcode", "data", "message", "wording", "echo", "stream"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "async", "failed"]},
        "retcode": {
            "type": "integer",
            "description": "0 ok, 1 async, 1200 failed in the "
            "backend, 1400 bad request, 1403 token, 1404 unknown action",
        },
        "data": {"description": "The action's result; null on failure and for async calls."},
        "message": {"type": "string"},
        "wording": {"type": "string"},
        "echo": {"description": "The request's echo, verbatim."},
        "stream": {"type": "string", "enum": ["normal-action", "stream-action"]},
    },
}


def openapi_document(catalog: Catalog) -> dict[str, Any]:
    """Every catalog action as `POST /{action}` (GET with query parameters works too)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": ENVELOPE_SCHEMA}
    for action in catalog:
        schema = action.params.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        # Qualified by module: two modules may both have a `GroupId` model.
        name = f"{action.params.__module__.rsplit('.', 1)[-1]}.{action.params.__name__}"
        schemas.setdefault(name, schema)
        description = action.summary
        if action.aliases:
            description += " Also available as: " + ", ".join(action.aliases) + "."
        paths[f"/{action.name}"] = {"post": _operation(action.name, description, name)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "OneBot Gateway HTTP API",
            "version": __version__,
            "description": "OneBot 11 actions. Every answer is an envelope; suffix an action "
            "with `_async` or `_rate_limited` to queue it.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query": {"type": "apiKey", "in": "query", "name": "access_token"},
            },
        },
        "security": [{"bearer": []}, {"query": []}, {}],
    }


def _operation(action: str, summary: str, params_schema: str) -> dict[str, Any]:
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
    return {
        "operationId": action.lstrip(".").replace(".", "_"),
        "summary": summary,
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{params_schema}"}}
            },
        },
        "responses": {
            "200": {
                "description": "An envelope (retcode 0, 1, 1200, 1400 or 1404).",
                "content": envelope,
            },
            "403": {"description": "Missing or wrong token (retcode 1403).", "content": envelope},
            "413": {
                "description": "Body over the server's limit (retcode 1400).",
                "content": envelope,
            },
        },
    }
