# cython: language_level=3, wraparound=False, cdivision=True
"""Read the parts of an OTLP ``ExportLogsServiceRequest`` the business exporter stores,
straight from its protobuf bytes.

Why this exists: with the upb protobuf runtime, parsing a request is fast, but every
field read from Python builds wrapper objects; reading the ~16 attributes of a business
event that way cost about 7 µs per record, a third of the exporter's CPU per stored row
(see docs/benchmarks.md). This scanner walks the wire format once, in C, and hands back
plain Python values.

It is deliberately narrow and never the only judge of a request:

* it reads ``resource_logs`` → ``scope_logs`` → ``log_records`` and, per record,
  ``time_unix_nano``, ``observed_time_unix_nano``, ``attributes`` and ``event_name``;
  every other field is skipped (its length checked, its content not);
* an attribute whose value is not a single string, bool, int or double (an array, a
  map, bytes, an empty value, a field it does not know, or a repeated field that
  protobuf would merge) marks its record for the general path: the caller parses that
  record's bytes with upb, so such records get exactly upb's semantics;
* anything malformed, or a field it reads arriving with another wire type, raises
  ``ValueError``; the caller then parses the whole body with upb, which either refuses
  it (HTTP 400) or decodes it (the general path).

Bounds are checked on every read (explicitly, and by Cython's memoryview bounds checks
as a second line of defence): the input comes from the network.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

# Wire types (https://protobuf.dev/programming-guides/encoding/).
cdef enum:
    VARINT = 0
    I64 = 1
    LEN = 2
    I32 = 5

# Field numbers, from opentelemetry/proto/{collector/logs,logs,common}/v1/*.proto.
cdef enum:
    REQUEST_RESOURCE_LOGS = 1
    RESOURCE_LOGS_SCOPE_LOGS = 2
    SCOPE_LOGS_LOG_RECORDS = 2
    RECORD_TIME_UNIX_NANO = 1
    RECORD_ATTRIBUTES = 6
    RECORD_OBSERVED_TIME_UNIX_NANO = 11
    RECORD_EVENT_NAME = 12
    KV_KEY = 1
    KV_VALUE = 2
    ANY_STRING = 1
    ANY_BOOL = 2
    ANY_INT = 3
    ANY_DOUBLE = 4
    MAX_FIELD_NUMBER = 536870911  # 2**29 - 1


class _Malformed(ValueError):
    pass


cdef class _Reader:
    """A cursor over ``data[pos:end]``."""

    cdef const unsigned char[:] data
    cdef Py_ssize_t pos
    cdef Py_ssize_t end

    def __cinit__(self, const unsigned char[:] data, Py_ssize_t pos, Py_ssize_t end):
        self.data = data
        self.pos = pos
        self.end = end

    cdef inline uint64_t varint(self) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t result = 0
        cdef int shift = 0
        cdef unsigned char byte
        while True:
            if self.pos >= self.end:
                raise _Malformed("truncated varint")
            if shift >= 64:
                raise _Malformed("varint longer than 10 bytes")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (<uint64_t>(byte & 0x7F)) << shift
            if byte < 0x80:
                return result
            shift += 7

    cdef inline int field(self, int* wire_type) except -1:
        """Read a tag: its field number, and its wire type into ``wire_type``."""
        cdef uint64_t tag = self.varint()
        if tag >> 3 == 0 or tag >> 3 > MAX_FIELD_NUMBER:
            raise _Malformed("invalid field number")  # as protobuf refuses it
        wire_type[0] = <int>(tag & 7)
        return <int>(tag >> 3)

    cdef inline uint64_t fixed64(self) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t result = 0
        cdef int i
        if self.end - self.pos < 8:
            raise _Malformed("truncated fixed64")
        for i in range(8):  # little-endian, whatever the host's byte order
            result |= (<uint64_t>self.data[self.pos + i]) << (8 * i)
        self.pos += 8
        return result

    cdef inline Py_ssize_t length(self) except -1:
        """Read a LEN prefix; the payload is data[pos:pos+n] and is then skipped."""
        cdef uint64_t n = self.varint()
        if n > <uint64_t>(self.end - self.pos):
            raise _Malformed("length-delimited field runs past its message")
        return <Py_ssize_t>n

    cdef inline int skip(self, int wire_type) except -1:
        if wire_type == VARINT:
            self.varint()
        elif wire_type == I64:
            if self.end - self.pos < 8:
                raise _Malformed("truncated fixed64")
            self.pos += 8
        elif wire_type == LEN:
            self.pos += self.length()
        elif wire_type == I32:
            if self.end - self.pos < 4:
                raise _Malformed("truncated fixed32")
            self.pos += 4
        else:  # groups (3, 4) are not used by OTLP; 6 and 7 do not exist
            raise _Malformed(f"unsupported wire type {wire_type}")
        return 0

    cdef inline str text(self, Py_ssize_t n):
        """UTF-8 text of the next n bytes (strict, as protobuf's proto3 strings)."""
        cdef Py_ssize_t start = self.pos
        self.pos += n
        if n == 0:
            return ""
        return (<const char*>&self.data[start])[:n].decode("utf-8", "strict")


cdef inline int _expect(int wire_type, int expected) except -1:
    if wire_type != expected:
        raise _Malformed(f"wire type {wire_type} where {expected} was expected")
    return 0


cdef object _any_value(_Reader r, Py_ssize_t end, list attributes, str key):
    """Append key and value for a scalar AnyValue in data[r.pos:end]; False when the
    value needs the general path."""
    cdef int field, wire_type, seen = 0
    cdef uint64_t bits
    cdef double real
    cdef object value = None
    cdef Py_ssize_t n
    while r.pos < end:
        field = r.field(&wire_type)
        seen += 1
        if field == ANY_STRING:
            _expect(wire_type, LEN)
            n = r.length()
            value = r.text(n)
        elif field == ANY_BOOL:
            _expect(wire_type, VARINT)
            value = r.varint() != 0
        elif field == ANY_INT:
            _expect(wire_type, VARINT)
            value = <int64_t>r.varint()  # two's complement, as int64
        elif field == ANY_DOUBLE:
            _expect(wire_type, I64)
            bits = r.fixed64()
            memcpy(&real, &bits, 8)
            value = real
        else:  # array, kvlist, bytes, or a field newer than this scanner
            r.skip(wire_type)
            seen += 1
    if r.pos != end:
        raise _Malformed("AnyValue runs past its KeyValue")
    if seen != 1:  # empty, or several members (protobuf keeps the last one)
        return False
    # Flat [key, value, key, value, ...]: one pair tuple per attribute would be ~16
    # GC-tracked objects per record, and the collections they trigger cost more than
    # the scan itself.
    attributes.append(key)
    attributes.append(value)
    return True


cdef object _key_value(_Reader r, Py_ssize_t end, list attributes):
    """Append one attribute from a KeyValue in data[r.pos:end]; False when it needs the
    general path."""
    cdef int field, wire_type
    cdef str key = ""
    cdef Py_ssize_t value_start = -1, value_end = 0, n
    cdef int keys = 0, values = 0, others = 0
    while r.pos < end:
        field = r.field(&wire_type)
        if field == KV_KEY:
            _expect(wire_type, LEN)
            key = r.text(r.length())
            keys += 1
        elif field == KV_VALUE:
            _expect(wire_type, LEN)
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


cdef tuple _log_record(_Reader r, Py_ssize_t end):
    """(event_name, time_unix_nano, observed_time_unix_nano, attributes or None, start,
    end) of the LogRecord in data[r.pos:end]."""
    cdef Py_ssize_t start = r.pos, n
    cdef int field, wire_type
    cdef str name = ""
    cdef uint64_t time_unix_nano = 0, observed = 0
    cdef list attributes = []
    cdef bint general = False
    while r.pos < end:
        field = r.field(&wire_type)
        if field == RECORD_ATTRIBUTES:
            _expect(wire_type, LEN)
            n = r.length()
            if general:
                r.pos += n
            elif not _key_value(r, r.pos + n, attributes):
                general = True
        elif field == RECORD_TIME_UNIX_NANO:
            _expect(wire_type, I64)
            time_unix_nano = r.fixed64()
        elif field == RECORD_OBSERVED_TIME_UNIX_NANO:
            _expect(wire_type, I64)
            observed = r.fixed64()
        elif field == RECORD_EVENT_NAME:
            _expect(wire_type, LEN)
            name = r.text(r.length())
        else:
            r.skip(wire_type)
    if r.pos != end:
        raise _Malformed("LogRecord runs past its ScopeLogs")
    return (name, time_unix_nano, observed, None if general else attributes, start, end)


cdef int _repeated(
    _Reader r, Py_ssize_t end, int wanted, int depth, list records
) except -1:
    """Walk data[r.pos:end] (a request, ResourceLogs or ScopeLogs): descend into field
    ``wanted``, skip everything else."""
    cdef int field, wire_type
    cdef Py_ssize_t n, inner_end
    while r.pos < end:
        field = r.field(&wire_type)
        if field == wanted:
            _expect(wire_type, LEN)
            n = r.length()
            inner_end = r.pos + n
            if depth == 0:
                _repeated(r, inner_end, RESOURCE_LOGS_SCOPE_LOGS, 1, records)
            elif depth == 1:
                _repeated(r, inner_end, SCOPE_LOGS_LOG_RECORDS, 2, records)
            else:
                records.append(_log_record(r, inner_end))
            r.pos = inner_end
        else:
            r.skip(wire_type)
    if r.pos != end:
        raise _Malformed("field runs past its message")
    return 0


def scan_log_records(data):
    """The log records of a serialized ``ExportLogsServiceRequest``, in order.

    Each is ``(event_name, time_unix_nano, observed_time_unix_nano, attributes, start,
    end)``: ``attributes`` is a flat list ``[key, value, key, value, ...]`` with str,
    bool, int or float values, or None when the record must take the general path (parse
    ``data[start:end]`` as a ``LogRecord``). Raises ``ValueError`` for bytes this
    scanner does not accept; the caller then parses them with protobuf.
    """
    cdef const unsigned char[:] view = data
    cdef _Reader reader = _Reader(view, 0, view.shape[0])
    cdef list records = []
    _repeated(reader, reader.end, REQUEST_RESOURCE_LOGS, 0, records)
    return records
