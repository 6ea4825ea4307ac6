"""Helpers for the gateway's integration tests: tokens, a valid client event, and a
handle on a running gateway."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from caret_otel.receivers.gateway.runtime import Gateway
from caret_otel.receivers.gateway.server import BackgroundServer

INGEST = "ingest-token-for-tests-0123"
ADMIN = "admin-token-for-tests-0123456"
SERVICE = "service-token-for-tests-01234"
AUTH = {"Authorization": f"Bearer {INGEST}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
SERVICE_AUTH = {"Authorization": f"Bearer {SERVICE}"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def client_event(
    event_type: str = "task.created", *, user: str = "user-1", **properties: Any
) -> dict[str, Any]:
    """A valid client event (telemetry plan §2.1), stamped now."""
    return {
        "event_type": event_type,
        "user_id_hash": user,
        "session_id": "session-1",
        "timestamp": iso(datetime.now(UTC) - timedelta(seconds=1)),
        "properties": {
            "api_provider": "anthropic",
            "model": "claude-sonnet-4",
            "task_id": "task-1",
            **properties,
        },
        "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
    }


@dataclass
class RunningGateway:
    server: BackgroundServer
    gateway: Gateway
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def post_events(
        self, payload: Any, *, headers: Mapping[str, str] | None = None, gzipped: bool = False
    ) -> httpx.Response:
        body = orjson.dumps(payload)
        sent = {"Content-Type": "application/json", **AUTH, **(headers or {})}
        if gzipped:
            body = gzip.compress(body)
            sent["Content-Encoding"] = "gzip"
        return self.client.post("/telemetry/events", content=body, headers=sent)

    def set_consent(
        self, user: str, enabled: bool, *, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """A consent change with the service token (may lift an opt-out) by default."""
        return self.client.put(
            "/telemetry/consent",
            json={"user_id_hash": user, "telemetry_enabled": enabled},
            headers=SERVICE_AUTH if headers is None else headers,
        )

    def delete_user(
        self,
        user: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``POST /telemetry/deletions`` (the admin token by default)."""
        sent = dict(ADMIN_AUTH if headers is None else headers)
        if key is not None:
            sent["Idempotency-Key"] = key
        return self.client.post("/telemetry/deletions", json={"user_id_hash": user}, headers=sent)

    def metrics_text(self) -> str:
        return self.client.get("/metrics").text


GatewayFactory = Callable[..., RunningGateway]
