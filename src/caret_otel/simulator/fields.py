"""The client's field names, looked up in the privacy policy instead of typed by hand.

The Caret client sends Cline's ``properties`` keys such as ``apiProvider`` or ``tokensIn``;
the registry lists, for every attribute, the client keys that feed it. The simulator
builds its events from registry attributes and asks this module for the client key,
so a renamed key in the registry renames it here too.
"""

from __future__ import annotations

import functools
from typing import Final

from caret_otel.core.errors import CaretOtelError
from caret_otel.semconv.events import PROPERTY_SCALES
from caret_otel.semconv.policy import load_policy

FORBIDDEN: Final = "forbidden"


class UnknownClientFieldError(CaretOtelError, LookupError):
    """The registry has no client key for an attribute the simulator wants to send."""


@functools.cache
def _keys_by_attribute() -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for key, attribute in load_policy().client_properties.items():
        found.setdefault(attribute, []).append(key)
    return {attribute: tuple(keys) for attribute, keys in found.items()}


_REAL_TASK_ID: Final = "ulid"
"""The real client's task id key (Cline's 26-character ULID)."""


def property_key(attribute: str) -> str:
    """The ``properties`` key the real client (Cline/Caret) uses for ``attribute``.

    The task id is ``ulid``; otherwise the first camelCase key wins (Cline's style:
    ``apiProvider``, ``tokensIn``, ``cacheReadTokens``, ``totalCost``), else the first
    snake_case key (the telemetry plan's style: ``context_size``), else the first listed
    one.
    """
    keys = _keys_by_attribute().get(attribute)
    if not keys:
        raise UnknownClientFieldError(f"the registry lists no client property for {attribute}")
    if _REAL_TASK_ID in keys:
        return _REAL_TASK_ID
    camel = next((key for key in keys if key != key.lower() and key in _UNSCALED), None)
    return camel or next((key for key in keys if "_" in key), keys[0])


_UNSCALED: Final = frozenset(
    key for key in load_policy().client_properties if key not in PROPERTY_SCALES
)
"""Keys sent in the registry's unit (the simulator's values are in seconds)."""


@functools.cache
def client_info_keys() -> dict[str, str]:
    """Attribute -> ``client_info`` field (``version``, ``platform``, ``language``)."""
    return {attribute: field for field, attribute in load_policy().client_info.items()}


def client_info_key(attribute: str) -> str:
    try:
        return client_info_keys()[attribute]
    except KeyError:
        raise UnknownClientFieldError(
            f"the registry lists no client_info field for {attribute}"
        ) from None


@functools.cache
def forbidden_property_keys() -> tuple[str, ...]:
    """Every client key whose attribute is forbidden (prompts, paths, e-mails, ...)."""
    policy = load_policy()
    return tuple(
        sorted(
            key
            for key, attribute in policy.client_properties.items()
            if policy.attributes[attribute].privacy == FORBIDDEN
        )
    )
