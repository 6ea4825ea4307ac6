"""What the privacy engine did, as counts and key names only (never values)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from caret_otel.processors.privacy.redaction import redact_text

# Why an attribute (or body entry) was dropped.
UNKNOWN: Final = "unknown"
"""The key is not in the registry (fail closed)."""
FORBIDDEN: Final = "forbidden"
"""The registry says the key never leaves the processor."""
NOT_METRIC: Final = "not_metric"
"""The key may not label a metric (high cardinality or identifying)."""
TYPE: Final = "type"
"""The value's type is not the registry's type for the key."""
INVALID: Final = "invalid"
"""A coarse value that is not one of its allowed codes (e.g. not an ISO country)."""
EMPTY: Final = "empty"
"""An identifier that is empty or null, which would merge everybody into one pseudonym."""
LIMIT: Final = "limit"
"""More attributes than the configured limit; the rest are dropped."""
DEPTH: Final = "depth"
"""A log body nested deeper than the configured limit."""
SECRET_KEY: Final = "secret_key"  # noqa: S105 - a reason name, not a secret
"""A log-body map entry whose key names a secret (password, token, api_key, ...)."""
NOT_IN_EVENT: Final = "not_in_event"
"""A client property the registry does not declare for that event."""
DUPLICATE: Final = "duplicate"
"""A second client property mapping to an attribute that is already set."""
SERVER_SET: Final = "server_set"
"""A client property naming an attribute only the server sets (ids, geo, feature)."""
NOT_COLLECTED: Final = "not_collected"
"""A client property the registry declares as deliberately not collected for the event."""
COUNTED_ELSEWHERE: Final = "counted_elsewhere"
"""Tokens/cost of a turn whose task reports them in task.tokens (counted once there)."""
SHAPE: Final = "shape"
"""A public string whose value does not match the registry's shape for the key, or in
which free-text redaction still finds something (a metric label becomes ``other``)."""
CONTROL: Final = "control"
"""A value holding NUL or another C0 control character."""
REASONS: Final[tuple[str, ...]] = (
    UNKNOWN,
    SHAPE,
    CONTROL,
    FORBIDDEN,
    NOT_METRIC,
    TYPE,
    INVALID,
    EMPTY,
    LIMIT,
    DEPTH,
    SECRET_KEY,
    NOT_IN_EVENT,
    DUPLICATE,
    SERVER_SET,
    NOT_COLLECTED,
    COUNTED_ELSEWHERE,
)

_MAX_REPORTED_KEY = 64


@lru_cache(maxsize=4096)  # unknown keys repeat in every event of a client version
def reportable_key(key: str) -> str:
    """A key name safe to report: unknown keys are caller-chosen text, so long ones
    are cut and any secret inside them is redacted like a value would be."""
    # Redact before cutting: a cut can split a secret so that it no longer looks like one.
    shown = redact_text(key[: _MAX_REPORTED_KEY * 8])[0]
    return shown if len(shown) <= _MAX_REPORTED_KEY else shown[:_MAX_REPORTED_KEY] + "..."


@dataclass
class ScrubReport:
    """Counts of what was dropped (by key and reason), pseudonymised and redacted."""

    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)
    pseudonymised: Counter[str] = field(default_factory=Counter)
    redacted: Counter[str] = field(default_factory=Counter)
    """Redactions by kind (email, ipv4, ...; see ``redaction.KINDS``)."""
    truncated: Counter[str] = field(default_factory=Counter)
    """Values cut to the configured maximum length, by key."""

    def drop(self, key: str, reason: str) -> None:
        self.dropped[(key, reason)] += 1

    def merge(self, other: ScrubReport) -> None:
        self.dropped.update(other.dropped)
        self.pseudonymised.update(other.pseudonymised)
        self.redacted.update(other.redacted)
        self.truncated.update(other.truncated)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def dropped_by_reason(self) -> Counter[str]:
        by_reason: Counter[str] = Counter()
        for (_, reason), count in self.dropped.items():
            by_reason[reason] += count
        return by_reason

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (for ``--explain`` and logs), sorted for stable output."""
        return {
            "dropped": [
                {"key": key, "reason": reason, "count": count}
                for (key, reason), count in sorted(self.dropped.items())
            ],
            "pseudonymised": dict(sorted(self.pseudonymised.items())),
            "redacted": dict(sorted(self.redacted.items())),
            "truncated": dict(sorted(self.truncated.items())),
        }
