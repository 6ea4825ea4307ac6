"""OTLP log records (business events) to ``raw.events`` rows.

A record becomes one row: typed columns for the dimensions and measures the rollups use,
every other registry attribute in ``attrs``. A record with an assigned country code but
no continent (server-side events send the country only) gets the country's continent.

The exporter is the last stop before PostgreSQL, so it applies the privacy policy once
more (fail closed): attributes that are not in the registry or are forbidden are
dropped, coarse values that are not coarse are dropped, and a record whose pseudonymous
attribute is not a pseudonym is refused rather than stored with a raw identifier.

Records are refused one by one (OTLP partial success), never silently: each refusal has
a reason (a label of the ``caret_exporter_rejected_records_total`` metric) and the
first few messages go back to the sender.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, lru_cache
from types import ModuleType
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.otlp.values import (
    JsonValue,
    any_value,
    contains_nul,
    time_from_unix_nano,
    unix_nano,
)
from caret_otel.processors.privacy import pseudonyms
from caret_otel.processors.privacy.geo import continent_of
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.policy import Policy, load_policy

from . import fast_paths
from .fast_paths import (
    FAST_CHECKED,
    FAST_DOUBLE,
    FAST_EXTRA_DOUBLE,
    FAST_EXTRA_TEXT,
    FAST_INT,
    FAST_LATENCY,
    FAST_TEXT,
)

EVENT_COLUMNS: Final = (
    "event_id",
    "event_ts",
    "event_name",
    "user_pseudonym",
    "session_id",
    "plan",
    "country",
    "continent",
    "provider",
    "model",
    "feature",
    "feature_action",
    "language",
    "client_version",
    "platform",
    "tokens_in",
    "tokens_out",
    "tokens_cache_read",
    "tokens_cache_write",
    "credits",
    "latency_s",
    "error_type",
    "attrs",
)
_INDEX: Final = {name: i for i, name in enumerate(EVENT_COLUMNS)}

# Attribute -> column, by the column's type. Values of another type stay in ``attrs``.
TEXT_COLUMNS: Final = {
    attrs.ENDUSER_PSEUDO_ID: "user_pseudonym",
    attrs.SESSION_ID: "session_id",
    attrs.CARET_PLAN_NAME: "plan",
    attrs.GEO_COUNTRY_ISO_CODE: "country",
    attrs.GEO_CONTINENT_CODE: "continent",
    attrs.GEN_AI_PROVIDER_NAME: "provider",
    attrs.GEN_AI_REQUEST_MODEL: "model",
    attrs.CARET_FEATURE_NAME: "feature",
    attrs.CARET_FEATURE_ACTION: "feature_action",
    attrs.CARET_CLIENT_LANGUAGE: "language",
    attrs.CARET_CLIENT_VERSION: "client_version",
    attrs.CARET_CLIENT_PLATFORM: "platform",
    attrs.ERROR_TYPE: "error_type",
}
INTEGER_COLUMNS: Final = {
    attrs.GEN_AI_USAGE_INPUT_TOKENS: "tokens_in",
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: "tokens_out",
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: "tokens_cache_read",
    attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: "tokens_cache_write",
}
NUMBER_COLUMNS: Final = {
    attrs.CARET_CREDITS_AMOUNT: "credits",
}
# latency_s: the provider call's duration, else the task's (one of them per event).
LATENCY_ATTRIBUTES: Final = (attrs.CARET_API_DURATION, attrs.CARET_TASK_DURATION)

BUSINESS_EVENTS: Final = {spec.name: spec for spec in events.ALL if spec.business}
# The same user and session pseudonyms recur in every batch: remember the verdicts.
_is_pseudonym: Final = lru_cache(maxsize=1 << 16)(pseudonyms.is_pseudonym)

_COARSE_PATTERNS: Final = {
    "country_code": re.compile(r"^[A-Z]{2}$"),
    "continent_code": re.compile(r"^(AF|AN|AS|EU|NA|OC|SA)$"),
}
# Refusal reasons (label values of the rejected-records metric).
UNKNOWN_EVENT: Final = "unknown_event"
NO_TIMESTAMP: Final = "no_timestamp"
OUTSIDE_WINDOW: Final = "outside_retention_window"
NOT_PSEUDONYMIZED: Final = "not_pseudonymized"
INVALID_VALUE: Final = "invalid_value"
MAX_MESSAGES: Final = 5


@dataclass(frozen=True)
class AcceptWindow:
    """Event times the raw tier can hold: from the start of the oldest retained UTC day
    to a little after now (client clocks run ahead).

    An older event would land in a partition the retention job has dropped (or is about
    to), and it could no longer be deduplicated against its first delivery.
    """

    earliest: datetime
    latest: datetime

    @classmethod
    def at(
        cls, now: datetime, raw_days: int, future_skew: timedelta = timedelta(days=1)
    ) -> AcceptWindow:
        first_day = (now - timedelta(days=raw_days)).date()
        earliest = datetime(first_day.year, first_day.month, first_day.day, tzinfo=now.tzinfo)
        return cls(earliest=earliest, latest=now + future_skew)

    def __contains__(self, ts: datetime) -> bool:
        return self.earliest <= ts < self.latest


@dataclass
class Refusals:
    """Records refused so far, by reason, with the first few messages."""

    counts: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)

    def add(self, reason: str, message: str, count: int = 1) -> None:
        self.counts[reason] += count
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(message)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: Refusals) -> None:
        for reason, count in other.counts.items():
            self.counts[reason] += count
        for message in other.messages:
            if len(self.messages) < MAX_MESSAGES:
                self.messages.append(message)

    def summary(self) -> str:
        """One line for the OTLP partial-success ``error_message``."""
        if not self.counts:
            return ""
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
        return f"{self.total} record(s) refused ({reasons}): " + "; ".join(self.messages)


@dataclass
class DecodedEvents:
    rows: list[tuple[Any, ...]]
    refusals: Refusals
    dropped_attributes: Counter[str]
    """Attributes removed by the privacy policy, by reason (unknown, forbidden, not_coarse)."""


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


RecordSource = LogRecord | tuple[bytes, int, int]
"""A log record, or the request body and the bounds of its serialized bytes."""


def fallback_event_id(source: RecordSource) -> str:
    """Deterministic id of a record without ``caret.event.id``: the same record on every
    redelivery gives the same id, whichever way it was decoded."""
    if isinstance(source, tuple):
        body, start, end = source
        source = LogRecord.FromString(body[start:end])
    return "sha256:" + hashlib.sha256(source.SerializeToString(deterministic=True)).hexdigest()


# What the builder does with one attribute key: (action, target, kind, check, pattern).
_DROP_UNKNOWN, _DROP_FORBIDDEN, _EVENT_ID, _COLUMN, _LATENCY, _EXTRA = range(6)
_TEXT, _INTEGER, _NUMBER, _ANY = range(4)
_NO_CHECK, _PSEUDONYM, _COARSE = range(3)
# The registry type: attributes of type string or double take a fast path to ``attrs``.
_UNTYPED, _STRING, _INT, _DOUBLE = range(4)
_REGISTRY_TYPES: Final = {"string": _STRING, "int": _INT, "double": _DOUBLE}
_Plan = tuple[int, int, int, int, re.Pattern[str] | None, int]


def _attribute_plans(policy: Policy) -> dict[str, _Plan]:
    """One dispatch entry per registry attribute, computed once per policy: the hot loop
    does a single dict lookup per attribute."""
    plans: dict[str, _Plan] = {}
    columns = [
        *((key, _INDEX[col], _TEXT) for key, col in TEXT_COLUMNS.items()),
        *((key, _INDEX[col], _INTEGER) for key, col in INTEGER_COLUMNS.items()),
        *((key, _INDEX[col], _NUMBER) for key, col in NUMBER_COLUMNS.items()),
    ]
    targets = {key: (index, kind) for key, index, kind in columns}
    for key, rule in policy.attributes.items():
        check, pattern = _NO_CHECK, None
        expected = _REGISTRY_TYPES.get(rule.type, _UNTYPED)
        if rule.privacy == "pseudonymous":
            check = _PSEUDONYM
        elif rule.privacy == "coarse" and rule.coarse in _COARSE_PATTERNS:
            check, pattern = _COARSE, _COARSE_PATTERNS[rule.coarse]
        if rule.privacy == "forbidden":
            plans[key] = (_DROP_FORBIDDEN, 0, _ANY, _NO_CHECK, None, expected)
        elif key == attrs.CARET_EVENT_ID:
            plans[key] = (_EVENT_ID, 0, _TEXT, check, pattern, expected)
        elif key in targets:
            index, kind = targets[key]
            plans[key] = (_COLUMN, index, kind, check, pattern, expected)
        elif key in LATENCY_ATTRIBUTES:
            index = LATENCY_ATTRIBUTES.index(key)
            plans[key] = (_LATENCY, index, _NUMBER, check, pattern, expected)
        else:
            plans[key] = (_EXTRA, 0, _ANY, check, pattern, expected)
    return plans


@cache
def _coarse_check(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    """Whether a text matches ``pattern``, remembered: the few coarse values (country and
    continent codes) recur in every record, and a cache hit is cheaper than a match."""

    def check(text: str) -> bool:
        return pattern.match(text) is not None

    return lru_cache(maxsize=1 << 12)(check)


# A fast path (see ``place_fast``): (mode, row index, check of a text or None).
FastPath = tuple[int, int, Callable[[str], bool] | None]


def _fast_paths(plans: dict[str, _Plan]) -> dict[str, FastPath]:
    """Attributes whose usual value (the registry's type, non-zero, passing its check)
    is stored without the general path: the table of ``place_fast``."""
    fast: dict[str, FastPath] = {}
    for key, (action, target, kind, check, pattern, expected) in plans.items():
        if action in (_COLUMN, _EVENT_ID) and kind == _TEXT and check == _NO_CHECK:
            fast[key] = (FAST_TEXT, target, None)  # the event id is column 0
        elif action == _COLUMN and kind == _TEXT and check == _PSEUDONYM:
            fast[key] = (FAST_CHECKED, target, _is_pseudonym)
        elif action == _COLUMN and kind == _TEXT and check == _COARSE:
            assert pattern is not None
            fast[key] = (FAST_CHECKED, target, _coarse_check(pattern))
        elif action == _COLUMN and kind == _INTEGER and check == _NO_CHECK:
            fast[key] = (FAST_INT, target, None)
        elif action == _COLUMN and kind == _NUMBER and check == _NO_CHECK:
            fast[key] = (FAST_DOUBLE, target, None)
        elif action == _LATENCY and check == _NO_CHECK:
            fast[key] = (FAST_LATENCY, target, None)
        elif action == _EXTRA and check == _NO_CHECK and expected == _STRING:
            fast[key] = (FAST_EXTRA_TEXT, 0, None)
        elif action == _EXTRA and check == _NO_CHECK and expected == _DOUBLE:
            fast[key] = (FAST_EXTRA_DOUBLE, 0, None)
    return fast


class EventRowBuilder:
    """Turns log records into rows under one privacy policy and accept window."""

    def __init__(
        self,
        window: AcceptWindow,
        policy: Policy | None = None,
        *,
        scanner: ModuleType = fast_paths.scanner,
        placer: ModuleType = fast_paths.placer,
    ) -> None:
        # The compiled scanner and placer, or their pure-Python twins (see fast_paths).
        self._scan_log_records = scanner.scan_log_records
        self._place_fast = placer.place_fast
        self.window = window
        self.policy = policy or load_policy()
        self._plans = _plans_for(self.policy)
        self._fast = _fast_paths(self._plans)
        # The window in record time units: a datetime is built for accepted records only.
        self._earliest_ns = unix_nano(window.earliest)
        self._latest_ns = unix_nano(window.latest)

    def decode(self, request: ExportLogsServiceRequest) -> DecodedEvents:
        """Rows of a decoded request (OTLP/JSON bodies, and protobuf bodies the scanner
        leaves to protobuf)."""
        decoded = DecodedEvents([], Refusals(), Counter())
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    self._add(decoded, record)
        return decoded

    def decode_serialized(self, body: bytes) -> DecodedEvents:
        """Rows of a serialized ``ExportLogsServiceRequest`` (an OTLP/HTTP protobuf body).

        The compiled scanner reads the records' fields without building protobuf
        objects; a record it leaves to protobuf (a value that is not a plain scalar) is
        parsed on its own, and a body it does not accept is parsed whole, so the rows
        are always those :meth:`decode` gives. Raises
        :class:`google.protobuf.message.DecodeError` when the body is not a request.
        """
        try:
            scanned = self._scan_log_records(body)
        except ValueError:
            return self.decode(ExportLogsServiceRequest.FromString(body))
        decoded = DecodedEvents([], Refusals(), Counter())
        row = self.row
        rows, dropped = decoded.rows, decoded.dropped_attributes
        for name, time_unix_nano, observed, attributes, start, end in scanned:
            if attributes is None:
                self._add(decoded, LogRecord.FromString(body[start:end]))
                continue
            try:
                rows.append(
                    row(name, time_unix_nano or observed, attributes, dropped, (body, start, end))
                )
            except _Refused as refused:
                decoded.refusals.add(refused.reason, refused.message)
        return decoded

    def _add(self, decoded: DecodedEvents, record: LogRecord) -> None:
        """Add the row of a protobuf record, or its refusal."""
        try:
            decoded.rows.append(self._record_row(record, decoded.dropped_attributes))
        except _Refused as refused:
            decoded.refusals.add(refused.reason, refused.message)

    def _record_row(self, record: LogRecord, dropped: Counter[str]) -> tuple[Any, ...]:
        attributes = [part for kv in record.attributes for part in (kv.key, any_value(kv.value))]
        nanos = record.time_unix_nano or record.observed_time_unix_nano
        return self.row(record.event_name, nanos, attributes, dropped, record)

    def row(
        self,
        name: str,
        nanos: int,
        attributes: list[Any],
        dropped: Counter[str],
        source: RecordSource,
    ) -> tuple[Any, ...]:
        """The row of one record: ``attributes`` is flat, ``[key, value, ...]``, with
        values as :func:`any_value` gives them; ``source`` is the record (or where its
        bytes are), read only for the id of a record without ``caret.event.id``."""
        spec = BUSINESS_EVENTS.get(name)
        if spec is None:
            raise _Refused(
                UNKNOWN_EVENT,
                f"event_name {name!r} is not a business event of the registry"
                if name
                else "log record has no event_name (only business events are stored)",
            )
        if not nanos:
            raise _Refused(
                NO_TIMESTAMP, f"{name}: neither time_unix_nano nor observed_time_unix_nano is set"
            )
        if not self._earliest_ns <= nanos < self._latest_ns:
            raise _Refused(
                OUTSIDE_WINDOW,
                f"{name}: time {time_from_unix_nano(nanos).isoformat()} is outside the "
                "accepted window "
                f"[{self.window.earliest.isoformat()}, {self.window.latest.isoformat()})",
            )

        event_ts = time_from_unix_nano(nanos)
        row: list[Any] = [None] * len(EVENT_COLUMNS)
        extra: dict[str, JsonValue] = {}
        latency: list[tuple[int, str, float]] = []
        plans = self._plans
        fast = self._fast
        position, end = 0, len(attributes)
        while True:
            # The compiled fast paths take every attribute with its usual value; the
            # first one they leave comes here, then they go on after it (so the order
            # of a repeated key is kept).
            position = self._place_fast(attributes, position, fast, row, extra, latency)
            if position >= end:
                break
            key, value = attributes[position], attributes[position + 1]
            position += 2
            value_type = type(value)
            plan = plans.get(key)
            if plan is None:
                dropped["unknown"] += 1
                continue
            action, target, kind, check, pattern, _ = plan
            if action == _DROP_FORBIDDEN:
                dropped["forbidden"] += 1
                continue
            if value_type is str:
                if "\x00" in value:
                    raise _Refused(
                        INVALID_VALUE, f"{name}: attribute {key} contains a NUL character"
                    )
            elif value_type is not int and value_type is not float and contains_nul(value):
                raise _Refused(INVALID_VALUE, f"{name}: attribute {key} contains a NUL character")
            if check == _PSEUDONYM:
                if not (value_type is str and _is_pseudonym(value)):
                    raise _Refused(
                        NOT_PSEUDONYMIZED,
                        f"attribute {key} is pseudonymous but its value is not a keyed pseudonym "
                        "(the privacy processor did not run on this record)",
                    )
            elif check == _COARSE:
                assert pattern is not None
                if not (value_type is str and pattern.match(value)):
                    dropped["not_coarse"] += 1
                    continue
            if action == _COLUMN:
                if kind == _TEXT and value_type is str:
                    row[target] = value
                    continue
                if kind == _INTEGER and value_type is int:
                    row[target] = value
                    continue
                if kind == _NUMBER and (value_type is float or value_type is int):
                    row[target] = _finite(name, key, value)
                    continue
            elif action == _EVENT_ID:
                if value_type is str and value:
                    row[0] = value
                    continue
            elif action == _LATENCY and (value_type is float or value_type is int):
                latency.append((target, key, _finite(name, key, value)))
                continue
            if value_type is float:
                _finite(name, key, value)
            extra[key] = value  # a value of another type than its column stays here

        if latency:
            latency.sort()
            row[_LATENCY_INDEX] = latency[0][2]
            for _, key, seconds in latency[1:]:
                extra[key] = seconds  # the other duration, if both were sent
        if row[_CONTINENT_INDEX] is None and row[_COUNTRY_INDEX] is not None:
            # Server-side events carry the country only; an unassigned code stays NULL.
            row[_CONTINENT_INDEX] = continent_of(row[_COUNTRY_INDEX])
        if row[_FEATURE_INDEX] is None and spec.feature is not None:
            row[_FEATURE_INDEX] = spec.feature
        if row[_ACTION_INDEX] is None and spec.action is not None:
            row[_ACTION_INDEX] = spec.action

        if not row[0]:
            row[0] = fallback_event_id(source)
        row[1] = event_ts
        row[2] = name
        row[_ATTRS_INDEX] = orjson.dumps(extra).decode() if extra else "{}"
        return tuple(row)


_PLANS: dict[int, tuple[Policy, dict[str, _Plan]]] = {}


def _plans_for(policy: Policy) -> dict[str, _Plan]:
    """The dispatch table of ``policy``, built once per policy object (kept alive here
    so its id cannot be reused)."""
    entry = _PLANS.get(id(policy))
    if entry is None:
        entry = _PLANS[id(policy)] = (policy, _attribute_plans(policy))
    return entry[1]


_LATENCY_INDEX: Final = _INDEX["latency_s"]
_COUNTRY_INDEX: Final = _INDEX["country"]
_CONTINENT_INDEX: Final = _INDEX["continent"]
_FEATURE_INDEX: Final = _INDEX["feature"]
_ACTION_INDEX: Final = _INDEX["feature_action"]
_ATTRS_INDEX: Final = _INDEX["attrs"]
assert EVENT_COLUMNS[:3] == ("event_id", "event_ts", "event_name")


def _finite(event: str, key: str, value: JsonValue) -> float:
    assert isinstance(value, int | float)
    number = float(value)
    if not math.isfinite(number):
        raise _Refused(INVALID_VALUE, f"{event}: attribute {key} is {number}, not a finite number")
    return number
