"""Pydantic models that *describe* the HTTP API in ``/openapi.json``.

They are used only for documentation (request schemas are injected into the OpenAPI
document, responses are declared on the routes): bodies on the hot path are parsed
with orjson and checked by the privacy processor, so a malformed request gets the
gateway's own 400/422 naming the field, never a framework error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str = Field(description="Version of the Caret extension.", examples=["1.0.0"])
    platform: str = Field(description="Host platform of the extension.", examples=["vscode"])
    language: str = Field(description="UI language (BCP 47 primary tag).", examples=["ko"])


class ClientEvent(BaseModel):
    """One Caret client event (telemetry plan §2.1)."""

    model_config = ConfigDict(extra="allow")

    event_type: str = Field(
        description="Client event type; GET /telemetry/schema lists the known ones "
        "(task.created, task.completed, task.tokens, ui.model_selected, user.opt_out, ...).",
        examples=["task.created"],
    )
    user_id_hash: str = Field(
        description="The client's hash of the user id; re-keyed into a pseudonym by the server.",
        min_length=1,
        max_length=512,
    )
    session_id: str = Field(
        description="Client session id (pseudonymised).", min_length=1, max_length=512
    )
    timestamp: datetime = Field(
        description="RFC 3339 date-time with offset. Rejected if more than 5 min in the "
        "future or older than the 30-day raw-event retention.",
        examples=["2025-01-11T10:00:00Z"],
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description="Event properties by client key (api_provider, model, task_id, tokens_in, ...). "
        "Unknown or forbidden keys are dropped and counted, never stored.",
        examples=[{"api_provider": "anthropic", "model": "claude-sonnet-4", "task_id": "t-1"}],
    )
    client_info: ClientInfo


class ClientEventBatch(BaseModel):
    events: list[ClientEvent] = Field(
        description="Up to CARET_OTEL_MAX_EVENTS_PER_REQUEST events (default 1000).", min_length=1
    )


class RejectedEvent(BaseModel):
    index: int = Field(description="Position of the event in the request (0 for a single event).")
    field: str = Field(description="The offending field (dotted path).")
    reason: str = Field(description="What is wrong with it.")


class DroppedAttribute(BaseModel):
    key: str = Field(description="Registry attribute or `properties.<key>` as sent.")
    reason: str = Field(description="type, shape, unknown, forbidden, not_collected, ...")
    count: int = Field(description="How many times in this request.")


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events taken for export.")
    rejected: list[RejectedEvent] = Field(description="Events refused, with the reason.")
    opted_out: int = Field(description="Events dropped because their user opted out of telemetry.")
    dropped_attributes: int = Field(
        description="Attributes not kept (unknown, forbidden, invalid), over all events."
    )
    dropped: list[DroppedAttribute] = Field(
        default_factory=list,
        description="Which keys were not kept and why, most frequent first (at most 20).",
    )


class EventsRejected(EventsAccepted):
    """Every event of the request was rejected (422)."""

    error: str
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable error code.", examples=["bad_json"])
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(default=None, description="The offending field or header.")


class ConsentAssertion(BaseModel):
    """Signed by Caret's account service: HMAC-SHA256 over
    ``caret-consent-v1\n<user_id_hash>\n<true|false>\n<issued_at>\n<nonce>``."""

    key_id: str = Field(description="Id of the account service's key.")
    issued_at: int = Field(description="Unix seconds; valid for a few minutes.")
    nonce: str = Field(description="16-128 URL-safe characters; accepted once.")
    signature: str = Field(description="Hex HMAC-SHA256 of the signed message.")


class ConsentUpdate(BaseModel):
    user_id_hash: str = Field(min_length=1, max_length=512)
    telemetry_enabled: bool
    assertion: ConsentAssertion | None = Field(
        default=None,
        description="Required to lift an opt-out (telemetry_enabled=true) with a client token.",
    )


class ConsentLookup(BaseModel):
    user_id_hash: str = Field(min_length=1, max_length=512)


class ConsentState(BaseModel):
    telemetry_enabled: bool
    durable: bool = Field(description="False only in development (consent kept in memory).")


class DeletionRequest(BaseModel):
    user_id_hash: str = Field(min_length=1, max_length=512)


class ConsentRecorded(BaseModel):
    telemetry_enabled: bool


class DeletionDone(BaseModel):
    request_id: str = Field(description="Id of the deletion, recorded in the audit table.")
    rows_removed: dict[str, int] = Field(description="Table -> rows deleted.")
    deleted_rows: int = Field(description="Rows removed over every table holding per-user data.")
    pseudonyms: int = Field(description="Pseudonyms searched (one per live key version).")
    already_completed: bool = Field(
        description="True when this request id had completed before (nothing ran again)."
    )
    loki_delete_requests: int = Field(
        default=0, description="Loki delete requests filed (0 when no Loki URL is configured)."
    )


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready or not_ready")
    checks: dict[str, str] = Field(description="Component -> ok, or why it is not.")


DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    ClientEvent, ClientInfo, ClientEventBatch, ConsentUpdate, ConsentAssertion, ConsentLookup,
    DeletionRequest, EventsRejected, ErrorBody,
)  # fmt: skip
"""Request models that no route declares (bodies are parsed by hand) but the docs need."""
