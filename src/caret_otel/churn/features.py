"""Churn features from per-user daily aggregates (never raw events, never free text).

The input is a dense array ``values[user, day, metric]`` of the stored pseudonymous
daily aggregates (:data:`METRICS`, one column per adoption feature after them) plus
each user's first-seen day. A *snapshot* at day ``t`` looks at the 28 days before ``t``
(``[t-28, t)``), takes every user active in them, and labels a user as churned when they
have no activity in the 14 days from ``t`` on (``[t, t+14)``). The same code builds the
features from PostgreSQL (:mod:`caret_otel.churn.store`) and from the in-process test
population (:mod:`caret_otel.churn.synthetic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from caret_otel.simulator.churn_drivers import ADOPTION_FEATURES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

OBSERVATION_DAYS: Final = 28
"""Users active in these days before the snapshot are scored."""
LABEL_DAYS: Final = 14
"""Churned: no activity in this many days from the snapshot day on."""

ACTIVE, EVENTS, REQUESTS, ERRORS, TOKENS, SESSIONS, PAID = range(7)
TASKS, COMPLETED, THUMBS_UP, THUMBS_DOWN = range(7, 11)
METRICS: Final = (
    "active",
    "events",
    "requests",
    "errors",
    "tokens",
    "sessions",
    "paid",
    "tasks",
    "tasks_completed",
    "thumbs_up",
    "thumbs_down",
)
"""Daily metrics per user (``paid``: the day's usage was on a paid plan; ``tasks``: tasks
created, ``tasks_completed``: tasks that ended successfully); the uses of each of
:data:`ADOPTION_FEATURES` follow in that order."""

FEATURES: Final = (
    "days_since_active",
    "active_days_7d",
    "active_days_28d",
    "events_28d",
    "requests_7d",
    "requests_28d",
    "requests_trend",
    "tokens_28d",
    "tokens_trend",
    "tasks_28d",
    "tasks_trend",
    "error_rate_7d",
    "error_rate_28d",
    "task_completion_rate_7d",
    "task_completion_rate_28d",
    "thumbs_down_share_28d",
    "sessions_28d",
    "features_adopted_28d",
    "paid_28d",
    "tenure_days",
)
"""The model's inputs, in column order (docs/churn.md defines each)."""
RECENCY_FEATURE: Final = "days_since_active"

DRIVER_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "recency": ("days_since_active",),
    "activity": ("active_days_7d", "active_days_28d", "events_28d", "sessions_28d"),
    "requests": ("requests_7d", "requests_28d", "requests_trend"),
    "tokens": ("tokens_28d", "tokens_trend"),
    "tasks": ("tasks_28d", "tasks_trend"),
    "provider errors": ("error_rate_7d", "error_rate_28d"),
    "task completion": ("task_completion_rate_7d", "task_completion_rate_28d"),
    "thumbs-down share": ("thumbs_down_share_28d",),
    "feature adoption": ("features_adopted_28d",),
    "plan": ("paid_28d",),
    "tenure": ("tenure_days",),
}
"""The drivers the model reports: each groups the features that measure one thing over
different windows (they are shuffled together, so correlated features do not split the
credit). Every feature is in exactly one group."""


@dataclass(frozen=True)
class DailyAggregates:
    """Per-user daily aggregates over consecutive days from ``first_day``."""

    users: tuple[str, ...]
    first_day: date
    values: FloatArray
    """``[user, day, metric]``: :data:`METRICS` then one column per adoption feature."""
    first_seen: IntArray
    """Day index (relative to ``first_day``; negative before it) each user was first seen."""

    @property
    def days(self) -> int:
        return int(self.values.shape[1])

    def day_index(self, day: date) -> int:
        return (day - self.first_day).days

    def day_at(self, index: int) -> date:
        return self.first_day + timedelta(days=index)


def empty_values(users: int, days: int) -> FloatArray:
    return np.zeros((users, days, len(METRICS) + len(ADOPTION_FEATURES)), dtype=np.float64)


@dataclass(frozen=True)
class Snapshot:
    """The eligible users at one snapshot day, their features and (if known) labels."""

    day_index: int
    user_index: IntArray
    x: FloatArray
    y: IntArray | None
    """1 = churned (no activity in the label window); None when it is not over yet."""


