"""A/B experiment assignment and exposure for Caret's services (guide: ``docs/experiments.md``).

::

    from caret_otel import sdk
    from caret_otel.sdk import experiments

    handle = sdk.configure(service_name="caret-router")
    definitions = experiments.parse_payload(payload)   # GET /telemetry/experiments
    user = experiments.UserContext(user_id="user-hash", plan="pro", country="KR")
    variant = experiments.assign(definitions["default-model-sonnet"], user)
    if variant is not None:
        experiments.record_exposure(definitions["default-model-sonnet"], variant, user.user_id)

Assignment is GrowthBook's (hash version 2): ``fnv1a32(str(fnv1a32(seed + id))) % 10000 /
10000`` picks a point in [0, 1), the variants' weights (times the coverage) cut [0, 1) into
ranges, and the range holding the point is the variant. A GrowthBook SDK (JavaScript in
the Caret client, Python here) given the same definition - the gateway serves them in
GrowthBook's shape - puts every user in the same variant; ``tests/unit/experiments``
compares with the ``growthbook`` package for 10,000 users. The hash is written here
instead of importing ``growthbook`` so that the SDK needs nothing beyond what it had
(that package brings aiohttp and cryptography for its network client).

Targeting uses GrowthBook conditions with the operators the definitions produce
(``$in`` on host app, plan, language and country; ``$vgte``/``$vlt`` on the client
version, with GrowthBook's version padding); a user missing a targeted attribute is not
in the experiment, as in GrowthBook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Final

from opentelemetry import _logs
from opentelemetry.util.types import AttributeValue

from caret_otel.core.errors import InputError
from caret_otel.core.version import __version__
from caret_otel.sdk.configure import SdkHandle, current
from caret_otel.sdk.events import _timestamp_ns
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs

SCOPE_NAME: Final = "caret_otel.sdk.experiments"
HASH_VERSION: Final = 2
HASH_ATTRIBUTE: Final = "id"
# The context attribute names of GrowthBook conditions (the client uses the same ones).
CLIENT_VERSION: Final = "clientVersion"
HOST_APP: Final = "hostApp"
PLAN: Final = "plan"
LANGUAGE: Final = "language"
COUNTRY: Final = "country"
SUPPORTED_OPERATORS: Final = frozenset({"$in", "$vgte", "$vlt"})

_FNV_OFFSET: Final = 0x811C9DC5
_FNV_PRIME: Final = 0x01000193


class ExperimentDefinitionError(InputError):
    """A served experiment definition is unusable; the message names the field."""


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits, over UTF-16 code units (the JS SDK's ``charCodeAt`` loop)."""
    value = _FNV_OFFSET
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        value = ((value ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def bucket(seed: str, hash_value: str) -> float:
    """GrowthBook's hash version 2: a point in [0, 1) with 4 decimals."""
    return (fnv1a32(str(fnv1a32(seed + hash_value))) % 10000) / 10000


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """Each variant's [start, end) on [0, 1), as GrowthBook's ``getBucketRanges``."""
    coverage = min(max(coverage, 0.0), 1.0)
    total = sum(weights)
    if len(weights) == 0 or not 0.99 <= total <= 1.01 or any(w < 0 for w in weights):
        weights = [1 / len(weights)] * len(weights) if weights else []
    ranges: list[tuple[float, float]] = []
    cumulative = 0.0
    for weight in weights:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


_VERSION_STRIP: Final = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT: Final = re.compile(r"[-.]")


@lru_cache(maxsize=512)
def padded_version(version: str) -> str:
    """GrowthBook's ``paddedVersionString``: versions compare as plain strings."""
    parts = _VERSION_SPLIT.split(_VERSION_STRIP.sub("", version or "0"))
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5, " ") if p.isdigit() else p for p in parts)


