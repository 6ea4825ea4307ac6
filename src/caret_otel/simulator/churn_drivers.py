"""Why simulated users leave: the known churn drivers, one source for the simulator and
for the churn model's in-process test population.

Every user gets a :class:`ChurnProfile` drawn from their own random generator: the day
they leave (or none within the horizon). The day comes from a daily hazard that the
known drivers shape:

- **feature adoption keeps users**: each adopted feature (focus chain, MCP, browser tool)
  multiplies the daily hazard by :data:`ADOPTION_HAZARD_FACTOR`;
- **provider errors come before leaving**: in the :data:`FRUSTRATION_DAYS` before the
  day they leave, a user's provider error rate is :data:`FRUSTRATION_ERROR_MULTIPLIER`
  times the provider's usual rate (the failed requests are what drives them away);
- **failed tasks and thumbs-down come before leaving**: in the same days a task ends
  successfully :data:`FRUSTRATION_SUCCESS_FACTOR` times as often (the rest are
  abandoned), users rate more answers (:data:`FRUSTRATED_FEEDBACK_SHARE`) and a rated
  answer gets a thumbs up only at :data:`FRUSTRATED_THUMBS_UP_RATE`;
- after that day the user is gone: no activity at all.

:data:`DRIVERS` names the churn model's drivers (groups of features) these show up in,
so a test can check that the model's top drivers include them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from caret_otel.semconv import events
from caret_otel.simulator.population import User, user_rng

BASE_DAILY_HAZARD: Final = 0.035
"""Probability per day that a user without any adopted feature decides to leave."""
ADOPTION_HAZARD_FACTOR: Final = 0.25
"""Each adopted feature multiplies the daily hazard by this factor."""
FRUSTRATION_DAYS: Final = 7
"""Days before leaving during which provider errors pile up."""
FRUSTRATION_ERROR_MULTIPLIER: Final = 7.0
"""Provider error rate during those days, as a multiple of the provider's usual rate."""
FRUSTRATION_SUCCESS_FACTOR: Final = 0.55
"""During those days, the chance a task ends successfully, as a multiple of the usual one."""
FRUSTRATED_THUMBS_UP_RATE: Final = 0.3
"""During those days, the share of rated answers that get a thumbs up (else thumbs down)."""
FRUSTRATED_FEEDBACK_SHARE: Final = 0.4
"""During those days, the share of tasks whose answer the user rates (usually fewer)."""
ABANDONED_OUTCOME: Final = "abandoned"
"""What a task that a frustrated user would otherwise have completed ends as."""
SUCCESS_OUTCOME: Final = "success"
MAX_ERROR_RATE: Final = 0.6
"""Cap of any error rate after the multiplier."""
HORIZON_DAYS: Final = 400
"""Users who would leave later than this after joining are treated as staying."""


def _feature(spec: events.EventSpec) -> str:
    assert spec.feature is not None
    return spec.feature


FEATURE_ADOPTION_SHARES: Final = (
    (_feature(events.CARET_TASK_FOCUS_CHAIN), 0.35),
    (_feature(events.CARET_TASK_MCP_TOOL_CALLED), 0.3),
    (_feature(events.CARET_TASK_BROWSER_TOOL_START), 0.2),
)
"""Features that keep users, with the share of users who adopt each (the simulator's
:class:`~caret_otel.simulator.population.User` draws the same shares)."""
ADOPTION_FEATURES: Final = tuple(name for name, _ in FEATURE_ADOPTION_SHARES)

DRIVERS: Final[dict[str, tuple[str, ...]]] = {
    "provider errors before leaving": ("provider errors",),
    "failed tasks and thumbs-down before leaving": ("task completion", "thumbs-down share"),
    "feature adoption": ("feature adoption",),
}
"""Each injected driver and the churn model's drivers (feature groups,
:data:`caret_otel.churn.features.DRIVER_GROUPS`) it shows up in."""


@dataclass(frozen=True)
class ChurnProfile:
    """When one user leaves; ``None`` when they stay past the horizon."""

    leaves_at: datetime | None

    def engagement(self, moment: datetime) -> float:
        """1 while the user is still a user, 0 from the day they left on."""
        return 0.0 if self.leaves_at is not None and moment >= self.leaves_at else 1.0

    def frustrated(self, moment: datetime) -> bool:
        """Whether ``moment`` is within the days before this user leaves."""
        if self.leaves_at is None:
            return False
        before = (self.leaves_at - moment).total_seconds() / 86_400
        return 0.0 <= before < FRUSTRATION_DAYS

    def error_multiplier(self, moment: datetime) -> float:
        """How much more often this user's provider requests fail at ``moment``."""
        return FRUSTRATION_ERROR_MULTIPLIER if self.frustrated(moment) else 1.0


def daily_hazard(adopted_features: int) -> float:
    """The probability per day of leaving for a user with that many adopted features."""
    return BASE_DAILY_HAZARD * ADOPTION_HAZARD_FACTOR**adopted_features


def draw_profile(rng: random.Random, adopted_features: int, joined: datetime) -> ChurnProfile:
    """The day a user who joined at ``joined`` leaves: geometric in the daily hazard."""
    hazard = daily_hazard(adopted_features)
    # Inverse transform of the geometric distribution (days until the first "leave").
    days = math.floor(math.log(1.0 - rng.random()) / math.log(1.0 - hazard))
    if days > HORIZON_DAYS:
        return ChurnProfile(None)
    return ChurnProfile(joined + timedelta(days=days + rng.random()))


def error_rate(base_rate: float, profile: ChurnProfile, moment: datetime) -> float:
    """A provider's error rate for this user at ``moment``."""
    return min(base_rate * profile.error_multiplier(moment), MAX_ERROR_RATE)


def task_outcomes(
    outcomes: tuple[tuple[str, float], ...], profile: ChurnProfile, moment: datetime
) -> tuple[tuple[str, float], ...]:
    """The weights of a task's outcomes for this user at ``moment``: while frustrated, part
    of the successful tasks are abandoned (the same number of draws either way)."""
    if not profile.frustrated(moment):
        return outcomes
    success = sum(w for name, w in outcomes if name == SUCCESS_OUTCOME)
    moved = success * (1.0 - FRUSTRATION_SUCCESS_FACTOR)
    return tuple(
        (name, w - moved if name == SUCCESS_OUTCOME else w + moved if name == ABANDONED_OUTCOME
         else w)
        for name, w in outcomes
    )  # fmt: skip


def feedback_share(base_share: float, profile: ChurnProfile, moment: datetime) -> float:
    """The share of this user's tasks they rate at ``moment``: more while frustrated."""
    if profile.frustrated(moment):
        return max(base_share, FRUSTRATED_FEEDBACK_SHARE)
    return base_share


def thumbs_up_rate(base_rate: float, profile: ChurnProfile, moment: datetime) -> float:
    """The share of this user's rated answers that get a thumbs up at ``moment``."""
    return min(base_rate, FRUSTRATED_THUMBS_UP_RATE) if profile.frustrated(moment) else base_rate


def simulated_profile(seed: int, user: User, window_start: datetime) -> ChurnProfile:
    """The profile of a simulated user (their own generator: no other draw changes)."""
    adopted = sum((user.uses_focus_chain, user.uses_mcp, user.uses_browser))
    joined = user.signup_at or window_start
    return draw_profile(user_rng(seed, user.index, "churn"), adopted, joined)


STAYS: Final = ChurnProfile(None)
"""The profile of a user who never leaves."""
