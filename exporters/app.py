"""The exporter's HTTP interface (ASGI): OTLP/HTTP in, health and self-metrics out.

``POST /v1/logs`` and ``POST /v1/metrics`` (protobuf or JSON, optionally gzip);
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
from typing import Any

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

from . import otlp_http
from .self_metrics import CONTENT_TYPE
from .service import ExporterService, Unavailable

log = logging.getLogger(__name__)

# google.rpc.Code values used in error bodies
_RPC_INVALID_ARGUMENT = 3
_RPC_UNAVAILABLE = 14


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > otlp_http.MAX_BODY_BYTES:
        raise otlp_http.PayloadError(
            413, f"body of {declared} bytes exceeds {otlp_http.MAX_BODY_BYTES} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > otlp_http.MAX_BODY_BYTES:
            raise otlp_http.PayloadError(413, f"body exceeds {otlp_http.MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, media: str, *, retry_after: int | None = None) -> Response:
    code = _RPC_UNAVAILABLE if status == 503 else _RPC_INVALID_ARGUMENT
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(
        otlp_http.error_body(code, message, media),
        status_code=status,
        media_type=media,
        headers=headers,
    )


def _otlp_endpoint(
    service: ExporterService,
    signal: str,
    decode: Callable[[bytes, str], Any],
    export: Callable[[Any], Message],
) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        media = otlp_http.JSON
        try:
            media = otlp_http.media_type(request.headers.get("content-type"))
            body = otlp_http.inflate(
                await _read_body(request), request.headers.get("content-encoding")
            )
            response = await run_in_threadpool(lambda: export(decode(body, media)))
        except DecodeError as exc:
            service.metrics.batches.labels(signal, "bad_request").inc()
            return _error(400, otlp_http.not_a_message(f"OTLP {signal} export request", exc), media)
        except otlp_http.PayloadError as exc:
            service.metrics.batches.labels(signal, "bad_request").inc()
            return _error(exc.status, exc.message, media)
        except Unavailable as exc:
            return _error(503, str(exc), media, retry_after=service.settings.retry_after)
        return Response(otlp_http.encode(response, media), media_type=media)

    return endpoint


def _logs_message(body: bytes, media: str) -> ExportLogsServiceRequest | bytes:
    # A protobuf body goes to the service as it came: the row builder reads the
    # records without protobuf objects (and answers DecodeError for a bad body).
    if media == otlp_http.PROTOBUF:
        return body
    return otlp_http.decode(body, media, ExportLogsServiceRequest)


def _metrics_message(body: bytes, media: str) -> ExportMetricsServiceRequest:
    return otlp_http.decode(body, media, ExportMetricsServiceRequest)


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
