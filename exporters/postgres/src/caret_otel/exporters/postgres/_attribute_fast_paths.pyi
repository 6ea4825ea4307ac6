# Types of the compiled fast paths in _attribute_fast_paths.pyx.
from collections.abc import Callable
from typing import Any, Final

FAST_TEXT: Final[int]
FAST_EXTRA_TEXT: Final[int]
FAST_CHECKED: Final[int]
FAST_INT: Final[int]
FAST_DOUBLE: Final[int]
FAST_EXTRA_DOUBLE: Final[int]
FAST_LATENCY: Final[int]

def place_fast(
    attributes: list[Any],
    start: int,
    fast: dict[str, tuple[int, int, Callable[[str], bool] | None]],
    row: list[Any],
    extra: dict[str, Any],
    latency: list[tuple[int, str, float]],
) -> int: ...
