"""The gateway's HTTP API (FastAPI), assembled around one :class:`Gateway` runtime.

Handlers take the raw :class:`Request` and parse bodies themselves (see
``openapi_models`` for why); every refusal is a :class:`RequestError` rendered by one
exception handler. Routes live in their own modules (``events_route``,
``otlp_ingest``, ``consent_route``, ``deletion``); here are the lifecycle, the
middleware, the schema and the probes. The OpenAPI document describes every body,
header and answer, so a client generator gets a complete contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

from caret_otel.core.version import __version__
from caret_otel.otlp import body
from caret_otel.receivers.gateway import (
    consent_route,
    deletion,
    events_route,
    otlp_ingest,
    readiness,
)
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE, RequestError, error_response
from caret_otel.receivers.gateway.middleware import RequestGuard
from caret_otel.receivers.gateway.runtime import Gateway
from caret_otel.receivers.gateway.self_metrics import PROMETHEUS_CONTENT_TYPE
from caret_otel.semconv.policy import load_schema

USERS_PATH = "/telemetry/users/{user_id_hash}"
SCHEMA_PATH = "/telemetry/schema"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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
        {events_route.EVENTS_PATH, consent_route.CONSENT_PATH, SCHEMA_PATH, "/openapi.json",
         "/docs", *otlp_ingest.PATHS.values(), *PROBE_PATHS}
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
        return error_response(exc)

    async def read(request: Request) -> bytes:
        return await body.read_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            content_encoding=request.headers.get("content-encoding"),
            max_body_bytes=limits.max_body_bytes,
            max_decompressed_bytes=limits.max_decompressed_bytes,
        )

    record_consent = consent_route.consent_writer(gateway)
    events_route.add_route(app, gateway, read, record_consent)
    otlp_ingest.add_routes(app, gateway, read)
    consent_route.add_route(app, gateway, read, record_consent)
    deletion.add_route(app, gateway, USERS_PATH)
    _add_schema_and_probes(app, gateway)
    spec.install(app)
    return app


def _add_schema_and_probes(app: FastAPI, gateway: Gateway) -> None:
    schema_bytes = orjson.dumps(load_schema())

    @app.get(
        SCHEMA_PATH,
        operation_id="getSchema",
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

    @app.get(
        "/healthz",
        operation_id="healthz",
        summary="Liveness",
        tags=["operations"],
        response_model=docs.Health,
    )
    async def healthz() -> Response:
        return _respond({"status": "ok"})

    @app.get(
        "/readyz",
        operation_id="readyz",
        summary="Readiness: the Collector takes data and the consent store is current",
        tags=["operations"],
        responses={
            200: {"model": docs.Readiness, "description": "Ready."},
            503: {"model": docs.Readiness, "description": "Not ready; `checks` says why."},
        },
    )
    async def readyz() -> Response:
        ready, checks = await readiness.check(gateway)
        answer = {"status": "ready" if ready else "not_ready", "checks": checks}
        return _respond(answer, 200 if ready else 503)

    @app.get(
        "/metrics",
        operation_id="metrics",
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
