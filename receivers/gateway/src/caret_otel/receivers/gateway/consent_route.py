"""``PUT /telemetry/consent``, and recording consent for opt-in/opt-out client events.

A change is stored under the pseudonym of every live key (a key rotation cannot undo
it) before the answer: with PostgreSQL, written through and shared with the other
gateway processes. When the store cannot record it, the request is refused with 503
as a whole, so an opt-out is never half-applied or silently lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.otlp import body
from caret_otel.otlp.body import parse_json
from caret_otel.processors.privacy.consent import ConsentStoreError
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.client_ingest import ConsentWriter
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE, RequestError
from caret_otel.receivers.gateway.runtime import Gateway

log = logging.getLogger(__name__)

CONSENT_PATH = "/telemetry/consent"
CONSENT_RETRY_AFTER_S = 5.0
MAX_ID_LENGTH = 512


def consent_writer(gateway: Gateway) -> ConsentWriter:
    """Records a user's choice (raw user id hash -> every live pseudonym) or raises 503."""

    async def record(user_id_hash: str, enabled: bool) -> None:
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

    return record


def parse_consent(data: bytes) -> tuple[str, bool]:
    document = parse_json(data)
    if not isinstance(document, dict):
        raise RequestError.unprocessable("body must be a JSON object", field="body")
    user_id_hash = document.get("user_id_hash")
    enabled = document.get("telemetry_enabled")
    if (
        not isinstance(user_id_hash, str)
        or not user_id_hash.strip()
        or len(user_id_hash) > MAX_ID_LENGTH
    ):
        raise RequestError.unprocessable(
            f"user_id_hash must be a non-empty string of at most {MAX_ID_LENGTH} characters",
            field="user_id_hash",
        )
    if not isinstance(enabled, bool):
        raise RequestError.unprocessable(
            "telemetry_enabled must be true or false", field="telemetry_enabled"
        )
    return user_id_hash, enabled


def add_route(
    app: FastAPI,
    gateway: Gateway,
    read: Callable[[Request], Awaitable[bytes]],
    record: ConsentWriter,
) -> None:
    async def put_consent(request: Request) -> Response:
        gateway.auth.require(request.headers.get("authorization"), Role.INGEST)
        body.media_type(request.headers.get("content-type"), [body.JSON])
        user_id_hash, enabled = parse_consent(await read(request))
        await record(user_id_hash, enabled)
        return Response(orjson.dumps({"telemetry_enabled": enabled}), media_type=JSON_MEDIA_TYPE)

    app.add_api_route(
        CONSENT_PATH,
        put_consent,
        methods=["PUT"],
        operation_id="setConsent",
        summary="Record a user's telemetry consent",
        description="telemetry_enabled=false: from the next request on, every event and OTLP "
        "record of this user is dropped. Stored under every live pseudonym key.",
        tags=["privacy"],
        openapi_extra={
            **spec.json_body(spec.ref(docs.ConsentUpdate), gzip=False),
            "security": spec.INGEST_SECURITY,
        },
        responses={
            200: {"model": docs.ConsentRecorded, "description": "Recorded."},
            **spec.errors(400, 401, 403, 413, 415, 422, 429, 503),
        },
    )
