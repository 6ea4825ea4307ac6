"""Counting an OTLP request's fields *before* decoding it (abuse limits before work).

An 8 KB gzip body can inflate to 8 MB of empty key-values: millions of messages that
take the protobuf parser (which holds the GIL) a second or more to build, and the
privacy pass longer still. :func:`count_protobuf_fields` walks the wire format with the
OTLP schema (taken from the generated descriptors, so it follows the protocol's field
numbers) and stops as soon as the count passes the limit: a bomb costs at most
``limit`` cheap steps, on a worker thread. Packed repeated numbers (histogram buckets)
count one per element. OTLP/JSON is bounded without parsing: every value of a JSON
document is preceded by ``{``, ``[``, ``,`` or ``:`` (or is the document), so counting
those bytes (at C speed) bounds the number of values from above.
"""

from __future__ import annotations

import re
from typing import Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from caret_otel.receivers.gateway.errors import RequestError

_MAX_DEPTH: Final = 64
_PACKED_FIXED: Final = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64,
                                   FieldDescriptor.TYPE_SFIXED64})  # fmt: skip

# Per message type: field number -> child message type (descend) or a packed marker.
_Schema = dict[str, dict[int, str | int]]
_PACKED_8: Final = 8  # packed 8-byte numbers: one element per 8 bytes
_PACKED_VARINT: Final = 1  # packed varints: at most one element per byte


def _schema(*roots: Descriptor) -> _Schema:
    schema: _Schema = {}
    pending = list(roots)
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in schema:
            continue
        fields: dict[int, str | int] = {}
        schema[descriptor.full_name] = fields
        for field in descriptor.fields:
            child = field.message_type
            if field.type == FieldDescriptor.TYPE_MESSAGE and child is not None:
                fields[field.number] = child.full_name
                pending.append(child)
            elif field.is_repeated:
                fields[field.number] = _PACKED_8 if field.type in _PACKED_FIXED else _PACKED_VARINT
    return schema


_ROOTS: Final = {
    "traces": trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR,
    "logs": logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR,
}
_SCHEMA: Final = _schema(*_ROOTS.values())


class _Malformed(Exception):  # internal control flow, never leaves this module
    pass


def too_many_fields(limit: int) -> RequestError:
    return RequestError.too_large(
        f"the OTLP request holds more than {limit} fields (attributes, records, values); "
        "send smaller batches",
        field="body",
    )


def count_protobuf_fields(data: bytes, signal: str, limit: int) -> int:
    """The number of fields of an OTLP protobuf export request, or a 413 once it passes
    ``limit``. A malformed body is counted as far as it parses (the decoder then names
    the problem)."""
    total = 0
    stack: list[tuple[int, int, str, int]] = [(0, len(data), _ROOTS[signal].full_name, 0)]
    try:
        while stack:
            pos, end, kind, depth = stack.pop()
            children = _SCHEMA[kind]
            while pos < end:
                tag = data[pos]
                pos += 1
                if tag & 0x80:
                    tag &= 0x7F
                    shift = 7
                    while True:
                        byte = data[pos]
                        pos += 1
                        tag |= (byte & 0x7F) << shift
                        if not byte & 0x80:
                            break
                        shift += 7
                total += 1
                if total > limit:
                    raise too_many_fields(limit)
                wire = tag & 7
                if wire == 0:
                    while data[pos] & 0x80:
                        pos += 1
                    pos += 1
                elif wire == 2:
                    length = 0
                    shift = 0
                    while True:
                        byte = data[pos]
                        pos += 1
                        length |= (byte & 0x7F) << shift
                        if not byte & 0x80:
                            break
                        shift += 7
                    child = children.get(tag >> 3)
                    if child is not None and length:
                        if isinstance(child, str):
                            if depth < _MAX_DEPTH:
                                stack.append((pos, pos + length, child, depth + 1))
                        else:
                            total += length // child
                            if total > limit:
                                raise too_many_fields(limit)
                    pos += length
                elif wire == 1:
                    pos += 8
                elif wire == 5:
                    pos += 4
                else:
                    raise _Malformed
            if pos > end:
                raise _Malformed
    except (_Malformed, IndexError):
        pass
    return total


_JSON_SEPARATORS: Final = (b"{", b"[", b",", b":")


def count_json_values(data: bytes, limit: int) -> int:
    """An upper bound of the values in a JSON document, or a 413 beyond ``limit``."""
    total = 1 + sum(data.count(separator) for separator in _JSON_SEPARATORS)
    if total > limit:
        raise too_many_fields(limit)
    return total


_JSON_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:]')
_MAX_JSON_DEPTH: Final = 64


def check_json_object_sizes(
    data: bytes, max_keys: int, known_fields: frozenset[str] = frozenset()
) -> None:
    """A 413 when a JSON object has more than ``max_keys`` keys (an event whose
    ``client_info`` holds 200,000 keys), found without parsing. The field is named when
    its key is one of ``known_fields`` (else ``body``: a client's key is never echoed).

    A Python-level walk over the tokens (strings are matched whole, so braces inside
    them do not count): on a worker thread it hands the interpreter to the event loop
    every few milliseconds, where one C-level parse of the same body would hold it for
    the whole parse. It stops at the first object over the limit."""
    counts: list[int] = []  # keys per open object; -1 for an open array
    names: list[bytes] = []
    last_string = key = previous = b""
    for match in _JSON_TOKEN.finditer(data):
        token = match.group()
        first = token[:1]
        if first == b'"':
            last_string = token
        elif first == b":":
            key = last_string
            if counts and counts[-1] >= 0:
                counts[-1] += 1
                if counts[-1] > max_keys:
                    name = names[-1][1:-1].decode("utf-8", "replace")
                    field = name if name in known_fields else "body"
                    raise RequestError.too_large(
                        f"a JSON object ({field}) holds more than {max_keys} keys",
                        field=field,
                    )
        elif first == b"{" or first == b"[":
            counts.append(0 if first == b"{" else -1)
            names.append(key if previous == b":" else b"")
            if len(counts) > _MAX_JSON_DEPTH:
                return  # the parser refuses such depth itself
        elif counts:  # a closing brace or bracket
            counts.pop()
            names.pop()
        previous = first
