"""``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``: OTLP/HTTP from Caret's services.

Answers follow the OTLP/HTTP specification: the response uses the request's encoding
(protobuf or JSON); success is 200 with an ``Export*ServiceResponse`` whose
``partial_success`` counts the records dropped because their user opted out; errors
carry a ``google.rpc.Status`` (in the request's encoding when it is known), and 429/503
carry ``Retry-After`` so OTLP exporters retry.

Only service tokens may call these routes (a client token gets 403). Services run our
in-process privacy processor already, so their pseudonyms are accepted as they are
(``Gateway.service_engine``) when their keyed tag verifies; a value shaped like a
pseudonym whose tag does not verify (an unkeyed hash) is dropped. Everything else goes
through the same policy as client events. Before decoding, the request's fields are
counted against ``max_otlp_fields`` (413); a large request is counted, decoded and
scrubbed on a worker thread so the event loop stays responsive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.otlp import body
from caret_otel.otlp.body import decode_request, encode_response
from caret_otel.processors.privacy import otlp
from caret_otel.processors.privacy.consent import ConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.receivers.gateway import client_otlp_logs, openapi_spec, otlp_limits
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.errors import RequestError
from caret_otel.receivers.gateway.runtime import Gateway

PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}
MEDIA_TYPES = (body.PROTOBUF, body.JSON)
OFF_LOOP_BYTES = 64 << 10
"""Requests larger than this (inflated) are counted, decoded and scrubbed off the loop."""

# HTTP status -> gRPC status code for the google.rpc.Status error body.

Scrub = Callable[[Any, PrivacyEngine, ConsentStore, ScrubReport], int]


@dataclass(frozen=True)
class SignalSpec:
    request_type: type[Message]
    response_type: type[Message]
    scrub: Scrub
    rejected_field: str
    noun: str


def _spans(request: Any) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def _log_records(request: Any) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def _data_points(request: Any) -> int:
    total = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    total += len(getattr(metric, kind).data_points)
    return total


SIGNALS: dict[str, tuple[SignalSpec, Callable[[Any], int]]] = {
    "traces": (
        SignalSpec(trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse,
                   otlp.scrub_trace_request, "rejected_spans", "spans"),
        _spans,
    ),
    "logs": (
        SignalSpec(logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse,
                   otlp.scrub_logs_request, "rejected_log_records", "log records"),
        _log_records,
    ),
    "metrics": (
        SignalSpec(metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse,
                   otlp.scrub_metrics_request, "rejected_data_points", "data points"),
        _data_points,
    ),
}  # fmt: skip


def status_response(error: RequestError, media: str | None) -> Response:
    """An OTLP error: ``google.rpc.Status`` in the request's encoding (JSON if unknown)."""
    media = media if media in body.OTLP_MEDIA_TYPES else body.JSON
    return Response(
        body.rpc_status_body(error, media),
        status_code=error.status,
        media_type=media,
        headers=error.headers,
    )