def _share(part: FloatArray, whole: FloatArray) -> FloatArray:
    """``part / whole`` capped at 1; NaN (missing: the model learns what it means) where
    ``whole`` is 0, so "no task" does not look like "no task completed"."""
    ratio = np.minimum(part / np.maximum(whole, 1.0), 1.0)
    return np.asarray(np.where(whole > 0, ratio, np.nan), dtype=np.float64)


def _trend(recent: FloatArray, whole: FloatArray) -> FloatArray:
    """Log of the last 7 days' daily rate over the 28 days' daily rate (0 = steady)."""
    return np.asarray(np.log((recent / 7.0 + 1.0) / (whole / 28.0 + 1.0)), dtype=np.float64)


def snapshot(data: DailyAggregates, t: int, *, require_label: bool) -> Snapshot:
    """Features of every user active in ``[t-28, t)``; labels from ``[t, t+14)``."""
    if t < OBSERVATION_DAYS:
        raise ValueError(f"snapshot day {t} leaves fewer than {OBSERVATION_DAYS} days before it")
    labelled = t + LABEL_DAYS <= data.days
    if require_label and not labelled:
        raise ValueError(f"snapshot day {t}: the {LABEL_DAYS}-day label window is not over")
    window = data.values[:, t - OBSERVATION_DAYS : t, :]
    recent = window[:, -7:, :]
    active = window[:, :, ACTIVE] > 0
    eligible = np.flatnonzero(active.any(axis=1) & (data.first_seen < t))
    window, recent, active = window[eligible], recent[eligible], active[eligible]
    # index of the last active day within the window, counted back from t-1
    last_active = OBSERVATION_DAYS - 1 - np.argmax(active[:, ::-1], axis=1)
    sums, sums7 = window.sum(axis=1), recent.sum(axis=1)
    adoption = window[:, :, len(METRICS) :].sum(axis=1) > 0
    completion_28d = _share(sums[:, COMPLETED], sums[:, TASKS])
    columns = {
        "days_since_active": OBSERVATION_DAYS - 1 - last_active,
        "active_days_7d": sums7[:, ACTIVE],
        "active_days_28d": sums[:, ACTIVE],
        "events_28d": sums[:, EVENTS],
        "requests_7d": sums7[:, REQUESTS],
        "requests_28d": sums[:, REQUESTS],
        "requests_trend": _trend(sums7[:, REQUESTS], sums[:, REQUESTS]),
        "tokens_28d": sums[:, TOKENS],
        "tokens_trend": _trend(sums7[:, TOKENS], sums[:, TOKENS]),
        "tasks_28d": sums[:, TASKS],
        "tasks_trend": _trend(sums7[:, TASKS], sums[:, TASKS]),
        "error_rate_7d": sums7[:, ERRORS] / np.maximum(sums7[:, REQUESTS], 1.0),
        "error_rate_28d": sums[:, ERRORS] / np.maximum(sums[:, REQUESTS], 1.0),
        # without a task in the last 7 days, the 28-day rate (no extra recency signal)
        "task_completion_rate_7d": np.where(
            sums7[:, TASKS] > 0, _share(sums7[:, COMPLETED], sums7[:, TASKS]), completion_28d
        ),
        "task_completion_rate_28d": completion_28d,
        "thumbs_down_share_28d": _share(
            sums[:, THUMBS_DOWN], sums[:, THUMBS_UP] + sums[:, THUMBS_DOWN]
        ),
        "sessions_28d": sums[:, SESSIONS],
        "features_adopted_28d": adoption.sum(axis=1),
        "paid_28d": (window[:, :, PAID].max(axis=1) > 0),
        "tenure_days": t - data.first_seen[eligible],
    }
    x = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in FEATURES])
    y: IntArray | None = None
    if labelled:
        future = data.values[eligible, t : t + LABEL_DAYS, ACTIVE] > 0
        y = (~future.any(axis=1)).astype(np.int64)
    return Snapshot(t, eligible.astype(np.int64), x, y)
