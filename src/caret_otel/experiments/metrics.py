"""The experiment metrics: one catalog, computed per user in SQL (migration 0012).

Each metric is a per-user quantity over the user's time since their first exposure
(``analytics.experiment_variant_stats`` sums it per variant). A *mean* metric averages a
per-user value, a *proportion* a 0/1 value, a *ratio* divides two per-user sums (tasks
completed / tasks created) and takes the delta method for its variance. The pre-period
value (the 14 days before the first exposure) feeds CUPED for mean and proportion
metrics. ``experiments/experiment.schema.json`` lists the same names; a test keeps them
equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final


class Kind(Enum):
    MEAN = "mean"
    PROPORTION = "proportion"
    RATIO = "ratio"


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    brief: str
    higher_is_better: bool = True

    @property
    def cuped(self) -> bool:
        """CUPED applies to mean and proportion metrics (gbstats 0.8 has no adjusted ratio)."""
        return self.kind is not Kind.RATIO


CATALOG: Final = {
    m.name: m
    for m in (
        Metric("tasks_created", Kind.MEAN, "tasks started per user"),
        Metric("tasks_completed", Kind.MEAN, "tasks completed successfully per user"),
        Metric("task_completion_rate", Kind.RATIO, "tasks completed successfully / tasks started"),
        Metric("tokens_per_task", Kind.RATIO, "input + output tokens / tasks started", False),
        Metric("cost_per_task", Kind.RATIO, "credits consumed / tasks started", False),
        Metric("provider_error_rate", Kind.RATIO, "provider API errors / API requests", False),
        Metric("thumbs_up_rate", Kind.RATIO, "thumbs up / thumbs up or down on task results"),
        Metric("active_days", Kind.MEAN, "days with any activity per user"),
        Metric("retained_d7", Kind.PROPORTION, "active 7 to 13 days after the first exposure"),
        Metric("paid_conversion", Kind.PROPORTION, "first payment after the first exposure"),
        Metric("credits", Kind.MEAN, "credits consumed per user"),
    )
}


def metric(name: str) -> Metric:
    return CATALOG[name]