async def export(
    gateway: Gateway, signal: str, request: Request, read: Callable[[Request], Awaitable[bytes]]
) -> Response:
    spec, count = SIGNALS[signal]
    media: str | None = None
    max_fields = gateway.config.limits.max_otlp_fields
    client_events: list[dict[str, Any]] = []  # Caret's own OTel exporter (client_otlp_logs)

    def decode_and_scrub(data: bytes, media: str) -> tuple[bytes, int, int, ScrubReport]:
        if media == body.PROTOBUF:
            otlp_limits.count_protobuf_fields(data, signal, max_fields)
        else:
            otlp_limits.count_json_values(data, max_fields)
        message = decode_request(data, media, spec.request_type)
        # Fields this protobuf release does not know would be re-serialised unread.
        message.DiscardUnknownFields()
        if signal == "logs":
            client_events.extend(client_otlp_logs.extract_client_events(message))  # type: ignore[arg-type]
        report = ScrubReport()
        rejected = spec.scrub(message, gateway.service_engine, gateway.consent, report)
        return message.SerializeToString(), count(message), rejected, report

    try:
        gateway.auth.require(request.headers.get("authorization"), Role.SERVICE)
        media = body.media_type(request.headers.get("content-type"), MEDIA_TYPES)
        gateway.exporter.admit(signal)
        data = await read(request)
        if len(data) > OFF_LOOP_BYTES:
            encoded, kept, rejected, report = await run_in_threadpool(decode_and_scrub, data, media)
        else:
            encoded, kept, rejected, report = decode_and_scrub(data, media)
        if client_events:
            header = gateway.config.country_header
            country = request.headers.get(header) if header else None
            rejected += await client_otlp_logs.ingest(gateway, client_events, country)
    except RequestError as exc:
        return status_response(exc, media)
    gateway.exporter.submit(signal, encoded, kept)
    metrics = gateway.metrics
    metrics.otlp_items.labels(signal, "accepted").inc(kept)
    if rejected:
        metrics.otlp_items.labels(signal, "opted_out").inc(rejected)
    metrics.record_scrub_report(report)
    answer = spec.response_type()
    if rejected:
        partial: Any = answer.partial_success  # type: ignore[attr-defined]
        setattr(partial, spec.rejected_field, rejected)
        partial.error_message = (
            f"{rejected} {spec.noun} dropped: their users opted out of telemetry"
        )
    return Response(encode_response(answer, media), status_code=200, media_type=media)


def _openapi(signal: str) -> dict[str, Any]:
    spec = SIGNALS[signal][0]
    name = spec.request_type.DESCRIPTOR.name
    otlp_json = {"type": "object", "description": f"OTLP/JSON {name} (hex trace/span ids)."}
    binary = {"type": "string", "format": "binary", "description": f"Protobuf-encoded {name}."}
    return {
        "requestBody": {
            "required": True,
            "content": {body.PROTOBUF: {"schema": binary}, body.JSON: {"schema": otlp_json}},
        },
        "parameters": [
            {"name": "Content-Encoding", "in": "header", "required": False,
             "description": "gzip to send a compressed body.",
             "schema": {"type": "string", "enum": ["gzip", "identity"]}},
        ],
        "security": openapi_spec.SERVICE_SECURITY,
    }  # fmt: skip


def _responses(signal: str) -> dict[int | str, dict[str, Any]]:
    spec = SIGNALS[signal][0]
    name = spec.response_type.DESCRIPTOR.name
    status = {
        "type": "object",
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        "description": "google.rpc.Status",
    }
    retry = openapi_spec.RETRY_AFTER_HEADER
    content_ok = {
        body.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
        body.JSON: {
            "schema": {
                "type": "object",
                "description": f"OTLP/JSON {name}; partialSuccess counts records dropped for opt-out.",
            }
        },
    }
    content_err = {
        body.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
        body.JSON: {"schema": status},
    }
    described = {
        400: "Malformed body.", 401: "Missing or unknown bearer token.", 403: "Not a service token.",
        408: "Body not received within the deadline.", 413: "Body or its field count beyond the limit.", 415: "Unsupported Content-Type or Content-Encoding.",
        429: "Too many requests in flight.", 503: "Export queue full or Collector unreachable.",
    }  # fmt: skip
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": f"{name} (in the request's encoding).", "content": content_ok}
    }
    for code, text in described.items():
        responses[code] = {
            "description": text,
            "content": content_err,
            **({"headers": retry} if code in (429, 503) else {}),
        }
    return responses


def _endpoint(
    gateway: Gateway, signal: str, read: Callable[[Request], Awaitable[bytes]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await export(gateway, signal, request, read)

    return endpoint


def add_routes(app: FastAPI, gateway: Gateway, read: Callable[[Request], Awaitable[bytes]]) -> None:
    for signal, path in PATHS.items():
        app.add_api_route(
            path,
            _endpoint(gateway, signal, read),
            methods=["POST"],
            summary=f"OTLP/HTTP {signal}",
            description=f"OTLP/HTTP export of {signal} (protobuf or JSON, optional gzip). "
            "Privacy is applied; records of users who opted out are dropped and reported in "
            "partial_success.",
            tags=["otlp"],
            openapi_extra=_openapi(signal),
            responses=_responses(signal),
            name=f"otlp_{signal}",
            operation_id=f"export{signal.capitalize()}",
        )
