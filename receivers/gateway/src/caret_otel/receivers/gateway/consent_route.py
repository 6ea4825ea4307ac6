"""``PUT /telemetry/consent`` and ``POST /telemetry/consent/lookup``; recording consent
for opt-in/opt-out client events.

Who may do what:

- **opting out** only reduces collection: any token may (a client token too), limited
  to ``consent_writes_per_second`` per process for client tokens (429 beyond);
- **lifting an opt-out** (``telemetry_enabled: true``) needs proof that the user asked:
  a consent assertion signed by Caret's account service (``assertion`` in the body; see
  :mod:`caret_otel.processors.privacy.consent`), or a service or admin token. A client
  token without a valid assertion gets 403; a client ``user.opt_in`` *event* is kept as
  an event but changes nothing (counted as ``refused``);
- **looking consent up** is for the admin token.

A change is stored under the pseudonym of every live key (a key rotation cannot undo
it) before the answer: with PostgreSQL, written through and shared with the other
gateway processes. Without a durable store every write answers 503 unless the
development flag ``CARET_OTEL_DEV_VOLATILE_CONSENT=1`` is set, so an opt-out is never
acknowledged and then forgotten on restart. When the store cannot record it, the
request is refused with 503 as a whole, so an opt-out is never half-applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.otlp import body
from caret_otel.otlp.body import parse_json
from caret_otel.processors.privacy.consent import ConsentAssertionError, ConsentStoreError
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.client_ingest import ConsentWriter
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE, RequestError
from caret_otel.receivers.gateway.runtime import Gateway

log = logging.getLogger(__name__)

CONSENT_PATH = "/telemetry/consent"
LOOKUP_PATH = "/telemetry/consent/lookup"
CONSENT_RETRY_AFTER_S = 5.0
MAX_ID_LENGTH = 512
ASSERTION = "assertion"
_BURST_SECONDS = 5.0

# Why a consent change was refused (self-metric label values).
NO_PROOF = "no_proof"
BAD_ASSERTION = "bad_assertion"
RATE_LIMITED = "rate_limited"

ConsentWriterFor = Callable[[Role], ConsentWriter]
"""The consent writer for a request authenticated with a role."""


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up (thread-safe)."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


def _unavailable_without_store() -> RequestError:
    return RequestError.unavailable(
        "consent cannot be recorded: this gateway has no durable consent store "
        "(DATABASE_URL unset); nothing in this request was accepted",
        None,
    )


def consent_writers(gateway: Gateway) -> ConsentWriterFor:
    """Per role, the writer that records a user's choice (raw user id hash -> every live
    pseudonym) or raises 429/503. A client role's opt-in changes nothing (refused)."""
    limits = gateway.config.limits
    bucket = TokenBucket(
        limits.consent_writes_per_second, limits.consent_writes_per_second * _BURST_SECONDS
    )
    refused = gateway.metrics.consent_refused

    async def store(user_id_hash: str, enabled: bool) -> None:
        if not gateway.consent_is_durable:
            raise _unavailable_without_store()
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

    async def trusted(user_id_hash: str, enabled: bool) -> None:
        await store(user_id_hash, enabled)

    async def client(user_id_hash: str, enabled: bool) -> None:
        if enabled:
            # Lifting an opt-out needs proof (an assertion); a client event is none.
            refused.labels(NO_PROOF).inc()
            return
        if not bucket.take():
            refused.labels(RATE_LIMITED).inc()
            raise RequestError.too_many_requests(
                "too many opt-outs from client tokens right now; retry later",
                1.0,
            )
        await store(user_id_hash, enabled)

    def writer_for(role: Role) -> ConsentWriter:
        return client if role is Role.CLIENT else trusted

    return writer_for


def parse_consent(data: bytes) -> tuple[str, bool, Any]:
    """``user_id_hash``, ``telemetry_enabled`` and the (unchecked) ``assertion``."""
    document = parse_json(data)
    if not isinstance(document, dict):
        raise RequestError.unprocessable("body must be a JSON object", field="body")
    user_id_hash = _user_id_hash(document)
    enabled = document.get("telemetry_enabled")
    if not isinstance(enabled, bool):
        raise RequestError.unprocessable(
            "telemetry_enabled must be true or false", field="telemetry_enabled"
        )
    return user_id_hash, enabled, document.get(ASSERTION)


def _user_id_hash(document: dict[str, Any]) -> str:
    user_id_hash = document.get("user_id_hash")
    if (
        not isinstance(user_id_hash, str)
        or not user_id_hash.strip()
        or len(user_id_hash) > MAX_ID_LENGTH
    ):
        raise RequestError.unprocessable(
            f"user_id_hash must be a non-empty string of at most {MAX_ID_LENGTH} characters",
            field="user_id_hash",
        )
    return user_id_hash


