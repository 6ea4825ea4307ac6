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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from caret_otel.core.version import __version__
from caret_otel.receivers.gateway import (
    consent_route,
    deletion,
    events_route,
    experiments_route,
    otlp_ingest,
    readiness,
)
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE, RequestError, error_response
from caret_otel.receivers.gateway.middleware import RequestGuard, body_reader
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
        {events_route.EVENTS_PATH, consent_route.CONSENT_PATH, consent_route.LOOKUP_PATH,
         deletion.DELETIONS_PATH, SCHEMA_PATH, experiments_route.EXPERIMENTS_PATH,
         "/openapi.json", "/docs",
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
        return error_response(exc)

    # No silent redirect of `/telemetry/events/` and no framework-shaped 404/405: every
    # answer has the one JSON error shape, naming what to do instead.
    app.router.redirect_slashes = False

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(_routing_error(request, exc, known))

    read = body_reader(limits, gateway.metrics)
    consent_writers = consent_route.consent_writers(gateway)
    events_route.add_route(app, gateway, read, consent_writers)
    otlp_ingest.add_routes(app, gateway, read)
    consent_route.add_route(app, gateway, read, consent_writers)
    deletion.add_route(app, gateway, read, USERS_PATH)
    experiments_route.add_route(app, gateway)
    _add_schema_and_probes(app, gateway)
    spec.install(app)
    return app


def _routing_error(
    request: Request, exc: StarletteHTTPException, known: frozenset[str]
) -> RequestError:
    path = request.url.path
    status = exc.status_code
    if status == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return RequestError(
            405,
            "method_not_allowed",
            f"{request.method} is not accepted on this path"
            + (f"; use {allow}" if allow else "")
            + "; see /openapi.json",
            field="method",
            headers={"Allow": allow} if allow else None,
        )
    if status == 404:
        trimmed = path.rstrip("/")
        hint = (
            f"; without the trailing '/': {trimmed}"
            if trimmed != path and (trimmed in known or trimmed.startswith(_USERS_PREFIX))
            else "; the paths are listed in /openapi.json"
        )
        return RequestError(404, "not_found", f"no such path{hint}", field="path")
    return RequestError(status, "http_error", f"the request was refused ({status})")


_USERS_PREFIX = USERS_PATH.split("{", 1)[0]


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
