"""The pure-Python twin of ``_log_records_scan.pyx`` (used when the extension is not
compiled: no C compiler at install time). Same input, same output, same errors; about
ten times slower, which is why the compiled one exists. See that file for what is read
and why.
"""

from __future__ import annotations

import struct
from typing import Any, Final

ScannedRecord = tuple[str, int, int, list[Any] | None, int, int]

_VARINT: Final = 0
_I64: Final = 1
_LEN: Final = 2
_I32: Final = 5

_REQUEST_RESOURCE_LOGS: Final = 1
_RESOURCE_LOGS_SCOPE_LOGS: Final = 2
_SCOPE_LOGS_LOG_RECORDS: Final = 2
_RECORD_TIME_UNIX_NANO: Final = 1
_RECORD_ATTRIBUTES: Final = 6
_RECORD_OBSERVED_TIME_UNIX_NANO: Final = 11
_RECORD_EVENT_NAME: Final = 12
_KV_KEY: Final = 1
_KV_VALUE: Final = 2
_ANY_STRING: Final = 1
_ANY_BOOL: Final = 2
_ANY_INT: Final = 3
_ANY_DOUBLE: Final = 4
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1
_unpack_double = struct.Struct("<d").unpack_from


class _Malformed(ValueError):
    pass


class _Reader:
    """A cursor over ``data[pos:end]``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def varint(self) -> int:
        result = 0
        shift = 0
        data = self.data
        while True:
            if self.pos >= self.end:
                raise _Malformed("truncated varint")
            if shift >= 64:
                raise _Malformed("varint longer than 10 bytes")
            byte = data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result & 0xFFFFFFFFFFFFFFFF
            shift += 7

    def field(self) -> tuple[int, int]:
        """Read a tag: (field number, wire type)."""
        tag = self.varint()
        number = tag >> 3
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise _Malformed("invalid field number")  # as protobuf refuses it
        return number, tag & 7

    def fixed64(self) -> int:
        if self.end - self.pos < 8:
            raise _Malformed("truncated fixed64")
        value = int.from_bytes(self.data[self.pos : self.pos + 8], "little")
        self.pos += 8
        return value

    def double(self) -> float:
        if self.end - self.pos < 8:
            raise _Malformed("truncated fixed64")
        (value,) = _unpack_double(self.data, self.pos)
        self.pos += 8
        return float(value)

    def length(self) -> int:
        """Read a LEN prefix; the payload is data[pos:pos+n]."""
        n = self.varint()
        if n > self.end - self.pos:
            raise _Malformed("length-delimited field runs past its message")
        return n

    def skip(self, wire_type: int) -> None:
        if wire_type == _VARINT:
            self.varint()
        elif wire_type == _I64:
            if self.end - self.pos < 8:
                raise _Malformed("truncated fixed64")
            self.pos += 8
        elif wire_type == _LEN:
            n = self.length()  # read first: it moves self.pos past the length prefix
            self.pos += n
        elif wire_type == _I32:
            if self.end - self.pos < 4:
                raise _Malformed("truncated fixed32")
            self.pos += 4
        else:  # groups (3, 4) are not used by OTLP; 6 and 7 do not exist
            raise _Malformed(f"unsupported wire type {wire_type}")

    def text(self, n: int) -> str:
        """UTF-8 text of the next n bytes (strict, as protobuf's proto3 strings)."""
        start = self.pos
        self.pos += n
        return self.data[start : start + n].decode("utf-8", "strict")


def _expect(wire_type: int, expected: int) -> None:
    if wire_type != expected:
        raise _Malformed(f"wire type {wire_type} where {expected} was expected")


def _any_value(r: _Reader, end: int, attributes: list[Any], key: str) -> bool:
    seen = 0
    value: object = None
    while r.pos < end:
        field, wire_type = r.field()
        seen += 1
        if field == _ANY_STRING:
            _expect(wire_type, _LEN)
            value = r.text(r.length())
        elif field == _ANY_BOOL:
            _expect(wire_type, _VARINT)
            value = r.varint() != 0
        elif field == _ANY_INT:
            _expect(wire_type, _VARINT)
            raw = r.varint()
            value = raw - (1 << 64) if raw >= 1 << 63 else raw  # two's complement, int64
        elif field == _ANY_DOUBLE:
            _expect(wire_type, _I64)
            value = r.double()
        else:  # array, kvlist, bytes, or a field newer than this scanner
            r.skip(wire_type)
            seen += 1
    if r.pos != end:
        raise _Malformed("AnyValue runs past its KeyValue")
    if seen != 1:  # empty, or several members (protobuf keeps the last one)
        return False
    attributes.append(key)
    attributes.append(value)
    return True


def _key_value(r: _Reader, end: int, attributes: list[Any]) -> bool:
    key = ""
    value_start = -1
    value_end = 0
    keys = values = others = 0
    while r.pos < end:
        field, wire_type = r.field()
        if field == _KV_KEY:
            _expect(wire_type, _LEN)
            key = r.text(r.length())
            keys += 1
        elif field == _KV_VALUE:
            _expect(wire_type, _LEN)
            n = r.length()
            value_start = r.pos
            value_end = r.pos + n
            r.pos = value_end
            values += 1
        else:
            r.skip(wire_type)
            others += 1
    if r.pos != end:
        raise _Malformed("KeyValue runs past its record")
    if keys > 1 or values != 1 or others:
        return False
    r.pos = value_start
    ok = _any_value(r, value_end, attributes, key)
    r.pos = end
    return ok


def _log_record(r: _Reader, end: int) -> ScannedRecord:
    start = r.pos
    name = ""
    time_unix_nano = observed = 0
    attributes: list[Any] = []
    general = False
    while r.pos < end:
        field, wire_type = r.field()
        if field == _RECORD_ATTRIBUTES:
            _expect(wire_type, _LEN)
            n = r.length()
            if general:
                r.pos += n
            elif not _key_value(r, r.pos + n, attributes):
                general = True
        elif field == _RECORD_TIME_UNIX_NANO:
            _expect(wire_type, _I64)
            time_unix_nano = r.fixed64()
        elif field == _RECORD_OBSERVED_TIME_UNIX_NANO:
            _expect(wire_type, _I64)
            observed = r.fixed64()
        elif field == _RECORD_EVENT_NAME:
            _expect(wire_type, _LEN)
            name = r.text(r.length())
        else:
            r.skip(wire_type)
    if r.pos != end:
        raise _Malformed("LogRecord runs past its ScopeLogs")
    return (name, time_unix_nano, observed, None if general else attributes, start, end)


def _repeated(r: _Reader, end: int, wanted: int, depth: int, records: list[ScannedRecord]) -> None:
    while r.pos < end:
        field, wire_type = r.field()
        if field == wanted:
            _expect(wire_type, _LEN)
            n = r.length()  # read first: it moves r.pos past the length prefix
            inner_end = r.pos + n
            if depth == 0:
                _repeated(r, inner_end, _RESOURCE_LOGS_SCOPE_LOGS, 1, records)
            elif depth == 1:
                _repeated(r, inner_end, _SCOPE_LOGS_LOG_RECORDS, 2, records)
            else:
                records.append(_log_record(r, inner_end))
            r.pos = inner_end
        else:
            r.skip(wire_type)
    if r.pos != end:
        raise _Malformed("field runs past its message")


def scan_log_records(data: bytes) -> list[ScannedRecord]:
    """The log records of a serialized ``ExportLogsServiceRequest``, in order (see
    ``_log_records_scan.pyx``: same tuples, same ``ValueError`` for bytes it refuses)."""
    view = bytes(data)
    reader = _Reader(view, 0, len(view))
    records: list[ScannedRecord] = []
    _repeated(reader, reader.end, _REQUEST_RESOURCE_LOGS, 0, records)
    return records