@dataclass(frozen=True)
class UserContext:
    """Who is asking: the id the client hashes into ``user_id_hash`` and the targeting
    attributes (``None`` = unknown: a targeted experiment then leaves the user out)."""

    user_id: str
    client_version: str | None = None
    host_app: str | None = None
    plan: str | None = None
    language: str | None = None
    country: str | None = None

    def attributes(self) -> dict[str, str]:
        """The user as a GrowthBook attribute map (what the client passes its SDK)."""
        values = {
            HASH_ATTRIBUTE: self.user_id,
            CLIENT_VERSION: self.client_version,
            HOST_APP: self.host_app,
            PLAN: self.plan,
            LANGUAGE: self.language,
            COUNTRY: self.country,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class ServedExperiment:
    """One experiment as the gateway serves it (GrowthBook's ``Experiment`` fields)."""

    key: str
    variations: tuple[str, ...]
    weights: tuple[float, ...]
    coverage: float = 1.0
    seed: str = ""
    condition: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def growthbook_fields(self) -> dict[str, object]:
        """The keyword arguments of GrowthBook's ``Experiment`` for this definition."""
        return {
            "key": self.key,
            "variations": list(self.variations),
            "weights": list(self.weights),
            "coverage": self.coverage,
            "seed": self.seed or self.key,
            "hashAttribute": HASH_ATTRIBUTE,
            "hashVersion": HASH_VERSION,
            "condition": {k: dict(v) for k, v in self.condition.items()},
            "meta": [{"key": v, "name": v} for v in self.variations],
        }


def _matches(operator: str, expected: object, actual: object) -> bool:
    if operator == "$in":
        return isinstance(expected, list) and actual in expected
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    if operator == "$vgte":
        return padded_version(actual) >= padded_version(expected)
    return padded_version(actual) < padded_version(expected)  # $vlt


def eligible(experiment: ServedExperiment, user: UserContext) -> bool:
    """Whether the user passes the experiment's targeting condition."""
    values = user.attributes()
    return all(
        _matches(operator, expected, values.get(attribute))
        for attribute, operators in experiment.condition.items()
        for operator, expected in operators.items()
    )


def assign(experiment: ServedExperiment, user: UserContext) -> str | None:
    """The variant the user gets, or ``None`` when they are not in the experiment
    (not targeted, outside the coverage, or no user id)."""
    if len(experiment.variations) < 2 or not user.user_id or not eligible(experiment, user):
        return None
    point = bucket(experiment.seed or experiment.key, user.user_id)
    for index, (start, end) in enumerate(bucket_ranges(experiment.weights, experiment.coverage)):
        if start <= point < end:
            return experiment.variations[index]
    return None


def _text_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ExperimentDefinitionError(f"{where}: must be a list of non-empty strings")
    return list(value)


def parse_experiment(item: object, where: str = "experiment") -> ServedExperiment:
    """One served definition (a JSON object) as a :class:`ServedExperiment`."""
    if not isinstance(item, dict):
        raise ExperimentDefinitionError(f"{where}: must be an object")
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise ExperimentDefinitionError(f"{where}.key: must be a non-empty string")
    variations = _text_list(item.get("variations"), f"{where}.variations")
    weights = item.get("weights")
    if (
        not isinstance(weights, list)
        or len(weights) != len(variations)
        or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
    ):
        raise ExperimentDefinitionError(f"{where}.weights: one number per variation")
    coverage = item.get("coverage", 1.0)
    if not isinstance(coverage, int | float) or not 0 <= coverage <= 1:
        raise ExperimentDefinitionError(f"{where}.coverage: a number from 0 to 1")
    if item.get("hashVersion", HASH_VERSION) != HASH_VERSION:
        raise ExperimentDefinitionError(f"{where}.hashVersion: only version 2 is supported")
    condition = item.get("condition", {})
    if not isinstance(condition, dict):
        raise ExperimentDefinitionError(f"{where}.condition: must be an object")
    for attribute, operators in condition.items():
        if not isinstance(operators, dict) or not set(operators) <= SUPPORTED_OPERATORS:
            raise ExperimentDefinitionError(
                f"{where}.condition.{attribute}: only {sorted(SUPPORTED_OPERATORS)} are supported"
            )
    seed = item.get("seed", key)
    return ServedExperiment(
        key=key,
        variations=tuple(variations),
        weights=tuple(float(w) for w in weights),
        coverage=float(coverage),
        seed=seed if isinstance(seed, str) and seed else key,
        condition=condition,
    )


def parse_payload(payload: Mapping[str, object]) -> dict[str, ServedExperiment]:
    """The gateway's ``GET /telemetry/experiments`` answer, by experiment key."""
    items = payload.get("experiments")
    if not isinstance(items, list):
        raise ExperimentDefinitionError("experiments: must be a list")
    parsed = [parse_experiment(item, f"experiments[{i}]") for i, item in enumerate(items)]
    return {experiment.key: experiment for experiment in parsed}


def record_exposure(
    experiment: ServedExperiment,
    variant: str,
    user_id: str,
    *,
    at: datetime | None = None,
    handle: SdkHandle | None = None,
) -> str:
    """Record that the user was shown ``variant``: event ``caret.experiment.exposure``.

    Call it when the treatment is actually shown, not when it is assigned. Repeated
    calls for the same user, experiment and variant get the same event id (stored
    once); the exporter keeps each user's first exposure per experiment. Returns the
    event id.
    """
    if variant not in experiment.variations:
        raise ExperimentDefinitionError("variant: not a variation of this experiment")
    if not isinstance(user_id, str) or not user_id.strip():
        raise ExperimentDefinitionError("user_id: must be a non-empty string")
    handle = handle or current()
    spec = event_specs.CARET_EXPERIMENT_EXPOSURE
    timestamp_ns = _timestamp_ns(at)
    values: dict[str, AttributeValue] = {
        attrs.CARET_EXPERIMENT_KEY: experiment.key,
        attrs.CARET_EXPERIMENT_VARIANT: variant,
    }
    event_id = handle.events.event_id(
        spec, user_id, timestamp_ns, values, idempotency_key=f"{experiment.key}\x00{variant}"
    )
    logger = _logs.get_logger(SCOPE_NAME, __version__, handle.logger_provider)
    logger.emit(
        timestamp=timestamp_ns,
        severity_number=_logs.SeverityNumber.INFO,
        attributes={
            attrs.CARET_EVENT_ID: event_id,
            attrs.CARET_EVENT_CLIENT_TYPE: spec.client_event or spec.name,
            attrs.ENDUSER_PSEUDO_ID: user_id,
            **values,
        },
        event_name=spec.name,
    )
    return event_id
