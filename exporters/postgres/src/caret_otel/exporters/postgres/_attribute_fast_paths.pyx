# cython: language_level=3, wraparound=False
"""The common case of ``EventRowBuilder.row``, compiled: attributes whose value is the
usual one for their key go straight to their place in the row.

Why this exists: a business event has ~16 attributes, and dispatching them one by one
in Python cost about 5 µs per stored row, the largest part of the exporter's CPU after
the scanner took protobuf out (see docs/benchmarks.md). The decisions are not made
here: ``event_rows`` derives the table ``fast`` (attribute key -> ``(mode, index,
accepts)``) from the semantic-conventions policy, and everything this function does not
take - another type, an empty or zero value, a NUL character, a value failing its
check, a key without a fast path - is left, in order, to the general path in Python.
"""

from libc.math cimport isfinite

cdef enum:
    _TEXT = 0          # non-empty text without NUL -> row[index]
    _EXTRA_TEXT = 1    # non-empty text without NUL -> extra[key]
    _CHECKED = 2       # non-empty text that accepts(text) -> row[index]
    _INT = 3           # non-zero int -> row[index]
    _DOUBLE = 4        # non-zero finite float -> row[index]
    _EXTRA_DOUBLE = 5  # non-zero finite float -> extra[key]
    _LATENCY = 6       # non-zero finite float -> latency.append((index, key, value))

FAST_TEXT = _TEXT
FAST_EXTRA_TEXT = _EXTRA_TEXT
FAST_CHECKED = _CHECKED
FAST_INT = _INT
FAST_DOUBLE = _DOUBLE
FAST_EXTRA_DOUBLE = _EXTRA_DOUBLE
FAST_LATENCY = _LATENCY


def place_fast(
    list attributes, Py_ssize_t start, dict fast, list row, dict extra, list latency
):
    """Place ``attributes[start:]`` (flat: ``[key, value, ...]``) while each takes a fast
    path; the index of the first key that does not (``len(attributes)`` when all did).
    """
    cdef Py_ssize_t i = start, n = len(attributes)
    cdef object key, value, shortcut, accepts
    cdef tuple entry
    cdef int mode
    cdef double real
    while i + 1 < n:
        key = attributes[i]
        value = attributes[i + 1]
        shortcut = fast.get(key)
        if shortcut is None:
            return i
        entry = <tuple>shortcut
        mode = entry[0]
        if mode <= _CHECKED:
            if type(value) is not str or not value:
                return i
            if mode == _CHECKED:
                accepts = entry[2]
                if accepts is None or not accepts(value):
                    return i
                row[entry[1]] = value
            elif "\x00" in <str>value:
                return i
            elif mode == _TEXT:
                row[entry[1]] = value
            else:
                extra[key] = value
        elif mode == _INT:
            if type(value) is not int or not value:
                return i
            row[entry[1]] = value
        else:
            if type(value) is not float:
                return i
            real = value
            if real == 0.0 or not isfinite(real):
                return i
            if mode == _DOUBLE:
                row[entry[1]] = value
            elif mode == _EXTRA_DOUBLE:
                extra[key] = value
            else:
                latency.append((entry[1], key, value))
        i += 2
    return i
