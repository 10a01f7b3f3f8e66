"""The OpenAPI 3.1 document of the REST v2 API, served at ``/v2/vectordb/openapi.json``.

Built from the routes table so it never lists an endpoint that does not exist; request bodies
are described loosely (an object with the common keys), replies by the shared envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sheafdb.api.rest.envelope import Endpoint

_COMMON_PROPERTIES: dict[str, Any] = {
    "dbName": {"type": "string"},
    "collectionName": {"type": "string"},
    "partitionName": {"type": "string"},
    "partitionNames": {"type": "array", "items": {"type": "string"}},
    "outputFields": {"type": "array", "items": {"type": "string"}},
    "filter": {"type": "string"},
    "limit": {"type": "integer", "minimum": 0},
    "offset": {"type": "integer", "minimum": 0},
}

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
        paths["/v2/vectordb/" + spec.path] = {
            "post": {
                "operationId": spec.path.replace("/", "_"),
                "tags": [group],
                "summary": f"{action.replace('_', ' ')} ({group})",
                "parameters": [
                    {"name": "DB-Name", "in": "header", "required": False, "schema": {"type": "string"}},
                    {
                        "name": "Request-Timeout",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": _COMMON_PROPERTIES}}
                    },
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
        "info": {"title": "SheafDB REST API v2 (Milvus-compatible)", "version": "2"},
        "paths": paths,
        "components": {
            "schemas": {"Envelope": _ENVELOPE},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "user:password"}
            },
        },
        "security": [{"bearer": []}],
    }
