"""What the simulation produces: client events, provider calls and billing events.

* :class:`ClientEvent` - one Caret client event in the wire format of the telemetry
  plan (section 2.1), posted to ``POST /telemetry/events``;
* :class:`ProviderCall` - one model-provider request Caret's server makes for a task,
  replayed through the SDK's instrumented httpx client (GenAI spans and metrics);
* :class:`BillingEvent` - a sign-up, plan change or credit purchase, recorded by the
  simulated account/billing service with the SDK's business-event helpers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from caret_otel.processors.privacy.client_events import (
    CLIENT_INFO,
    EVENT_TYPE,
    PROPERTIES,
    SESSION_ID,
    TIMESTAMP,
    USER_ID_HASH,
)
from caret_otel.semconv import events as event_specs
from caret_otel.simulator.population import User


def rfc3339(moment: datetime) -> str:
    """``2025-01-11T10:00:00.123Z`` (UTC, milliseconds), the client's timestamp format."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def stored_as_row(event_type: str) -> bool:
    """Whether an accepted client event of this type becomes a ``raw.events`` row: only
    business events do; log- and metrics-only ones (``caret.diagnostic.*``) never reach
    PostgreSQL. An unknown type is rejected by the gateway, so it is not counted either."""
    mapped = event_specs.for_client_event(event_type)
    return mapped is not None and mapped[0].business


@dataclass(frozen=True)
class ClientEvent:
    """One client event, ready to be serialised."""

    at: datetime
    event_type: str
    user_id_hash: str
    session_id: str
    properties: Mapping[str, object]
    """Keyed by the client's own property names (``api_provider``, ``tokens_in``)."""
    client_info: Mapping[str, str]
    expect_opted_out: bool = False
    """Sent after the user opted out: the gateway must drop it."""
    expect_rejected: bool = False
    """Deliberately malformed (planted secrets mode): the gateway must reject it."""

    def to_json(self) -> dict[str, object]:
        return {
            EVENT_TYPE: self.event_type,
            USER_ID_HASH: self.user_id_hash,
            SESSION_ID: self.session_id,
            TIMESTAMP: rfc3339(self.at),
            PROPERTIES: dict(self.properties),
            CLIENT_INFO: dict(self.client_info),
        }


@dataclass(frozen=True)
class ProviderCall:
    """A request to a model provider made by Caret's server on behalf of a task."""

    at: datetime
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    status: int | None
    """The provider's HTTP error status, or None when the call succeeded."""


class BillingKind(enum.Enum):
    SIGNUP = "signup"
    PLAN_CHANGE = "plan_change"
    CREDITS_PURCHASED = "credits_purchased"


@dataclass(frozen=True)
class BillingEvent:
    """A server-side business event of the account and billing service."""

    at: datetime
    kind: BillingKind
    user_id_hash: str
    plan: str
    previous_plan: str | None = None
    channel: str | None = None
    country: str | None = None
    credits: float | None = None


@dataclass
class UserTraffic:
    """Everything one user does in the window, in time order."""

    user: User
    events: list[ClientEvent] = field(default_factory=list)
    provider_calls: list[ProviderCall] = field(default_factory=list)
    billing: list[BillingEvent] = field(default_factory=list)
