"""Typed helpers for Caret's server-side business events.

Each helper emits one OTel *event* - a log record whose ``event_name`` is the registry's
event - and updates the metric the registry derives from it (``docs/semantic-conventions.md``
lists both). Attribute names come from ``caret_otel.semconv``; the metric labels are
exactly the registry's attribute set of each metric.

The user id is put in the end-user pseudonym attribute in clear; the privacy processor
that :func:`caret_otel.sdk.configure` installs first replaces it with its keyed
pseudonym before anything is exported. Pass the id in the form the Caret client hashes
into ``user_id_hash``, so that one user's server and client events share a pseudonym.

Every event carries a deterministic event id, a keyed hash of the event name, the user
and either ``idempotency_key`` (e.g. the payment or request id: a retry gets the same
id whenever it runs) or, without one, the timestamp ``at`` and the event's values (a
retry must then pass the same ``at``). Equal ids are stored once by the business
exporter. The hash is keyed with the pseudonym key, so nobody without it can test a
guess of who did what.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
from opentelemetry import _logs, metrics
from opentelemetry.util.types import AttributeValue

from caret_otel.core.errors import InputError
from caret_otel.core.version import __version__
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs
from caret_otel.semconv import metrics as metric_specs
from caret_otel.semconv.events import EventSpec
from caret_otel.semconv.metrics import MetricSpec

SCOPE_NAME = "caret_otel.sdk.events"
EVENT_ID_HEX_LENGTH = 32
"""128 bits, the same length as the gateway's ids of client events."""


class BusinessEventError(InputError):
    """A helper was called with an unusable value; the message names the argument."""


def _require_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BusinessEventError(f"{name}: must be a non-empty string, got {value!r}")
    return value


