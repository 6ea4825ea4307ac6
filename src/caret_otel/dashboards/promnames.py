"""How a registry metric or attribute is named once it reaches Prometheus.

The Collector's ``prometheus_remote_write`` exporter translates OTel names with the
OpenTelemetry-to-Prometheus rules (``add_metric_suffixes`` on, its default): dots and
other invalid characters become underscores; the unit is appended as a word (``s`` ->
``_seconds``; ``{annotation}`` units add nothing; ``1`` on a gauge -> ``_ratio``);
monotonic counters get ``_total``; UpDownCounters become gauges without a suffix;
histograms expose ``_bucket``/``_sum``/``_count`` series. This module is the only place
in the package that knows those rules; every query and rule is built from it.
"""

from __future__ import annotations

import re
from typing import Final

from caret_otel.core.errors import InputError
from caret_otel.semconv.metrics import MetricSpec

# Unit words of the OTel Prometheus translator (UCUM case-sensitive codes).
_UNIT_WORDS: Final[dict[str, str]] = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
# The denominator of a rate unit ("By/s" -> "bytes_per_second").
_PER_UNIT_WORDS: Final[dict[str, str]] = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}
_ANNOTATION = re.compile(r"\{[^}]*\}")
_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")

HISTOGRAM_SERIES: Final = ("bucket", "sum", "count")
"""The series a histogram becomes; pass one as ``series`` to :func:`prometheus_name`."""


class UnknownUnitError(InputError):
    """A metric unit the translator table does not cover (so its name would be a guess)."""


def unit_suffix(spec: MetricSpec) -> str:
    """The unit words appended to ``spec``'s name ("" when the unit adds nothing)."""
    unit = _ANNOTATION.sub("", spec.unit).strip()
    if unit in ("", "1"):
        # A dimensionless gauge is a ratio; a dimensionless counter or histogram adds nothing.
        return "ratio" if unit == "1" and spec.instrument == "gauge" else ""
    main, _, per = unit.partition("/")
    words = []
    if main:
        if main not in _UNIT_WORDS:
            raise UnknownUnitError(f"metric {spec.name}: unit {spec.unit!r} has no Prometheus word")
        words.append(_UNIT_WORDS[main])
    if per:
        if per not in _PER_UNIT_WORDS:
            raise UnknownUnitError(f"metric {spec.name}: unit {spec.unit!r} has no Prometheus word")
        words.append(f"per_{_PER_UNIT_WORDS[per]}")
    return "_".join(words)


def prometheus_name(spec: MetricSpec, series: str | None = None) -> str:
    """The Prometheus metric name of ``spec``.

    ``series`` picks one series of a histogram (``"bucket"``, ``"sum"`` or ``"count"``);
    it is required for histograms and refused for every other instrument.

    >>> from caret_otel.semconv import metrics
    >>> prometheus_name(metrics.GEN_AI_CLIENT_OPERATION_DURATION, "bucket")
    'gen_ai_client_operation_duration_seconds_bucket'
    """
    tokens = [t for t in _INVALID.sub("_", spec.name).split("_") if t]
    suffix = unit_suffix(spec)
    if suffix and tokens[-len(suffix.split("_")) :] != suffix.split("_"):
        tokens.extend(suffix.split("_"))
    if spec.instrument == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if spec.instrument == "histogram":
        if series not in HISTOGRAM_SERIES:
            raise ValueError(
                f"metric {spec.name} is a histogram: series must be one of {HISTOGRAM_SERIES}, "
                f"not {series!r}"
            )
        tokens.append(series)
    elif series is not None:
        raise ValueError(f"metric {spec.name} is a {spec.instrument}: it has no {series!r} series")
    return "_".join(tokens)


def prometheus_label(attribute: str) -> str:
    """The Prometheus label name of a registry attribute (dots become underscores)."""
    label = _INVALID.sub("_", attribute)
    return f"key_{label}" if label[:1].isdigit() else label