async def _check_assertion(
    gateway: Gateway, assertion: Any, user_id_hash: str, enabled: bool
) -> None:
    if not gateway.assertions.enabled:
        raise RequestError.forbidden(
            "lifting an opt-out needs a service or admin token: this gateway has no consent "
            "assertion key (CARET_OTEL_CONSENT_ASSERTION_KEYS)"
        )
    try:
        await run_in_threadpool(gateway.assertions.verify, assertion, user_id_hash, enabled)
    except ConsentAssertionError as exc:
        gateway.metrics.consent_refused.labels(BAD_ASSERTION).inc()
        raise RequestError(
            403, "bad_assertion", f"consent assertion refused: {exc}", field=exc.field
        ) from None
    except ConsentStoreError as exc:
        log.error("consent assertion not checked: %s", exc)
        raise RequestError.unavailable(
            "the consent store is unavailable; retry later", CONSENT_RETRY_AFTER_S
        ) from None


def add_route(
    app: FastAPI,
    gateway: Gateway,
    read: Callable[[Request], Awaitable[bytes]],
    writers: ConsentWriterFor,
) -> None:
    async def put_consent(request: Request) -> Response:
        role = gateway.auth.require(
            request.headers.get("authorization"), Role.CLIENT, Role.SERVICE, Role.ADMIN
        )
        body.media_type(request.headers.get("content-type"), [body.JSON])
        user_id_hash, enabled, assertion = parse_consent(await read(request))
        if not gateway.consent_is_durable:
            raise _unavailable_without_store()
        writer = writers(role)
        if role is Role.CLIENT and enabled:
            if assertion is None:
                gateway.metrics.consent_refused.labels(NO_PROOF).inc()
                raise RequestError(
                    403,
                    "forbidden",
                    "lifting an opt-out needs a consent assertion signed by Caret's account "
                    "service ('assertion'), or a service token",
                    field=ASSERTION,
                )
            await _check_assertion(gateway, assertion, user_id_hash, enabled)
            writer = writers(Role.SERVICE)  # the assertion is the user's own proof
        await writer(user_id_hash, enabled)
        return Response(orjson.dumps({"telemetry_enabled": enabled}), media_type=JSON_MEDIA_TYPE)

    async def lookup(request: Request) -> Response:
        gateway.auth.require(request.headers.get("authorization"), Role.ADMIN)
        body.media_type(request.headers.get("content-type"), [body.JSON])
        document = parse_json(await read(request))
        if not isinstance(document, dict):
            raise RequestError.unprocessable("body must be a JSON object", field="body")
        user_id_hash = _user_id_hash(document)
        pseudonyms = gateway.pseudonymizer.all_pseudonyms(user_id_hash)
        opted_out = any(gateway.consent.is_opted_out(p) for p in pseudonyms)
        answer = {"telemetry_enabled": not opted_out, "durable": gateway.consent_is_durable}
        return Response(orjson.dumps(answer), media_type=JSON_MEDIA_TYPE)

    app.add_api_route(
        CONSENT_PATH,
        put_consent,
        methods=["PUT"],
        operation_id="setConsent",
        summary="Record a user's telemetry consent",
        description="telemetry_enabled=false (any token; client tokens rate-limited): from the "
        "next request on, every event and OTLP record of this user is dropped. "
        "telemetry_enabled=true lifts an opt-out: a client token must send an `assertion` "
        "signed by Caret's account service; service and admin tokens need none. Stored under "
        "every live pseudonym key; 503 without a durable consent store.",
        tags=["privacy"],
        openapi_extra={
            **spec.json_body(spec.ref(docs.ConsentUpdate), gzip=False),
            "security": [*spec.INGEST_SECURITY, *spec.SERVICE_SECURITY, *spec.ADMIN_SECURITY],
        },
        responses={
            200: {"model": docs.ConsentRecorded, "description": "Recorded."},
            **spec.errors(400, 401, 403, 408, 413, 415, 422, 429, 503),
        },
    )
    app.add_api_route(
        LOOKUP_PATH,
        lookup,
        methods=["POST"],
        operation_id="lookupConsent",
        summary="A user's current consent (admin token)",
        description="The user id travels in the body, never in the URL.",
        tags=["privacy"],
        openapi_extra={
            **spec.json_body(spec.ref(docs.ConsentLookup), gzip=False),
            "security": spec.ADMIN_SECURITY,
        },
        responses={
            200: {"model": docs.ConsentState, "description": "The user's setting."},
            **spec.errors(400, 401, 403, 408, 413, 415, 422, 429),
        },
    )