def _require_amount(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BusinessEventError(f"{name}: must be a finite number, got {value!r}")
    if value < 0:
        raise BusinessEventError(f"{name}: must not be negative, got {value!r}")
    return float(value)


def _timestamp_ns(at: datetime | None) -> int:
    if at is None:
        at = datetime.now(UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        raise BusinessEventError("at: must be timezone-aware (e.g. datetime.now(UTC))")
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _metric_attributes(
    spec: MetricSpec, attributes: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    return {key: attributes[key] for key in spec.attributes if key in attributes}


def _counter(meter: metrics.Meter, spec: MetricSpec) -> metrics.Counter:
    return meter.create_counter(spec.name, unit=spec.unit, description=spec.brief)


class BusinessEvents:
    """Emitters bound to one logger provider, meter provider and pseudonym key set.

    ``caret_otel.sdk.configure()`` builds one (``handle.events``); the module-level
    ``record_*`` functions of :mod:`caret_otel.sdk` use that one. Every method returns
    the event id it emitted.
    """

    def __init__(
        self,
        pseudonymizer: Pseudonymizer,
        logger_provider: _logs.LoggerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._pseudonymizer = pseudonymizer
        self._logger = _logs.get_logger(SCOPE_NAME, __version__, logger_provider)
        meter = metrics.get_meter(SCOPE_NAME, __version__, meter_provider)
        self._signups = _counter(meter, metric_specs.CARET_SIGNUPS)
        self._plan_changes = _counter(meter, metric_specs.CARET_PLAN_CHANGES)
        self._credits_purchased = _counter(meter, metric_specs.CARET_CREDITS_PURCHASED)
        self._credits_consumed = _counter(meter, metric_specs.CARET_CREDITS_CONSUMED)
        active = metric_specs.CARET_SESSION_ACTIVE
        self._sessions_active = meter.create_up_down_counter(
            active.name, unit=active.unit, description=active.brief
        )
        duration = metric_specs.CARET_SESSION_DURATION
        self._session_duration = meter.create_histogram(
            duration.name,
            unit=duration.unit,
            description=duration.brief,
            explicit_bucket_boundaries_advisory=list(duration.buckets or ()),
        )

    # --- the events ------------------------------------------------------------------------

    def signup(
        self,
        user_id: str,
        plan: str,
        channel: str,
        country: str | None = None,
        *,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """A new account: event ``caret.user.signed_up`` and +1 on ``caret.signups``.

        ``country``: ISO 3166-1 alpha-2 code (anything else is dropped by the privacy
        processor; never derive it from an IP address here).
        """
        values: dict[str, AttributeValue] = {
            attrs.CARET_PLAN_NAME: _require_text("plan", plan),
            attrs.CARET_SIGNUP_CHANNEL: _require_text("channel", channel),
        }
        if country is not None:
            values[attrs.GEO_COUNTRY_ISO_CODE] = _require_text("country", country)
        event_id = self._emit(
            event_specs.CARET_USER_SIGNED_UP, user_id, values, at, idempotency_key
        )
        self._signups.add(1, _metric_attributes(metric_specs.CARET_SIGNUPS, values))
        return event_id

    def plan_change(
        self,
        user_id: str,
        previous: str,
        new: str,
        *,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """A plan change (conversion or downgrade): event and +1 on ``caret.plan.changes``."""
        values: dict[str, AttributeValue] = {
            attrs.CARET_PLAN_PREVIOUS: _require_text("previous", previous),
            attrs.CARET_PLAN_NAME: _require_text("new", new),
        }
        event_id = self._emit(event_specs.CARET_PLAN_CHANGED, user_id, values, at, idempotency_key)
        self._plan_changes.add(1, _metric_attributes(metric_specs.CARET_PLAN_CHANGES, values))
        return event_id

    def credits_purchased(
        self,
        user_id: str,
        amount: float,
        plan: str,
        *,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Credits bought: event and ``amount`` added to ``caret.credits.purchased``."""
        credits = _require_amount("amount", amount)
        values: dict[str, AttributeValue] = {
            attrs.CARET_CREDITS_AMOUNT: credits,
            attrs.CARET_PLAN_NAME: _require_text("plan", plan),
        }
        event_id = self._emit(
            event_specs.CARET_CREDITS_PURCHASED, user_id, values, at, idempotency_key
        )
        self._credits_purchased.add(
            credits, _metric_attributes(metric_specs.CARET_CREDITS_PURCHASED, values)
        )
        return event_id

    def credits_consumed(
        self,
        user_id: str,
        amount: float,
        provider: str,
        model: str,
        plan: str,
        *,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Credits spent on a model call: event and ``amount`` added to
        ``caret.credits.consumed`` by plan, provider and model."""
        credits = _require_amount("amount", amount)
        values: dict[str, AttributeValue] = {
            attrs.CARET_CREDITS_AMOUNT: credits,
            attrs.GEN_AI_PROVIDER_NAME: _require_text("provider", provider),
            attrs.GEN_AI_REQUEST_MODEL: _require_text("model", model),
            attrs.CARET_PLAN_NAME: _require_text("plan", plan),
        }
        event_id = self._emit(
            event_specs.CARET_CREDITS_CONSUMED, user_id, values, at, idempotency_key
        )
        self._credits_consumed.add(
            credits, _metric_attributes(metric_specs.CARET_CREDITS_CONSUMED, values)
        )
        return event_id

    def session_started(
        self,
        user_id: str,
        session_id: str,
        platform: str | None = None,
        plan: str | None = None,
        *,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """A client session began: event and +1 on ``caret.session.active``."""
        values = self._session_values(session_id, platform, plan)
        event_id = self._emit(
            event_specs.CARET_SESSION_STARTED, user_id, values, at, idempotency_key
        )
        self._sessions_active.add(1, _metric_attributes(metric_specs.CARET_SESSION_ACTIVE, values))
        return event_id

    def session_ended(
        self,
        user_id: str,
        session_id: str,
        duration_s: float,
        platform: str | None = None,
        plan: str | None = None,
        *,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """A client session ended: event, -1 on ``caret.session.active`` and its length
        recorded in ``caret.session.duration``."""
        duration = _require_amount("duration_s", duration_s)
        values = self._session_values(session_id, platform, plan)
        values[attrs.CARET_SESSION_DURATION] = duration
        event_id = self._emit(event_specs.CARET_SESSION_ENDED, user_id, values, at, idempotency_key)
        self._sessions_active.add(-1, _metric_attributes(metric_specs.CARET_SESSION_ACTIVE, values))
        self._session_duration.record(
            duration, _metric_attributes(metric_specs.CARET_SESSION_DURATION, values)
        )
        return event_id

    # --- shared ----------------------------------------------------------------------------

    @staticmethod
    def _session_values(
        session_id: str, platform: str | None, plan: str | None
    ) -> dict[str, AttributeValue]:
        values: dict[str, AttributeValue] = {
            attrs.SESSION_ID: _require_text("session_id", session_id)
        }
        if platform is not None:
            values[attrs.CARET_CLIENT_PLATFORM] = _require_text("platform", platform)
        if plan is not None:
            values[attrs.CARET_PLAN_NAME] = _require_text("plan", plan)
        return values

    def event_id(
        self,
        spec: EventSpec,
        user_id: str,
        timestamp_ns: int,
        values: Mapping[str, AttributeValue],
        idempotency_key: str | None = None,
    ) -> str:
        """The deterministic id of an event: a keyed hash of its name, user and either
        the caller's idempotency key or, without one, its timestamp and values."""
        identity: dict[str, object] = {"event": spec.name, "user": user_id}
        if idempotency_key is not None:
            identity["idempotency_key"] = idempotency_key
        else:
            identity |= {"time_unix_nano": timestamp_ns, "values": dict(values)}
        canonical = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
        return self._pseudonymizer.keyed_digest(canonical)[:EVENT_ID_HEX_LENGTH]

    def _emit(
        self,
        spec: EventSpec,
        user_id: str,
        values: Mapping[str, AttributeValue],
        at: datetime | None,
        idempotency_key: str | None,
    ) -> str:
        _require_text("user_id", user_id)
        if idempotency_key is not None:
            _require_text("idempotency_key", idempotency_key)
        timestamp_ns = _timestamp_ns(at)
        event_id = self.event_id(spec, user_id, timestamp_ns, values, idempotency_key)
        attributes: dict[str, AttributeValue] = {
            attrs.CARET_EVENT_ID: event_id,
            attrs.CARET_EVENT_CLIENT_TYPE: spec.client_event or spec.name,
            attrs.ENDUSER_PSEUDO_ID: user_id,
            **values,
        }
        self._logger.emit(
            timestamp=timestamp_ns,
            severity_number=_logs.SeverityNumber.INFO,
            attributes=attributes,
            event_name=spec.name,
        )
        return event_id
