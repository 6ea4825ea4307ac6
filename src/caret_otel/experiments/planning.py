"""Sample size, power and expected duration of an experiment.

The test is the one ``analyze`` runs: the relative lift of each variant over control,
with the delta-method standard error ``se(N) = c / sqrt(N)`` for ``N`` users in all
(``c`` from the control's per-user mean and variance, the variants' weights and the
lift). The treatment's variance under the lift is taken as the control's, scaled like a
proportion's ``p (1 - p)`` for rates and like a count's mean for other metrics.

- fixed horizon: power ``= Phi(mde / se - z_(1 - alpha/2))``, so ``N = ((z_(1-alpha/2) +
  z_power) c / mde)^2``;
- alpha spending (the default): the probability that the group-sequential design crosses
  its upper boundary at one of ``looks`` equally spaced daily looks when the expected z at
  the planned end is ``mde / se(N)`` (``group_sequential.power``, the same recursive
  integration as the boundaries); ``N`` from the drift that gives the target power;
- always valid: the always-valid half-width ``w(N)`` replaces the z-quantile: power
  ``= Phi((mde - w(N)) / se(N))`` at the planned end (looks before it only add power), and
  ``N`` is found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as sps

from . import group_sequential
from .definitions import Experiment, Method
from .stats import SEQUENTIAL_TUNING, sequential_rho

DEFAULT_LOOKS = 28
"""Daily looks assumed for an alpha-spending experiment without an end date."""


def planned_looks(experiment: Experiment) -> int:
    """One look a day from start to end (:data:`DEFAULT_LOOKS` without an end)."""
    if experiment.end is None:
        return DEFAULT_LOOKS
    return (experiment.end - experiment.start).days + 1


@dataclass(frozen=True)
class Baseline:
    """The control's per-user mean and variance of the primary metric."""

    mean: float
    variance: float
    rate: bool
    """A rate in [0, 1] (proportion, completion rate): the variance scales as p (1 - p)."""


def _treatment_variance(baseline: Baseline, mde: float) -> float:
    lifted = baseline.mean * (1 + mde)
    if baseline.rate and 0 < baseline.mean < 1 and lifted < 1:
        return baseline.variance * lifted * (1 - lifted) / (baseline.mean * (1 - baseline.mean))
    return baseline.variance * (1 + mde)


def unit_std_error(baseline: Baseline, mde: float, weights: Sequence[float]) -> float:
    """``c`` with ``se(N) = c / sqrt(N)``: the worst variant against control."""
    mean_a, var_a = baseline.mean, baseline.variance
    mean_b, var_b = mean_a * (1 + mde), _treatment_variance(baseline, mde)
    w_a = weights[0]
    worst = max(
        var_b / (mean_a**2 * w_b) + var_a * mean_b**2 / (mean_a**4 * w_a) for w_b in weights[1:]
    )
    return math.sqrt(worst)


def _sequential_width(se: float, total: float, alpha: float) -> float:
    rho = sequential_rho(alpha, SEQUENTIAL_TUNING)
    s2 = se**2 * total
    return math.sqrt(s2) * math.sqrt(
        2 * (total * rho**2 + 1) * math.log(math.sqrt(total * rho**2 + 1) / alpha)
        / (total * rho) ** 2
    )  # fmt: skip


def power(
    baseline: Baseline, mde: float, total_users: float, weights: Sequence[float],
    *, alpha: float = 0.05, method: Method = Method.FIXED_HORIZON, looks: int = DEFAULT_LOOKS,
) -> float:  # fmt: skip
    """Probability that a true relative lift of ``mde`` is detected with ``total_users``
    (for alpha spending: at one of ``looks`` daily looks, the last with ``total_users``)."""
    if total_users <= 2:
        return 0.0
    se = unit_std_error(baseline, mde, weights) / math.sqrt(total_users)
    if method is Method.ALPHA_SPENDING:
        fractions = group_sequential.equal_fractions(looks)
        return group_sequential.power(mde / se, fractions, alpha)
    if method is Method.ALWAYS_VALID:
        return float(sps.norm.cdf((mde - _sequential_width(se, total_users, alpha)) / se))
    z = sps.norm.ppf(1 - alpha / 2)
    return float(sps.norm.cdf(mde / se - z) + sps.norm.cdf(-mde / se - z))


def required_users(
    baseline: Baseline, mde: float, weights: Sequence[float],
    *, alpha: float = 0.05, target_power: float = 0.8,
    method: Method = Method.FIXED_HORIZON, looks: int = DEFAULT_LOOKS,
) -> int:  # fmt: skip
    """Users in all variants together for ``target_power`` with ``method``."""
    c = unit_std_error(baseline, mde, weights)
    fixed = float(((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(target_power)) * c / mde) ** 2)
    if method is Method.FIXED_HORIZON:
        return math.ceil(fixed)
    if method is Method.ALPHA_SPENDING:
        fractions = group_sequential.equal_fractions(looks)
        drift = group_sequential.drift_for_power(target_power, fractions, alpha)
        return math.ceil((drift * c / mde) ** 2)
    low, high = fixed, fixed
    valid = Method.ALWAYS_VALID
    while power(baseline, mde, high, weights, alpha=alpha, method=valid) < target_power:
        high *= 2
    while high - low > 1:
        middle = (low + high) / 2
        if power(baseline, mde, middle, weights, alpha=alpha, method=valid) < target_power:
            low = middle
        else:
            high = middle
    return math.ceil(high)


def days_to_reach(total_users: int, cumulative_eligible: Sequence[float]) -> int | None:
    """Days until ``total_users`` enter, from the cumulative number of eligible users seen
    in the recent days (index 0 = after one day), extended at the last week's pace."""
    for day, reached in enumerate(cumulative_eligible, start=1):
        if reached >= total_users:
            return day
    if len(cumulative_eligible) < 2:
        return None
    last = cumulative_eligible[-1]
    window = min(7, len(cumulative_eligible) - 1)
    pace = (last - cumulative_eligible[-1 - window]) / window
    if pace <= 0:
        return None
    return len(cumulative_eligible) + math.ceil((total_users - last) / pace)
