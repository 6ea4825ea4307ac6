"""The exporter's HTTP interface (ASGI): OTLP/HTTP in, health and self-metrics out.

``POST /v1/logs`` and ``POST /v1/metrics`` (protobuf or JSON, optionally gzip or zstd);
``GET /healthz`` (the process runs), ``GET /readyz`` (schema migrated and PostgreSQL
answers), ``GET /metrics`` (Prometheus text).

Status codes: 200 with an OTLP response (``partial_success`` lists refused records);
400 for a body that cannot be decoded; 413 too large; 415 unsupported Content-Type or
Content-Encoding; 503 with ``Retry-After`` when the data could not be stored now.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caret_otel.core.errors import RequestError
from caret_otel.otlp import body as otlp_body

from .self_metrics import CONTENT_TYPE
from .service import ExporterService, Unavailable

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 32 << 20
"""Largest request body accepted as sent (a Collector batch is far smaller)."""
MAX_INFLATED_BYTES: Final = otlp_body.MAX_INFLATED_BYTES
"""Largest body once inflated. The Collector's business leg sends zstd: it inflates
about four times faster than gzip, on the exporter's busiest thread
(docs/benchmarks.md)."""


def _error(error: RequestError, media: str) -> Response:
    return Response(
        otlp_body.rpc_status_body(error, media),
        status_code=error.status,
        media_type=media,
        headers=error.headers,
    )


def _otlp_endpoint(
    service: ExporterService,
    signal: str,
    decode: Callable[[bytes, str], Any],
    export: Callable[[Any], Message],
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        media = otlp_body.JSON
        try:
            media = otlp_body.media_type(request.headers.get("content-type"))
            body = await otlp_body.read_body(
                request.stream(),
                content_length=request.headers.get("content-length"),
                content_encoding=request.headers.get("content-encoding"),
                max_body_bytes=MAX_BODY_BYTES,
                max_decompressed_bytes=MAX_INFLATED_BYTES,
            )
            response = await run_in_threadpool(lambda: export(decode(body, media)))
        except DecodeError as exc:
            service.metrics.batches.labels(signal, "bad_request").inc()
            refusal = RequestError.bad_request(
                "bad_protobuf", f"body is not a valid OTLP {signal} export request ({exc})"
            )
            return _error(refusal, media)
        except RequestError as exc:
            service.metrics.batches.labels(signal, "bad_request").inc()
            return _error(exc, media)
        except Unavailable as exc:
            refusal = RequestError.unavailable(str(exc), service.settings.retry_after)
            return _error(refusal, media)
        return Response(otlp_body.encode_response(response, media), media_type=media)

    return endpoint


def _logs_message(body: bytes, media: str) -> ExportLogsServiceRequest | bytes:
    # A protobuf body goes to the service as it came: the row builder reads the
    # records without protobuf objects (and answers DecodeError for a bad body).
    if media == otlp_body.PROTOBUF:
        return body
    return otlp_body.decode_request(body, media, ExportLogsServiceRequest)


def _metrics_message(body: bytes, media: str) -> ExportMetricsServiceRequest:
    return otlp_body.decode_request(body, media, ExportMetricsServiceRequest)


def create_app(service: ExporterService, *, manage_service: bool = True) -> Starlette:
    """The ASGI app; with ``manage_service`` it starts and closes ``service`` itself."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready, reason = await run_in_threadpool(service.readiness)
        if ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            {"status": "unavailable", "reason": reason},
            status_code=503,
            headers={"Retry-After": str(service.settings.retry_after)},
        )

    async def metrics(_: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_service:
            service.start()
        try:
            yield
        finally:
            if manage_service:
                await run_in_threadpool(service.close)

    routes = [
        Route(
            "/v1/logs",
            _otlp_endpoint(service, "logs", _logs_message, service.export_logs),
            methods=["POST"],
        ),
        Route(
            "/v1/metrics",
            _otlp_endpoint(service, "metrics", _metrics_message, service.export_metrics),
            methods=["POST"],
        ),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
