"""``POST /telemetry/deletions``: erase a user, for the admin only.

The user id travels in the JSON body (``{"user_id_hash": "..."}``), never in the URL
(proxies and access logs keep URLs). The former ``DELETE /telemetry/users/{id}`` answers
410 naming the new form and does nothing.

The user's pseudonyms under every live key are computed here (the raw id never
reaches the database) and handed to the business exporter's ``forget``, which runs the
``SECURITY DEFINER`` function ``privacy.forget_user`` (the gateway's database role needs
no right on the tables), removing every per-user row in one transaction with an audit
row, then files a Loki delete request per pseudonym when ``CARET_OTEL_LOKI_URL`` is set.
An ``Idempotency-Key`` header becomes the request id and is bound to its subject: a
retry for the same user is answered from the audit table (and Loki is asked again); the
same key for another user is refused with 409, so a reused key can never make a
deletion silently not happen.

Deletion is not an opt-out: the user's consent setting is left as it is. A user who
wants their data gone *and* no further collection opts out too (``PUT
/telemetry/consent`` or a ``user.opt_out`` event); a user who only asked for their
history to be erased keeps using Caret with telemetry on (``forget`` deletes an opt-in
row like any other per-user row; no row means telemetry on). Conversely an opt-out
survives the deletion (``forget`` keeps the consent table's opt-out rows). Events
already in flight when the deletion ran are refused by the exporter (it remembers the
pseudonyms' digests with the deletion time).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import psycopg
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.exporters.postgres.deletion import (
    DeletionResult,
    IdempotencyConflict,
    InvalidDeletionRequest,
    LokiDeletionFailed,
    LokiTarget,
    forget,
)
from caret_otel.otlp import body
from caret_otel.otlp.body import parse_json
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.errors import RequestError
from caret_otel.receivers.gateway.runtime import Gateway

log = logging.getLogger(__name__)

DELETIONS_PATH = "/telemetry/deletions"
IDEMPOTENCY_HEADER = "Idempotency-Key"
LOKI_RETRY_AFTER_S = 60.0
MAX_ID_LENGTH = 512
MAX_REQUEST_ID_LENGTH = 200
DATABASE_RETRY_AFTER_S = 30.0


def _request_id(header: str | None) -> str:
    if header is None:
        return str(uuid.uuid4())
    value = header.strip()
    if not 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
        raise RequestError.bad_request(
            "bad_idempotency_key",
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_REQUEST_ID_LENGTH} characters",
            field=IDEMPOTENCY_HEADER,
        )
    return value


def _user_id_hash(data: bytes) -> str:
    document = parse_json(data)
    if not isinstance(document, dict):
        raise RequestError.unprocessable("body must be a JSON object", field="body")
    user_id_hash = document.get("user_id_hash")
    if (
        not isinstance(user_id_hash, str)
        or not user_id_hash.strip()
        or len(user_id_hash) > MAX_ID_LENGTH
    ):
        raise RequestError.unprocessable(
            f"user_id_hash must be a string of 1 to {MAX_ID_LENGTH} characters",
            field="user_id_hash",
        )
    return user_id_hash


def _answer(result: DeletionResult, pseudonyms: int) -> Response:
    return Response(
        docs.DeletionDone(
            request_id=result.request_id,
            rows_removed=result.rows_removed,
            deleted_rows=result.total_rows,
            pseudonyms=pseudonyms,
            already_completed=result.already_completed,
            loki_delete_requests=result.loki_delete_requests,
        ).model_dump_json(),
        media_type="application/json",
    )


async def delete_user(
    gateway: Gateway, request: Request, read: Callable[[Request], Awaitable[bytes]]
) -> Response:
    gateway.auth.require(request.headers.get("authorization"), Role.ADMIN)
    request_id = _request_id(request.headers.get(IDEMPOTENCY_HEADER))
    body.media_type(request.headers.get("content-type"), [body.JSON])
    user_id_hash = _user_id_hash(await read(request))
    config = gateway.config
    database = config.database_url
    if not database:
        gateway.metrics.deletions.labels("unavailable").inc()
        raise RequestError.unavailable(
            "deletion needs the business database: this gateway runs without DATABASE_URL, "
            "so it has no stored data to delete; configure DATABASE_URL and retry",
            None,
        )
    loki = LokiTarget(config.loki_url, config.loki_tenant) if config.loki_url else None
    pseudonyms = gateway.pseudonymizer.all_pseudonyms(user_id_hash)
    try:
        result: DeletionResult = await run_in_threadpool(
            forget, database, pseudonyms, request_id=request_id, loki=loki
        )
    except InvalidDeletionRequest as exc:
        gateway.metrics.deletions.labels("invalid").inc()
        raise RequestError.unprocessable(str(exc), field="user_id_hash") from None
    except IdempotencyConflict as exc:
        gateway.metrics.deletions.labels("conflict").inc()
        raise RequestError(409, "conflict", str(exc), field=IDEMPOTENCY_HEADER) from None
    except LokiDeletionFailed as exc:
        gateway.metrics.deletions.labels("loki_failed").inc()
        raise RequestError.unavailable(
            f"PostgreSQL rows deleted (request {exc.result.request_id}), but the Loki delete "
            f"request failed; retry with the same {IDEMPOTENCY_HEADER}",
            LOKI_RETRY_AFTER_S,
        ) from None
    except psycopg.Error as exc:
        gateway.metrics.deletions.labels("failed").inc()
        log.error("deletion %s failed: %s; nothing was deleted", request_id, type(exc).__name__)
        raise RequestError.unavailable(
            f"the database failed ({type(exc).__name__}); nothing was deleted, retry later",
            DATABASE_RETRY_AFTER_S,
        ) from None
    gateway.metrics.deletions.labels("done").inc()
    log.info("deletion %s: %d rows removed", request_id, result.total_rows)
    return _answer(result, len(pseudonyms))


def add_route(
    app: FastAPI, gateway: Gateway, read: Callable[[Request], Awaitable[bytes]], old_path: str
) -> None:
    async def delete(request: Request) -> Response:
        return await delete_user(gateway, request, read)

    async def moved(request: Request) -> Response:
        raise RequestError(
            410,
            "moved",
            f"DELETE {old_path} is gone: user ids no longer travel in URLs. Send POST "
            f'{DELETIONS_PATH} with the body {{"user_id_hash": "..."}} and the admin token',
            field="path",
        )

    app.add_api_route(
        DELETIONS_PATH,
        delete,
        methods=["POST"],
        summary="Delete everything stored about a user (admin token)",
        description="Removes the user's rows from every table holding per-user data, under "
        "every live pseudonym key, records an audit row and, when a Loki URL is configured, "
        "files a Loki delete request per pseudonym. Does not change consent. "
        f"Send {IDEMPOTENCY_HEADER} to make retries safe (it becomes the request id, bound "
        "to this user: reusing it for another user is refused with 409).",
        tags=["privacy"],
        openapi_extra={
            **spec.json_body(spec.ref(docs.DeletionRequest), gzip=False),
            "security": spec.ADMIN_SECURITY,
            "parameters": [
                {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Request id for safe retries (1-200 characters), "
                    "bound to the user it first deleted.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_REQUEST_ID_LENGTH,
                    },
                },
            ],
        },
        responses={
            200: {
                "model": docs.DeletionDone,
                "description": "Deleted (or already deleted under this request id).",
            },
            **spec.errors(400, 401, 403, 408, 409, 413, 415, 422, 429, 503),
        },
        name="delete_user",
        operation_id="deleteUser",
    )
    app.add_api_route(
        old_path,
        moved,
        methods=["DELETE"],
        summary=f"Gone: use POST {DELETIONS_PATH}",
        description="Answers 410: the user id no longer travels in the URL.",
        tags=["privacy"],
        responses={410: {"model": docs.ErrorBody, "description": "Moved to the body form."}},
        name="delete_user_gone",
        operation_id="deleteUserGone",
    )
