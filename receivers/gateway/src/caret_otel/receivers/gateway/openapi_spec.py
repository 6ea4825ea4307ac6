"""Pieces of the OpenAPI document shared by the routes: error answers, JSON request
bodies, security schemes, and the document itself with the documentation-only models.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE

Security = list[dict[str, list[str]]]
INGEST_SECURITY: Security = [{"ingestToken": []}]
ADMIN_SECURITY: Security = [{"adminToken": []}]
SERVICE_SECURITY: Security = [{"serviceToken": []}]

_ERROR_DESCRIPTIONS = {
    400: "Malformed body (JSON, gzip or protobuf); the message names the problem.",
    401: "Missing or unknown bearer token.",
    403: "The token is valid but not for this route (or a consent assertion was refused).",
    408: "The body did not arrive within the deadline.",
    409: "The Idempotency-Key was used before for another user.",
    413: "Body, inflated body or number of events beyond the limit.",
    415: "Unsupported Content-Type or Content-Encoding.",
    422: "Well-formed but unusable (wrong shape, missing field, every event rejected).",
    429: "Too many requests in flight; retry after Retry-After seconds.",
    503: "Cannot take data now (export queue full, Collector or database down); "
    "retry after Retry-After seconds.",
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Responses for ``statuses``, each the :class:`ErrorBody` JSON shape."""
    return {
        status: {
            "model": docs.ErrorBody,
            "description": _ERROR_DESCRIPTIONS[status],
            **({"headers": RETRY_AFTER_HEADER} if status in (429, 503) else {}),
        }
        for status in statuses
    }


def json_body(schema: dict[str, Any], *, gzip: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a required JSON body (optionally gzip-encoded)."""
    extra: dict[str, Any] = {
        "requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}
    }
    if gzip:
        extra["parameters"] = [
            {
                "name": "Content-Encoding",
                "in": "header",
                "required": False,
                "description": "gzip to send a compressed body.",
                "schema": {"type": "string", "enum": ["gzip", "identity"]},
            }
        ]
    return extra


def ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def install(app: FastAPI) -> None:
    """Serve a document that includes the documentation-only request models and the
    bearer security schemes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for model in docs.DOCUMENTED_MODELS:
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, nested in definition.pop("$defs", {}).items():
                schemas.setdefault(name, nested)
            schemas[model.__name__] = definition
        components["securitySchemes"] = {
            "ingestToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A client (ingest) token (CARET_OTEL_INGEST_TOKENS).",
            },
            "serviceToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token of Caret's services (CARET_OTEL_SERVICE_TOKENS).",
            },
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The admin token (CARET_OTEL_ADMIN_TOKEN).",
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
