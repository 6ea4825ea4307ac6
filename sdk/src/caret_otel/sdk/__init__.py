"""The OpenTelemetry SDK helper for Caret's Python services (guide: ``docs/sdk.md``).

::

    from caret_otel import sdk

    handle = sdk.configure(service_name="caret-billing")   # once, at start-up
    sdk.record_credits_consumed("user-hash", 2.5, "anthropic", "claude-sonnet-4", "pro")
    ...
    handle.shutdown()                                        # flushes

``configure()`` wires privacy first, OTLP out, the standard ``OTEL_*`` variables, the
registry's histogram buckets and the GenAI instrumentation of httpx. The ``record_*``
functions emit Caret's server-side business events through the configured providers
(they raise ``RuntimeError`` before ``configure()``); each returns the event's id.
"""

from __future__ import annotations

from datetime import datetime

from caret_otel.sdk.configure import (
    SdkConfigurationError,
    SdkHandle,
    build_resource,
    configure,
    current,
)
from caret_otel.sdk.events import BusinessEventError, BusinessEvents
from caret_otel.sdk.genai import instrument_httpx, uninstrument_httpx


def record_signup(
    user_id: str,
    plan: str,
    channel: str,
    country: str | None = None,
    *,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """A new account (see :meth:`BusinessEvents.signup`)."""
    return current().events.signup(
        user_id, plan, channel, country, at=at, idempotency_key=idempotency_key
    )


def record_plan_change(
    user_id: str,
    previous: str,
    new: str,
    *,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """A plan change (see :meth:`BusinessEvents.plan_change`)."""
    return current().events.plan_change(
        user_id, previous, new, at=at, idempotency_key=idempotency_key
    )


def record_credits_purchased(
    user_id: str,
    amount: float,
    plan: str,
    *,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Credits bought (see :meth:`BusinessEvents.credits_purchased`)."""
    return current().events.credits_purchased(
        user_id, amount, plan, at=at, idempotency_key=idempotency_key
    )


def record_credits_consumed(
    user_id: str,
    amount: float,
    provider: str,
    model: str,
    plan: str,
    *,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """Credits spent on a model call (see :meth:`BusinessEvents.credits_consumed`)."""
    return current().events.credits_consumed(
        user_id, amount, provider, model, plan, at=at, idempotency_key=idempotency_key
    )


def record_session_started(
    user_id: str,
    session_id: str,
    platform: str | None = None,
    plan: str | None = None,
    *,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """A client session began (see :meth:`BusinessEvents.session_started`)."""
    return current().events.session_started(
        user_id, session_id, platform, plan, at=at, idempotency_key=idempotency_key
    )


def record_session_ended(
    user_id: str,
    session_id: str,
    duration_s: float,
    platform: str | None = None,
    plan: str | None = None,
    *,
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> str:
    """A client session ended (see :meth:`BusinessEvents.session_ended`)."""
    return current().events.session_ended(
        user_id, session_id, duration_s, platform, plan, at=at, idempotency_key=idempotency_key
    )


__all__ = [
    "BusinessEventError",
    "BusinessEvents",
    "SdkConfigurationError",
    "SdkHandle",
    "build_resource",
    "configure",
    "current",
    "instrument_httpx",
    "record_credits_consumed",
    "record_credits_purchased",
    "record_plan_change",
    "record_session_ended",
    "record_session_started",
    "record_signup",
    "uninstrument_httpx",
]
