"""``DELETE /telemetry/users/{user_id_hash}``: erase a user, for the admin only.

The user's pseudonyms under every live key are computed here (the raw id never
reaches the database) and handed to the business exporter's ``forget``, which
removes every per-user row in one transaction and writes the audit row. An
``Idempotency-Key`` header becomes the request id, so a retried call is answered
from the audit table instead of running again.

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

import psycopg
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.exporters.postgres.deletion import DeletionResult, InvalidDeletionRequest, forget
from caret_otel.receivers.gateway import openapi_models as docs
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.errors import RequestError
from caret_otel.receivers.gateway.runtime import Gateway

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
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


async def delete_user(gateway: Gateway, request: Request, user_id_hash: str) -> Response:
    gateway.auth.require(request.headers.get("authorization"), Role.ADMIN)
    if not user_id_hash.strip() or len(user_id_hash) > MAX_ID_LENGTH:
        raise RequestError.unprocessable(
            f"user_id_hash must be 1 to {MAX_ID_LENGTH} characters", field="user_id_hash"
        )
    request_id = _request_id(request.headers.get(IDEMPOTENCY_HEADER))
    database = gateway.config.database_url
    if not database:
        gateway.metrics.deletions.labels("unavailable").inc()
        raise RequestError.unavailable(
            "deletion needs the business database: this gateway runs without DATABASE_URL, "
            "so it has no stored data to delete; configure DATABASE_URL and retry",
            None,
        )
    pseudonyms = gateway.pseudonymizer.all_pseudonyms(user_id_hash)
    try:
        result: DeletionResult = await run_in_threadpool(
            forget, database, pseudonyms, request_id=request_id
        )
    except InvalidDeletionRequest as exc:
        gateway.metrics.deletions.labels("invalid").inc()
        raise RequestError.unprocessable(str(exc), field="user_id_hash") from None
    except psycopg.Error as exc:
        gateway.metrics.deletions.labels("failed").inc()
        log.error("deletion %s failed: %s; nothing was deleted", request_id, type(exc).__name__)
        raise RequestError.unavailable(
            f"the database failed ({type(exc).__name__}); nothing was deleted, retry later",
            DATABASE_RETRY_AFTER_S,
        ) from None
    gateway.metrics.deletions.labels("done").inc()
    log.info("deletion %s: %d rows removed", request_id, result.total_rows)
    return Response(
        docs.DeletionDone(
            request_id=result.request_id,
            rows_removed=result.rows_removed,
            deleted_rows=result.total_rows,
            pseudonyms=len(pseudonyms),
            already_completed=result.already_completed,
        ).model_dump_json(),
        media_type="application/json",
    )


def add_route(app: FastAPI, gateway: Gateway, path: str) -> None:
    async def delete(request: Request, user_id_hash: str) -> Response:
        return await delete_user(gateway, request, user_id_hash)

    app.add_api_route(
        path,
        delete,
        methods=["DELETE"],
        summary="Delete everything stored about a user (admin token)",
        description="Removes the user's rows from every table holding per-user data, under "
        "every live pseudonym key, and records an audit row. Does not change consent. "
        f"Send {IDEMPOTENCY_HEADER} to make retries safe (it becomes the request id).",
        tags=["privacy"],
        openapi_extra={
            "security": spec.ADMIN_SECURITY,
            "parameters": [
                {
                    "name": IDEMPOTENCY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Request id for safe retries (1-200 characters).",
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
            **spec.errors(400, 401, 403, 422, 429, 503),
        },
        name="delete_user",
        operation_id="deleteUser",
    )
