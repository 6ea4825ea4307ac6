"""The envelope of ``POST /telemetry/events`` and the per-event checks the gateway owns.

A body is one event object, a JSON array of events, or ``{"events": [...]}``. Shape
problems of the whole body are request errors (400/413/422); problems of one event
are :class:`EventRejection` s that reject that event only. Field-level validation of
an event (required fields, types, event type) is the privacy processor's
(:class:`~caret_otel.processors.privacy.client_events.ClientEventScrubber`); here live the
gateway's limits and the time window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from caret_otel.core.errors import InputError
from caret_otel.otlp.body import parse_json
from caret_otel.processors.privacy.redaction import CONTROL_RE
from caret_otel.processors.privacy.report import reportable_key
from caret_otel.receivers.gateway.errors import RequestError

# Fields of the client event envelope (telemetry-plan §2.1).
PROPERTIES = "properties"
CLIENT_INFO = "client_info"
EVENTS = "events"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_INT64 = (1 << 63) - 1

# Rejection codes (self-metric label values: a fixed set).
NOT_AN_OBJECT = "not_an_object"
TOO_MANY_PROPERTIES = "too_many_properties"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
TIMESTAMP_TOO_OLD = "timestamp_too_old"
BAD_NUMBER = "bad_number"
CONTROL_CHARACTER = "control_character"


class EventRejection(InputError):
    """One event of a batch is refused; the others are still processed."""

    def __init__(self, field: str, reason: str, code: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.code = code


def parse_envelope(body: bytes, max_events: int) -> tuple[list[Any], bool]:
    """The events of a request body and whether it was a batch (array or ``events``)."""
    if not body.strip():
        raise RequestError.bad_request(
            "empty_body", "body is empty; send a JSON event or array", field="body"
        )
    document = parse_json(body)
    events: Any  # declared: the branches below bind a list or whatever the client sent
    if isinstance(document, list):
        events, batch = document, True
    elif isinstance(document, dict) and EVENTS in document:
        events, batch = document[EVENTS], True
        if not isinstance(events, list):
            raise RequestError.unprocessable(
                "'events' must be a JSON array of events", field=EVENTS
            )
    elif isinstance(document, dict):
        events, batch = [document], False
    else:
        raise RequestError.unprocessable(
            'body must be an event object, an array of events, or {"events": [...]}',
            field="body",
        )
    if not events:
        raise RequestError.unprocessable(
            "the request holds no event", field=EVENTS if batch else "body"
        )
    if len(events) > max_events:
        raise RequestError.too_large(
            f"{len(events)} events in one request; at most {max_events} are accepted",
            field=EVENTS,
        )
    return events, batch


def check_limits(
    raw: object, max_properties: int, *, scan_controls: bool = True
) -> Mapping[str, Any]:
    """The event as a mapping, if it is an object within the property limit and holds no
    control character (``scan_controls=False``: the request body was found free of them
    by :func:`body_may_hold_control_characters`).

    Value lengths need no check here: the privacy engine cuts every string to the
    configured maximum (and counts it), before any redaction regex runs on it.
    """
    if not isinstance(raw, dict):
        raise EventRejection("event", "an event must be a JSON object", NOT_AN_OBJECT)
    properties = raw.get(PROPERTIES)
    if isinstance(properties, dict) and len(properties) > max_properties:
        raise EventRejection(
            PROPERTIES,
            f"{len(properties)} properties; at most {max_properties} are accepted",
            TOO_MANY_PROPERTIES,
        )
    client_info = raw.get(CLIENT_INFO)  # counted before anything is converted
    if isinstance(client_info, dict) and len(client_info) > max_properties:
        raise EventRejection(
            CLIENT_INFO,
            f"{len(client_info)} client_info keys; at most {max_properties} are accepted",
            TOO_MANY_PROPERTIES,
        )
    if not scan_controls or not may_hold_control_characters(raw):
        return raw
    field = control_character_field(raw, "")
    if field is not None:
        # PostgreSQL refuses NUL: accepting it would lose the event later, silently.
        raise EventRejection(field, "holds NUL or another control character", CONTROL_CHARACTER)
    return raw


def body_may_hold_control_characters(body: bytes) -> bool:
    """False when no string of the JSON text ``body`` can hold a control character.

    JSON forbids raw C0 characters inside strings (the parse refuses them), so one can
    only arrive escaped (``\\u0000``-``\\u001f`` in either case, ``\\b``, ``\\f``) or as a
    raw DEL. A few substring searches over the whole body spare the per-event check for
    the usual request; an escaped backslash before ``b``/``f``/``u00`` or any other
    ``\\u00`` escape only sends each event to the per-event check.
    """
    if b"\\" not in body:  # no escape at all (the usual body): nothing but DEL to look for
        return b"\x7f" in body
    return b"\\u00" in body or b"\\b" in body or b"\\f" in body or b"\x7f" in body


def may_hold_control_characters(event: Mapping[str, Any]) -> bool:
    """False when no key or string of ``event`` can hold a control character.

    One C-speed serialisation and four substring searches instead of a walk over every
    key and value (the walk cost ~15 % of the gateway's time per event); an escaped
    backslash before a ``b``/``f``/``u00`` only sends the event to the exact walk.
    (orjson writes what ``CONTROL_RE`` finds as ``\\u0000``-``\\u001f``, ``\\b``, ``\\f``
    and DEL as is; the allowed tab, newline and CR as ``\\t``, ``\\n``, ``\\r``.)
    """
    try:
        encoded = orjson.dumps(event)
    except TypeError:  # not serialisable as JSON (an integer beyond 64 bits): walk it
        return True
    return b"\\u00" in encoded or b"\\b" in encoded or b"\\f" in encoded or b"\x7f" in encoded


def control_character_field(value: object, path: str, depth: int = 0) -> str | None:
    """The dotted path of the first key or string holding a C0 control character
    (tab, newline and carriage return allowed), or None."""
    if isinstance(value, str):
        return (path or "event") if CONTROL_RE.search(value) else None
    if depth > _MAX_SCAN_DEPTH:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = reportable_key(str(key))  # a client's key, cut and redacted
            here = f"{path}.{shown}" if path else shown
            if CONTROL_RE.search(str(key)):
                return path or "event"  # the key itself is not echoed
            found = control_character_field(item, here, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = control_character_field(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
    return None


_MAX_SCAN_DEPTH = 16


def unix_nanos(moment: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (no float rounding)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since = moment - _EPOCH  # integer fields: no float rounding (and no timedelta division)
    return ((since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds) * 1000


def check_time_window(time_ns: int, now_ns: int, max_skew_s: float, max_age_days: int) -> None:
    """Reject events from the future (beyond clock skew) or older than raw retention."""
    if time_ns > now_ns + int(max_skew_s * 1e9):
        raise EventRejection(
            "timestamp",
            f"timestamp is more than {max_skew_s:g} s in the future",
            TIMESTAMP_IN_FUTURE,
        )
    if time_ns < now_ns - max_age_days * 86_400 * 1_000_000_000:
        raise EventRejection(
            "timestamp",
            f"timestamp is older than the {max_age_days}-day raw-event retention",
            TIMESTAMP_TOO_OLD,
        )


def check_numbers(attributes: Mapping[str, object]) -> None:
    """Client quantities (tokens, durations, credits, costs) are finite and >= 0.

    Counters cannot go down, and a negative duration or token count is a client bug
    that would corrupt every aggregate built on it. (``type() is`` rather than
    ``isinstance``: bools are not quantities, and this runs for every attribute.)
    """
    for key, value in attributes.items():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value) or value < 0:  # type: ignore[arg-type, operator]
                raise EventRejection(key, "must be a finite number, not negative", BAD_NUMBER)
        elif kind is int:
            if value < 0:  # type: ignore[operator]
                raise EventRejection(key, "must not be negative", BAD_NUMBER)
            if value > _MAX_INT64:  # type: ignore[operator]
                raise EventRejection(key, "is larger than a 64-bit integer", BAD_NUMBER)
