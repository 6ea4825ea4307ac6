"""OTLP ``AnyValue``/``KeyValue`` to plain Python values, and the shared time helpers."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def any_value(value: AnyValue) -> JsonValue:
    """The Python value of an ``AnyValue`` (bytes become base64 text, as in OTLP/JSON)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return key_values(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def key_values(pairs: Iterable[KeyValue]) -> dict[str, JsonValue]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def time_from_unix_nano(nanos: int) -> datetime:
    """UTC datetime of a ``*_unix_nano`` field (PostgreSQL keeps microseconds)."""
    return EPOCH + timedelta(microseconds=nanos // 1000)


def contains_nul(value: JsonValue) -> bool:
    """PostgreSQL text and jsonb cannot hold U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    if isinstance(value, dict):
        return any("\x00" in k or contains_nul(v) for k, v in value.items())
    return False
