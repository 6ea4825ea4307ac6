"""``POST /telemetry/events``: Caret client events in, per-event answers out.

Order matters: authentication (401/403: a client token), content type (415) and
admission to the export queue (503) are checked before the body is read (413/400, and
408 when it does not arrive within the deadline); limits (event count, properties and
``client_info`` keys) are checked before any event is converted; a large body is parsed
on a worker thread so the event loop (and ``/healthz``) stays responsive. The whole
request is processed before anything is exported, so it is either taken (202, with
per-event rejections) or refused as a whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.otlp import body
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.receivers.gateway import client_batch, otlp_limits
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.client_ingest import ConsentWriter, IngestResult
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE
from caret_otel.receivers.gateway.middleware import TemplateRoute
from caret_otel.receivers.gateway.runtime import Gateway

EVENTS_PATH = "/telemetry/events"
OFF_LOOP_BYTES = 256 << 10
"""Bodies larger than this are parsed on a worker thread, not on the event loop."""
SCAN_BYTES = 1 << 20
"""Bodies larger than this have their objects' key counts checked before the parse
(a parse holds the interpreter for its whole length: ~0.2 s for 200,000 keys)."""
SCAN_KEYS_FACTOR = 10
"""An object with more than this many times the per-event attribute limit is abuse:
the request is refused (413) before it is parsed. (Fewer keys: the event alone is
rejected after the parse, as for a small body.)"""
_KNOWN_OBJECTS = frozenset({client_batch.PROPERTIES, client_batch.CLIENT_INFO})


def export_result(gateway: Gateway, result: IngestResult) -> None:
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


def add_route(
    app: FastAPI,
    gateway: Gateway,
    read: Callable[[Request], Awaitable[bytes]],
    consent_writers: Callable[[Role], ConsentWriter],
) -> None:
    limits = gateway.config.limits
    country_header = gateway.config.country_header
    max_object_keys = SCAN_KEYS_FACTOR * limits.max_attributes_per_event

    def parse_large(data: bytes) -> tuple[list[Any], bool]:
        if len(data) > SCAN_BYTES:
            otlp_limits.check_json_object_sizes(data, max_object_keys, _KNOWN_OBJECTS)
        return client_batch.parse_envelope(data, limits.max_events_per_request)

    async def post_events(request: Request) -> Response:
        role = gateway.auth.require(request.headers.get("authorization"), Role.CLIENT)
        body.media_type(request.headers.get("content-type"), [body.JSON])
        gateway.exporter.admit("logs", "traces")
        data = await read(request)
        if len(data) > OFF_LOOP_BYTES:
            raw_events, _ = await run_in_threadpool(parse_large, data)
        else:
            raw_events, _ = client_batch.parse_envelope(data, limits.max_events_per_request)
        # The trusted edge's country header, never the client's address.
        country = request.headers.get(country_header) if country_header else None
        result = await gateway.ingestor.ingest(
            raw_events,
            country,
            consent_writers(role),
            scan_controls=client_batch.body_may_hold_control_characters(data),
        )
        export_result(gateway, result)
        answer: dict[str, object] = {
            "accepted": result.accepted,
            "rejected": [r.as_json() for r in result.rejected],
            "opted_out": result.opted_out,
            "dropped_attributes": result.report.total_dropped,
            "dropped": dropped_summary(result.report),
        }
        status = 202
        if result.rejected and not result.accepted and not result.opted_out:
            answer = {"error": "unprocessable", "message": "every event was rejected", **answer}
            status = 422
        return Response(orjson.dumps(answer), status_code=status, media_type=JSON_MEDIA_TYPE)

    # The route that serves: a plain Starlette one, ahead of the FastAPI route below,
    # which documents it (OpenAPI). The handler takes the Request as is, so FastAPI's
    # per-request dependency solving buys nothing here and cost ~60 µs a request
    # (~2 % of the gateway's CPU at full load). Errors go through the same app-wide
    # exception handlers either way.
    app.router.routes.insert(0, TemplateRoute(EVENTS_PATH, post_events, methods=["POST"]))
    app.add_api_route(
        EVENTS_PATH,
        post_events,
        methods=["POST"],
        operation_id="sendEvents",
        status_code=202,
        summary="Send Caret client events",
        description='One event, a JSON array of events, or {"events": [...]}. Each event is '
        "validated on its own: invalid ones are listed in `rejected` while the others are "
        "accepted. Events of users who opted out are dropped and counted in `opted_out`.",
        tags=["ingest"],
        openapi_extra={
            **spec.json_body(
                {
                    "oneOf": [
                        spec.ref(docs.ClientEvent),
                        {"type": "array", "items": spec.ref(docs.ClientEvent), "minItems": 1},
                        spec.ref(docs.ClientEventBatch),
                    ]
                }
            ),
            "security": spec.INGEST_SECURITY,
        },
        responses={
            202: {
                "model": docs.EventsAccepted,
                "description": "Taken for export (see per-event rejections).",
            },
            **spec.errors(400, 401, 403, 408, 413, 415, 429, 503),
            422: {
                "description": "The body's shape is wrong (an error naming the field), or every "
                "event was rejected (the counts, with each event's reason).",
                "content": {
                    JSON_MEDIA_TYPE: {
                        "schema": {
                            "anyOf": [spec.ref(docs.ErrorBody), spec.ref(docs.EventsRejected)]
                        }
                    }
                },
            },
        },
    )


MAX_DROPPED_ENTRIES = 20
"""At most this many (key, reason) entries in an answer, the most frequent first."""


def dropped_summary(report: ScrubReport) -> list[dict[str, object]]:
    """Which keys were not kept and why (``type``, ``shape``, ``unknown``, ...), so a client
    sending a token count as a string learns which key and why; keys only, never values."""
    ranked = sorted(report.dropped.items(), key=lambda item: (-item[1], item[0]))
    return [
        {"key": key, "reason": reason, "count": count}
        for (key, reason), count in ranked[:MAX_DROPPED_ENTRIES]
    ]
