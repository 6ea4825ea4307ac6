"""The gateway's HTTP API (FastAPI), built around one :class:`Gateway` runtime.

Handlers take the raw :class:`Request` and parse bodies themselves (see
``openapi_models`` for why); every refusal is a :class:`RequestError` rendered by one
exception handler. The OpenAPI document still describes every body, header and
answer, so a client generator gets a complete contract.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel import __version__
from caret_otel.gateway import body, client_batch, deletion, otlp_ingest, readiness
from caret_otel.gateway import openapi_models as docs
from caret_otel.gateway.auth import Role
from caret_otel.gateway.client_ingest import IngestResult
from caret_otel.gateway.errors import JSON_MEDIA_TYPE, RequestError
from caret_otel.gateway.middleware import RequestGuard
from caret_otel.gateway.runtime import Gateway
from caret_otel.gateway.self_metrics import PROMETHEUS_CONTENT_TYPE
from caret_otel.processors.consent import ConsentStoreError
from caret_otel.semconv.policy import load_schema

log = logging.getLogger(__name__)

EVENTS_PATH = "/telemetry/events"
CONSENT_PATH = "/telemetry/consent"
USERS_PATH = "/telemetry/users/{user_id_hash}"
SCHEMA_PATH = "/telemetry/schema"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CONSENT_RETRY_AFTER_S = 5.0

_BEARER: list[dict[str, list[str]]] = [{"ingestToken": []}]
_ADMIN: list[dict[str, list[str]]] = [{"adminToken": []}]


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed body (JSON, gzip or protobuf); the message names the problem.",
        401: "Missing or unknown bearer token.",
        403: "The token is valid but not for this route.",
        413: "Body, inflated body or number of events beyond the limit.",
        415: "Unsupported Content-Type or Content-Encoding.",
        422: "Well-formed but unusable (wrong shape, missing field, every event rejected).",
        429: "Too many requests in flight; retry after Retry-After seconds.",
        503: "Cannot take data now (export queue full, Collector or database down); "
        "retry after Retry-After seconds.",
    }
    retry = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    return {
        status: {
            "model": docs.ErrorBody,
            "description": described[status],
            **({"headers": retry} if status in (429, 503) else {}),
        }
        for status in statuses
    }


def _json_body(schema: dict[str, Any], *, gzip: bool = True) -> dict[str, Any]:
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


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _respond(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON_MEDIA_TYPE)


def create_app(gateway: Gateway) -> FastAPI:
    """The ASGI application serving ``gateway`` (uvicorn runs it; see ``server``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="Caret telemetry gateway",
        version=__version__,
        summary="Caret client events and OTLP in; consent, privacy and OTLP out to the Collector.",
        lifespan=lifespan,
        redoc_url=None,
    )
    limits = gateway.config.limits
    known = frozenset(
        {EVENTS_PATH, CONSENT_PATH, SCHEMA_PATH, "/openapi.json", "/docs",
         *otlp_ingest.PATHS.values(), *PROBE_PATHS}
    )  # fmt: skip
    app.add_middleware(
        RequestGuard,
        metrics=gateway.metrics,
        max_inflight=limits.max_inflight_requests,
        exempt_paths=PROBE_PATHS,
        known_paths=known,
    )

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> Response:
        return exc.response()

    async def record_consent(user_id_hash: str, enabled: bool) -> None:
        pseudonyms = gateway.pseudonymizer.all_pseudonyms(user_id_hash)
        try:
            await run_in_threadpool(gateway.consent.set_consent, pseudonyms, enabled)
        except ConsentStoreError as exc:
            log.error("consent change not recorded: %s", exc)
            raise RequestError.unavailable(
                "the consent store is unavailable, so the consent change was not recorded; "
                "nothing in this request was accepted, retry later",
                CONSENT_RETRY_AFTER_S,
            ) from None
        gateway.metrics.consent_changes.labels(str(enabled).lower()).inc()

    async def read(request: Request) -> bytes:
        return await body.read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            content_encoding=request.headers.get("content-encoding"),
            max_body_bytes=limits.max_body_bytes,
            max_decompressed_bytes=limits.max_decompressed_bytes,
        )

    country_header = gateway.config.country_header

    @app.post(
        EVENTS_PATH,
        status_code=202,
        summary="Send Caret client events",
        description='One event, a JSON array of events, or {"events": [...]}. Each event is '
        "validated on its own: invalid ones are listed in `rejected` while the others are "
        "accepted. Events of users who opted out are dropped and counted in `opted_out`.",
        tags=["ingest"],
        openapi_extra={
            **_json_body(
                {
                    "oneOf": [
                        _ref(docs.ClientEvent),
                        {"type": "array", "items": _ref(docs.ClientEvent), "minItems": 1},
                        _ref(docs.ClientEventBatch),
                    ]
                }
            ),
            "security": _BEARER,
        },
        responses={
            202: {
                "model": docs.EventsAccepted,
                "description": "Taken for export (see per-event rejections).",
            },
            **_errors(400, 401, 403, 413, 415, 429, 503),
            422: {
                "description": "The body's shape is wrong (an error naming the field), or every "
                "event was rejected (the counts, with each event's reason).",
                "content": {
                    JSON_MEDIA_TYPE: {
                        "schema": {"anyOf": [_ref(docs.ErrorBody), _ref(docs.EventsRejected)]}
                    }
                },
            },
        },
    )
    async def post_events(request: Request) -> Response:
        gateway.auth.require(request.headers.get("authorization"), Role.INGEST)
        body.media_type(request.headers.get("content-type"), [body.JSON])
        gateway.exporter.admit("logs", "traces")
        raw_events, _ = client_batch.parse_envelope(
            await read(request), limits.max_events_per_request
        )
        country = request.headers.get(country_header) if country_header else None
        result = await gateway.ingestor.ingest(raw_events, country, record_consent)
        _export_client_result(gateway, result)
        answer: dict[str, object] = {
            "accepted": result.accepted,
            "rejected": [r.as_json() for r in result.rejected],
            "opted_out": result.opted_out,
            "dropped_attributes": result.report.total_dropped,
        }
        if result.rejected and not result.accepted and not result.opted_out:
            answer = {"error": "unprocessable", "message": "every event was rejected", **answer}
            return _respond(answer, 422)
        return _respond(answer, 202)

    otlp_ingest.add_routes(app, gateway, read, _BEARER)

    @app.put(
        CONSENT_PATH,
        summary="Record a user's telemetry consent",
        description="telemetry_enabled=false: from the next request on, every event and OTLP "
        "record of this user is dropped. Stored under every live pseudonym key.",
        tags=["privacy"],
        openapi_extra={**_json_body(_ref(docs.ConsentUpdate), gzip=False), "security": _BEARER},
        responses={
            200: {"model": docs.ConsentRecorded, "description": "Recorded."},
            **_errors(400, 401, 403, 413, 415, 422, 429, 503),
        },
    )
    async def put_consent(request: Request) -> Response:
        gateway.auth.require(request.headers.get("authorization"), Role.INGEST)
        body.media_type(request.headers.get("content-type"), [body.JSON])
        user_id_hash, enabled = _parse_consent(await read(request))
        await record_consent(user_id_hash, enabled)
        return _respond({"telemetry_enabled": enabled})

    deletion.add_route(app, gateway, USERS_PATH, _errors, _ADMIN)

    schema_bytes = orjson.dumps(load_schema())

    @app.get(
        SCHEMA_PATH,
        summary="Everything the gateway may collect",
        description="The transparency document generated from the semantic-conventions "
        "registry: every event and attribute with its privacy class.",
        tags=["privacy"],
        responses={
            200: {
                "description": "The schema.",
                "content": {JSON_MEDIA_TYPE: {"schema": {"type": "object"}}},
            }
        },
    )
    async def get_schema() -> Response:
        return Response(schema_bytes, media_type=JSON_MEDIA_TYPE)

    @app.get("/healthz", summary="Liveness", tags=["operations"], response_model=docs.Health)
    async def healthz() -> Response:
        return _respond({"status": "ok"})

    @app.get(
        "/readyz",
        summary="Readiness: the Collector takes data and the consent store is current",
        tags=["operations"],
        responses={
            200: {"model": docs.Readiness, "description": "Ready."},
            503: {"model": docs.Readiness, "description": "Not ready; `checks` says why."},
        },
    )
    async def readyz() -> Response:
        ready, checks = await readiness.check(gateway)
        return _respond(
            {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
        )

    @app.get(
        "/metrics",
        summary="The gateway's own metrics (Prometheus text format)",
        tags=["operations"],
        responses={
            200: {
                "description": "Prometheus exposition.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(gateway.metrics.exposition(), media_type=PROMETHEUS_CONTENT_TYPE)

    _install_openapi(app)
    return app


def _export_client_result(gateway: Gateway, result: IngestResult) -> None:
    ingestor = gateway.ingestor
    if result.logs:
        gateway.exporter.submit("logs", ingestor.logs_request(result), len(result.logs))
    if result.spans:
        gateway.exporter.submit("traces", ingestor.traces_request(result), len(result.spans))
    gateway.client_metrics.flush(result.measurements)
    metrics = gateway.metrics
    for name, count in result.accepted_by_event.items():
        metrics.events_accepted.labels(name).inc(count)
    for rejection in result.rejected:
        metrics.events_rejected.labels(rejection.code).inc()
    if result.opted_out:
        metrics.events_opted_out.inc(result.opted_out)
    metrics.record_scrub_report(result.report)


def _parse_consent(data: bytes) -> tuple[str, bool]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestError.bad_request(
            "bad_json", f"body is not valid JSON ({exc})", field="body"
        ) from None
    if not isinstance(document, dict):
        raise RequestError.unprocessable("body must be a JSON object", field="body")
    user_id_hash = document.get("user_id_hash")
    enabled = document.get("telemetry_enabled")
    if not isinstance(user_id_hash, str) or not user_id_hash.strip() or len(user_id_hash) > 512:
        raise RequestError.unprocessable(
            "user_id_hash must be a non-empty string of at most 512 characters",
            field="user_id_hash",
        )
    if not isinstance(enabled, bool):
        raise RequestError.unprocessable(
            "telemetry_enabled must be true or false", field="telemetry_enabled"
        )
    return user_id_hash, enabled


def _install_openapi(app: FastAPI) -> None:
    """Add the request models (used only for documentation) and the security schemes."""

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
                "description": "An ingest token (CARET_OTEL_INGEST_TOKENS).",
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
