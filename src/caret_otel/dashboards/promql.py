"""Small PromQL builders, so queries read as what they compute.

Only string assembly lives here; names come from :mod:`promnames` (registry metrics)
and :mod:`selfmetrics` (process self-metrics). Every function returns PromQL text.
"""

from __future__ import annotations

from collections.abc import Iterable

RATE_WINDOW = "$__rate_interval"
"""Grafana's rate window: at least four scrape intervals, so rate() never sees < 2 samples."""


def quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def eq(label: str, value: str) -> str:
    return f"{label}={quote(value)}"


def ne(label: str, value: str) -> str:
    return f"{label}!={quote(value)}"


def match(label: str, regex: str) -> str:
    return f"{label}=~{quote(regex)}"


def selector(metric: str, *matchers: str) -> str:
    """``metric{m1, m2}`` (just ``metric`` without matchers)."""
    inner = ", ".join(m for m in matchers if m)
    return f"{metric}{{{inner}}}" if inner else metric


def by(labels: Iterable[str]) -> str:
    """`` by (a, b)`` or "" when there is nothing to group by."""
    names = list(labels)
    return f" by ({', '.join(names)})" if names else ""


def rate(selection: str, window: str = RATE_WINDOW) -> str:
    return f"rate({selection}[{window}])"


def increase(selection: str, window: str) -> str:
    return f"increase({selection}[{window}])"


def sum_by(labels: Iterable[str], expr: str) -> str:
    return f"sum{by(labels)} ({expr})"


def sum_rate(selection: str, labels: Iterable[str] = (), window: str = RATE_WINDOW) -> str:
    """``sum by (labels) (rate(selection[window]))``."""
    return sum_by(labels, rate(selection, window))


def quantile(
    q: float, bucket_selection: str, labels: Iterable[str], window: str = RATE_WINDOW
) -> str:
    """Quantile ``q`` of a histogram from its ``_bucket`` series, kept per ``labels``."""
    return f"histogram_quantile({q}, {sum_rate(bucket_selection, ['le', *labels], window)})"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator``. With nothing in the window the ratio is 0/0 = NaN:
    undefined (Grafana shows it as such) rather than missing, so "no traffic" and "no
    such series" stay distinguishable; NaN never satisfies an alert's comparison."""
    return f"({numerator}) / ({denominator})"


def with_label(expr: str, label: str, value: str) -> str:
    """``expr`` with a constant label added (to combine several series in one panel)."""
    return f"label_replace({expr}, {quote(label)}, {quote(value)}, {quote('')}, {quote('')})"


def or_zero(expr: str) -> str:
    """``expr``, or 0 when it has no series: for failure counters that no instance has
    incremented yet (absence of failures is a true zero, not missing data)."""
    return f"({expr}) or vector(0)"
