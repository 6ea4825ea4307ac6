"""Group-sequential testing with Lan-DeMets alpha spending (O'Brien-Fleming type).

An experiment is looked at once a day. A fixed-horizon test looked at every day declares
false winners far more often than alpha; an always-valid interval (``stats.sequential_test``)
holds at *any* number of looks, so at a finite number of looks it spends less than alpha and
is wider than it needs to be. A group-sequential design spends exactly alpha over the looks
it plans:

- the *information fraction* of a look is ``t = users exposed so far / users planned``
  (1 at the planned end);
- the *spending function* ``alpha(t) = 2 - 2 Phi(z_(1 - alpha/2) / sqrt(t))`` (Lan and
  DeMets 1983, the O'Brien-Fleming type) says how much of the two-sided error may be used
  up by ``t``: almost nothing early, all of alpha at ``t = 1``;
- the boundary ``c_k`` of look ``k`` is the ``|z|`` for which the probability of first
  crossing at look ``k`` (having not crossed before) is ``alpha(t_k) - alpha(t_(k-1))``.

The z-statistics of the looks are those of a Brownian motion in information:
``corr(Z_j, Z_k) = sqrt(t_j / t_k)``. The crossing probabilities come from the recursive
numerical integration of Armitage, McPherson and Rowe (1969), as Jennison and Turnbull
(2000, chapter 19) describe it: the density of the score ``S_k = Z_k sqrt(t_k)`` on the
continuation region, carried from look to look by the normal increment (Simpson's rule on a
grid finer than the increment's standard deviation). The same recursion with a drift gives
the power that ``experiments plan`` promises.

No well-kept Python package computes these boundaries (statsmodels and scipy do not; the
small PyPI packages for it are unmaintained); ``tests/unit/experiments`` checks ours against
the published K = 5 values (4.877, 3.357, 2.680, 2.290, 2.041) and by simulation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from scipy import stats as sps

from .definitions import ExperimentError

FloatArray = npt.NDArray[np.float64]

MIN_INCREMENT: Final = 1e-3
"""A look adding less than this share of the planned information is merged into the next
one (the statistic barely moves; the numerical integration needs a positive increment)."""
_POINTS_PER_SD: Final = 6.0
_MAX_POINTS: Final = 2001
_TAIL_SD: Final = 9.0
_P_FLOOR: Final = 1e-8
_P_LEVELS: Final = (1e-8, 1e-6, 1e-4, 1e-3, 0.003, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)


def spent(t: float, alpha: float) -> float:
    """Two-sided error the O'Brien-Fleming-type spending function allows by fraction ``t``:
    ``alpha / 2`` per side, each side spending ``2 - 2 Phi(z_(1 - alpha/4) / sqrt(t))``."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return alpha
    return float(4 * special.ndtr(-float(special.ndtri(1 - alpha / 4)) / math.sqrt(t)))


