"""Conversions between OTLP ``AnyValue``/``KeyValue`` messages and plain Python values."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, MutableSequence
from typing import Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


class _Unsupported:
    """An AnyValue this code cannot inspect (a profiles string-table index)."""


UNSUPPORTED: Final = _Unsupported()


def any_to_python(value: AnyValue, *, as_json: bool = False) -> object:
    """str, bool, int, float, bytes, list, dict, None, or ``UNSUPPORTED``.

    With ``as_json=True`` the value is shaped as in OTLP/JSON: bytes become base64 text
    and a value this code cannot inspect becomes None.
    """
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
        return [any_to_python(v, as_json=as_json) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values, as_json=as_json)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii") if as_json else value.bytes_value
    if kind is None or as_json:
        return None
    return UNSUPPORTED


def python_to_any(value: object, out: AnyValue) -> None:
    """Write ``value`` into ``out`` (which must be empty). None leaves it empty."""
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):  # before int: True is an int in Python
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list | tuple):
        array = out.array_value
        array.SetInParent()  # an empty list is an empty array, not an empty value
        for element in value:
            python_to_any(element, array.values.add())
    elif isinstance(value, Mapping):
        kvlist = out.kvlist_value
        kvlist.SetInParent()
        for key, element in value.items():
            kv = kvlist.values.add()
            kv.key = str(key)
            python_to_any(element, kv.value)
    elif value is not None:
        raise TypeError(f"cannot encode {type(value).__name__} as an OTLP AnyValue")


def attributes_to_dict(kvs: Iterable[KeyValue], *, as_json: bool = False) -> dict[str, object]:
    """KeyValue list -> dict (a repeated key keeps its last value, as collectors do);
    ``as_json`` as in ``any_to_python``."""
    return {kv.key: any_to_python(kv.value, as_json=as_json) for kv in kvs}


def replace_attributes(kvs: MutableSequence[KeyValue], values: Mapping[str, object]) -> None:
    """Overwrite a KeyValue list with ``values``."""
    del kvs[:]
    for key, value in values.items():
        kv = KeyValue(key=key)
        python_to_any(value, kv.value)
        kvs.append(kv)
