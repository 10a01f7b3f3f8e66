"""The OpenAPI 3.1 document of the REST v2 API, served at ``/v2/vectordb/openapi.json``.

Built from the routes table so it never lists an endpoint that does not exist; each request body
is the schema ``bodies.py`` enforces before the handler runs (so the document cannot drift from
what the server accepts); replies by the shared envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sheafdb.api.rest.bodies import BODIES
from sheafdb.api.rest.envelope import Endpoint

_HEADERS: list[dict[str, Any]] = [
    {"name": "DB-Name", "in": "header", "required": False, "schema": {"type": "string"}},
    {
        "name": "Request-Timeout",
        "in": "header",
        "required": False,
        "description": "seconds (an integer); past it the reply is HTTP 408 with code 10001",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    {
        "name": "Accept-Type-Allow-Int64",
        "in": "header",
        "required": False,
        "description": "false: int64 values (ids, Int64 fields) are rendered as JSON strings",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
]

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "code": {"type": "integer", "description": "0 on success, else the Milvus error code"},
        "data": {},
        "message": {"type": "string"},
        "cost": {"type": "integer"},
    },
}


def openapi_document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for spec in endpoints:
        group, _, action = spec.path.partition("/")
        paths[spec.prefix + spec.path] = {
            "post": {
                "operationId": spec.path.replace("/", "_"),
                "tags": [group],
                "summary": f"{action.replace('_', ' ')} ({group})",
                "parameters": _HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": BODIES[spec.path]}},
                },
                "responses": {
                    "200": {
                        "description": "success or business error (see code)",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}
                        },
                    },
                    "401": {"description": "not authenticated (code 1800)"},
                    "403": {"description": "privilege denied"},
                    "408": {"description": "request timeout (code 10001)"},
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SheafDB REST API v2 (Milvus-compatible)",
            "version": "2",
            "description": "Milvus's REST v2 under /v2/vectordb/; SheafDB's own endpoints (memory, "
            "load plans) under /v2/sheafdb/.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Envelope": _ENVELOPE},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "user:password"}
            },
        },
        "security": [{"bearer": []}],
    }