def _simpson(low: float, high: float, step: float) -> tuple[FloatArray, FloatArray]:
    """Points and Simpson weights on [low, high] with a spacing of at most ``step``."""
    intervals = max(2, math.ceil((high - low) / step))
    intervals = min(intervals + intervals % 2, _MAX_POINTS - 1)
    x = np.linspace(low, high, intervals + 1)
    h = (high - low) / intervals
    w = np.full(intervals + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * h / 3


_SQRT_2PI: Final = math.sqrt(2 * math.pi)


def _pdf(x: FloatArray) -> FloatArray:
    value: FloatArray = np.exp(-0.5 * x * x) / _SQRT_2PI
    return value


@dataclass
class _State:
    """The density of the score on the continuation region of the last look, on a grid,
    already multiplied by the integration weights."""

    x: FloatArray
    mass: FloatArray
    t: float


def _first(t: float, bound: float, drift: float, next_increment: float) -> _State:
    sd = math.sqrt(t)
    half = min(bound, _TAIL_SD * sd + abs(drift) * t)
    x, w = _simpson(-half, half, min(sd, math.sqrt(next_increment)) / _POINTS_PER_SD)
    density = _pdf((x - drift * t) / sd) / sd
    return _State(x, density * w, t)


def _cross(state: _State, t: float, bound: float, drift: float) -> tuple[float, float]:
    """Probabilities of crossing above ``bound`` and below ``-bound`` (score scale) at the
    next look, at fraction ``t``, without having crossed before."""
    increment = t - state.t
    sd = math.sqrt(increment)
    mean = state.x + drift * increment
    upper = float(np.sum(state.mass * special.ndtr((mean - bound) / sd)))
    lower = float(np.sum(state.mass * special.ndtr((-bound - mean) / sd)))
    return upper, lower


def _advance(state: _State, t: float, bound: float, drift: float, next_increment: float) -> _State:
    increment = t - state.t
    sd = math.sqrt(increment)
    half = min(bound, _TAIL_SD * math.sqrt(t) + abs(drift) * t)
    x, w = _simpson(-half, half, min(sd, math.sqrt(next_increment)) / _POINTS_PER_SD)
    kernel = _pdf((x[:, None] - state.x[None, :] - drift * increment) / sd) / sd
    return _State(x, (kernel @ state.mass) * w, t)


def _checked(fractions: Sequence[float], spending: Sequence[float] | None = None) -> tuple[
    tuple[float, ...], tuple[float, ...]
]:  # fmt: skip
    values = tuple(float(t) for t in fractions)
    times = values if spending is None else tuple(float(t) for t in spending)
    if not values or values[0] <= 0:
        raise ValueError("fractions: must be positive")
    if any(b - a <= 0 for a, b in itertools.pairwise(values)):
        raise ValueError("fractions: must increase")
    if len(times) != len(values) or any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError("spending: one time per look, never decreasing")
    if times[0] < 0 or times[-1] > 1 + 1e-12:
        raise ValueError("spending: must lie in [0, 1]")
    return values, times


def _next_increment(fractions: Sequence[float], k: int) -> float:
    return fractions[k + 1] - fractions[k] if k + 1 < len(fractions) else 1.0


@lru_cache(maxsize=256)
def _boundaries(
    fractions: tuple[float, ...], times: tuple[float, ...], alpha: float
) -> tuple[float, ...]:
    bounds: list[float] = []
    previous = 0.0
    state: _State | None = None
    for k, (t, tau) in enumerate(zip(fractions, times, strict=True)):
        target = spent(tau, alpha) - previous
        previous = spent(tau, alpha)
        if state is None:
            z = -float(special.ndtri(target / 2)) if target > 0 else math.inf
            bound = z * math.sqrt(t)
        elif target <= 1e-300:
            bound = math.inf
        else:

            def gap(
                b: float, current: _State = state, t: float = t, goal: float = math.log(target)
            ) -> float:
                up, low = _cross(current, t, b, 0.0)
                return math.log(max(up + low, 1e-320)) - goal

            high = _TAIL_SD * math.sqrt(t) * 4
            bound = float(optimize.brentq(gap, 1e-9, high, xtol=1e-10, rtol=1e-12))
        bounds.append(bound / math.sqrt(t))
        increment = _next_increment(fractions, k)
        if state is None:
            state = _first(t, bound, 0.0, increment)
        else:
            state = _advance(state, t, bound, 0.0, increment)
    return tuple(bounds)


def boundaries(
    fractions: Sequence[float], alpha: float, spending: Sequence[float] | None = None
) -> tuple[float, ...]:
    """The two-sided z-boundary of each look: reject at look ``k`` when ``|Z_k| >= c_k``.

    ``fractions``: each look's information (users) relative to the planned total, the
    covariance of the looks; ``spending``: the time at which the spending function is
    read (default: the same; 1 at a final look that has fewer or more users than planned,
    which then spends all alpha left)."""
    values, times = _checked(fractions, spending)
    return _boundaries(values, times, float(alpha))


def crossing(fractions: Sequence[float], bounds: Sequence[float], drift: float) -> FloatArray:
    """Per look, the probabilities of first crossing above (column 0) and below (column 1)
    when ``E[Z_k] = drift * sqrt(t_k)`` (``drift``: the expected z at ``t = 1``)."""
    values, _ = _checked(fractions)
    out = np.zeros((len(values), 2))
    state: _State | None = None
    for k, (t, c) in enumerate(zip(values, bounds, strict=True)):
        bound = c * math.sqrt(t)
        if state is None:
            sd = math.sqrt(t)
            out[k] = (
                sps.norm.sf((bound - drift * t) / sd),
                sps.norm.cdf((-bound - drift * t) / sd),
            )
            state = _first(t, bound, drift, _next_increment(values, k))
        else:
            out[k] = _cross(state, t, bound, drift)
            state = _advance(state, t, bound, drift, _next_increment(values, k))
    return out


def power(drift: float, fractions: Sequence[float], alpha: float) -> float:
    """Probability that the design declares the (positive) effect at some look."""
    return float(crossing(fractions, boundaries(fractions, alpha), drift)[:, 0].sum())


def drift_for_power(target: float, fractions: Sequence[float], alpha: float) -> float:
    """The expected z at ``t = 1`` for which the design has power ``target``."""
    fixed = float(sps.norm.isf(alpha / 2) + sps.norm.ppf(target))
    high = fixed * 1.5
    while power(high, fractions, alpha) < target:
        high *= 1.5
    return float(
        optimize.brentq(lambda d: power(d, fractions, alpha) - target, 0.0, high, xtol=1e-6)
    )


def equal_fractions(looks: int) -> tuple[float, ...]:
    return tuple((k + 1) / looks for k in range(looks))


@lru_cache(maxsize=64)
def _p_table(
    fractions: tuple[float, ...], times: tuple[float, ...], alpha: float
) -> tuple[FloatArray, FloatArray]:
    """The last look's boundary for a few levels: (boundaries increasing, the levels'
    fixed-sample z ``z_(1 - level/2)``)."""
    levels = sorted({*_P_LEVELS, alpha}, reverse=True)
    bounds = np.array([_boundaries(fractions, times, a)[-1] for a in levels])
    return bounds, np.array([float(special.ndtri(1 - a / 2)) for a in levels])


def repeated_p_value(
    z: npt.ArrayLike, fractions: Sequence[float], alpha: float,
    spending: Sequence[float] | None = None,
) -> FloatArray:  # fmt: skip
    """The smallest level at which the last look's boundary is crossed (the repeated
    p-value of Jennison and Turnbull): ``p < alpha`` exactly when ``|z| >= c_k``.

    Between the levels computed (1e-8 to 0.5, and alpha itself) the level's fixed-sample
    z is interpolated linearly in the boundary (nearly proportional for this spending
    function); above 0.5 the answer is 1 (nothing to see), below 1e-8 it is 1e-8."""
    fractions_times = _checked(fractions, spending)
    bounds, fixed_z = _p_table(*fractions_times, float(alpha))
    magnitude = np.abs(np.asarray(z, float))
    finite = np.isfinite(bounds)
    if finite.sum() < 2:
        return np.ones_like(magnitude)
    xs, us = bounds[finite], fixed_z[finite]
    value = 2 * special.ndtr(-np.interp(magnitude, xs, us))
    value = np.where(magnitude < xs[0], 1.0, value)
    value = np.where(magnitude >= xs[-1], _P_FLOOR, value)
    # exactly consistent with the boundary at alpha, whatever the rounding
    at_alpha = _boundaries(fractions_times[0], fractions_times[1], float(alpha))[-1]
    result: FloatArray = np.where(
        magnitude >= at_alpha, np.minimum(value, alpha * (1 - 1e-12)), np.maximum(value, alpha)
    )
    return result


@dataclass(frozen=True)
class Look:
    """Today's look of an alpha-spending experiment and the looks before it."""

    day: int
    """Day of the experiment (its start date is day 1)."""
    planned_days: int | None
    """Days from start to end (None: open-ended, the end is planned_users)."""
    users: int
    planned_users: int
    projected: bool
    """planned_users was projected from the pace so far (not set in the definition)."""
    fractions: tuple[float, ...]
    """Information fraction (users / planned users) of every look so far, merged where a
    day added under :data:`MIN_INCREMENT`; the last one is today's."""
    spending: tuple[float, ...]
    """The spending function's time of each look: the fraction, or 1 at the final look."""
    final: bool
    """Today's look spends all alpha that is left (the planned end is reached)."""
    past_end: bool
    """The planned end was reached on an earlier day: alpha was all spent then."""
    alpha: float
    boundary: float
    """Reject when ``|z| >= boundary`` at this look."""

    @property
    def number(self) -> int:
        return len(self.fractions)

    @property
    def fraction(self) -> float:
        return self.fractions[-1]

    @property
    def nominal_alpha(self) -> float:
        """The fixed-horizon p-value the boundary corresponds to."""
        return float(2 * special.ndtr(-self.boundary))

    def describe(self) -> str:
        of = f" of {self.planned_days}" if self.planned_days else ""
        planned = f"{self.planned_users:,} planned users" + (
            " (projected from the pace so far)" if self.projected else ""
        )
        state = (
            "final look (past the planned end: alpha was all spent at the end; decide now, once)"
            if self.past_end
            else "final look"
            if self.final
            else "interim look"
        )
        return (
            f"day {self.day}{of}, look {self.number}, {self.users:,} users of {planned} "
            f"(information {self.fraction:.0%}), {state}: significant when |z| >= "
            f"{self.boundary:.3f} (nominal p < {self.nominal_alpha:.2g})"
        )


def look(
    start: date,
    end: date | None,
    planned_users: int | None,
    new_users_per_day: Sequence[tuple[date, int]],
    today: date,
    alpha: float,
) -> Look | None:
    """Today's look from the first exposures per day: one look a day since ``start``, the
    information fraction ``users so far / planned users`` (1 on the planned end day or once
    the planned users are reached). ``None`` before the first exposure."""
    day_now = max(1, (today - start).days + 1)
    planned_days = (end - start).days + 1 if end is not None else None
    counts = [0] * day_now
    for when, new in new_users_per_day:
        counts[min(max((when - start).days, 0), day_now - 1)] += int(new)
    cumulative = list(itertools.accumulate(counts))
    total = cumulative[-1]
    if total <= 0:
        return None
    if planned_users is not None:
        planned, projected = int(planned_users), False
    elif planned_days is not None:
        elapsed = min(day_now, planned_days)
        planned, projected = max(total, math.ceil(total * planned_days / elapsed)), True
    else:
        raise ExperimentError("planned_users: alpha spending needs planned_users or an end date")

    def reaches_end(day: int, users: int) -> bool:
        return (planned_days is not None and day >= planned_days) or users >= planned

    fractions: list[float] = []
    times: list[float] = []
    past_end = False

    def add(t: float, tau: float) -> None:
        if fractions and t - fractions[-1] < MIN_INCREMENT:
            fractions[-1], times[-1] = t, tau  # merged into the later look
        else:
            fractions.append(t)
            times.append(tau)

    for day in range(1, day_now):
        users = cumulative[day - 1]
        if users == 0:
            continue
        if reaches_end(day, users):
            past_end = True
            break
        add(users / planned, users / planned)
    final = past_end or reaches_end(day_now, total)
    add(total / planned, 1.0 if final else total / planned)
    bounds = boundaries(fractions, alpha, times)
    return Look(
        day=day_now, planned_days=planned_days, users=total, planned_users=planned,
        projected=projected, fractions=tuple(fractions), spending=tuple(times), final=final,
        past_end=past_end, alpha=alpha, boundary=bounds[-1],
    )  # fmt: skip
