"""The pure-Python twin of ``_attribute_fast_paths.pyx`` (used when the extension is not
compiled). Same decisions, same results; see that file for why it exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

FAST_TEXT: Final = 0  # non-empty text without NUL -> row[index]
FAST_EXTRA_TEXT: Final = 1  # non-empty text without NUL -> extra[key]
FAST_CHECKED: Final = 2  # non-empty text that accepts(text) -> row[index]
FAST_INT: Final = 3  # non-zero int -> row[index]
FAST_DOUBLE: Final = 4  # non-zero finite float -> row[index]
FAST_EXTRA_DOUBLE: Final = 5  # non-zero finite float -> extra[key]
FAST_LATENCY: Final = 6  # non-zero finite float -> latency.append((index, key, value))


def place_fast(
    attributes: list[Any],
    start: int,
    fast: dict[str, tuple[int, int, Callable[[str], bool] | None]],
    row: list[Any],
    extra: dict[str, Any],
    latency: list[tuple[int, str, float]],
) -> int:
    """Place ``attributes[start:]`` (flat: ``[key, value, ...]``) while each takes a fast
    path; the index of the first key that does not (``len(attributes)`` when all did)."""
    i = start
    n = len(attributes)
    while i + 1 < n:
        key = attributes[i]
        value = attributes[i + 1]
        entry = fast.get(key)
        if entry is None:
            return i
        mode, index, accepts = entry
        if mode <= FAST_CHECKED:
            if type(value) is not str or not value:
                return i
            if mode == FAST_CHECKED:
                if accepts is None or not accepts(value):
                    return i
                row[index] = value
            elif "\x00" in value:
                return i
            elif mode == FAST_TEXT:
                row[index] = value
            else:
                extra[key] = value
        elif mode == FAST_INT:
            if type(value) is not int or not value:
                return i
            row[index] = value
        else:
            if type(value) is not float or value == 0.0 or not math.isfinite(value):
                return i
            if mode == FAST_DOUBLE:
                row[index] = value
            elif mode == FAST_EXTRA_DOUBLE:
                extra[key] = value
            else:
                latency.append((index, key, value))
        i += 2
    return i
