"""OTLP ``AnyValue``/``KeyValue`` to plain Python values, and the shared time helpers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from caret_otel.processors.otlp_values import any_to_python, attributes_to_dict

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def any_value(value: AnyValue) -> JsonValue:
    """The Python value of an ``AnyValue`` (bytes become base64 text, as in OTLP/JSON)."""
    return cast(JsonValue, any_to_python(value, as_json=True))


def key_values(pairs: Iterable[KeyValue]) -> dict[str, JsonValue]:
    return cast(dict[str, JsonValue], attributes_to_dict(pairs, as_json=True))


def unix_nano(ts: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact: no float rounding)."""
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def time_from_unix_nano(nanos: int) -> datetime:
    """UTC datetime of a ``*_unix_nano`` field (PostgreSQL keeps microseconds)."""
    # Positional seconds and microseconds: ~25 % cheaper than ``microseconds=`` alone,
    # which matters once per stored record.
    return EPOCH + timedelta(0, nanos // 1_000_000_000, nanos // 1000 % 1_000_000)


def contains_nul(value: JsonValue) -> bool:
    """PostgreSQL text and jsonb cannot hold U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    if isinstance(value, dict):
        return any("\x00" in k or contains_nul(v) for k, v in value.items())
    return False
