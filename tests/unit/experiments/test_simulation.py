"""By simulation (numpy, vectorised over experiments): error rates, the sample-ratio check,
CUPED's variance reduction and the power ``plan`` promises."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest

from caret_otel.experiments import group_sequential, planning, stats
from caret_otel.experiments.definitions import Method

EXPERIMENTS = 500
ALPHA = 0.05
START = date(2026, 11, 1)


def _sums(x: np.ndarray) -> stats.Moments:
    """Moments over the last axis (one row per experiment)."""
    return stats.Moments(np.full(x.shape[0], x.shape[1], float), x.sum(axis=1), (x * x).sum(axis=1))


def test_aa_false_positive_rate_at_a_single_look() -> None:
    rng = np.random.default_rng(1)
    a = rng.poisson(3.0, (EXPERIMENTS, 2000)).astype(float)
    b = rng.poisson(3.0, (EXPERIMENTS, 2000)).astype(float)
    result = stats.t_test(stats.mean_estimate(_sums(a)), stats.mean_estimate(_sums(b)), ALPHA)
    rate = float(np.mean(np.asarray(result.p_value) < ALPHA))
    assert 0.03 <= rate <= 0.07, rate


def _daily_look(day: int, days: int, per_day: int) -> group_sequential.Look:
    """Look ``day`` of an experiment planned for ``days`` days and ``days * per_day`` users,
    from the exposures per day as ``analyze`` reads them."""
    exposures = [(START + timedelta(days=d), per_day) for d in range(day)]
    end = START + timedelta(days=days - 1)
    today = START + timedelta(days=day - 1)
    look = group_sequential.look(START, end, days * per_day, exposures, today, ALPHA)
    assert look is not None
    return look


def test_aa_false_positive_rate_with_daily_sequential_looks() -> None:
    rng = np.random.default_rng(2)
    days, per_day = 14, 300
    a = rng.poisson(3.0, (EXPERIMENTS, days * per_day)).astype(float)
    b = rng.poisson(3.0, (EXPERIMENTS, days * per_day)).astype(float)
    spending_hits = np.zeros(EXPERIMENTS, bool)
    always_valid_hits = np.zeros(EXPERIMENTS, bool)
    naive_hits = np.zeros(EXPERIMENTS, bool)
    for day in range(1, days + 1):
        n = day * per_day
        ea, eb = stats.mean_estimate(_sums(a[:, :n])), stats.mean_estimate(_sums(b[:, :n]))
        look = _daily_look(day, days, per_day)
        assert look.number == day
        assert look.final == (day == days)
        spending = stats.group_sequential_test(ea, eb, look.fractions, ALPHA, look.spending)
        spending_hits |= np.asarray(spending.p_value) < ALPHA
        always_valid_hits |= np.asarray(stats.sequential_test(ea, eb, ALPHA).p_value) < ALPHA
        naive_hits |= np.asarray(stats.t_test(ea, eb, ALPHA).p_value) < ALPHA
    # alpha spending uses up alpha over the 14 planned daily looks: about 5 % false winners
    rate = float(spending_hits.mean())
    assert 0.03 <= rate <= 0.07, rate
    # the always-valid interval holds at any number of looks, so at 14 it stays far below
    always_valid = float(always_valid_hits.mean())
    assert always_valid <= 0.03, always_valid
    # peeking at a fixed-horizon test every day inflates the error
    assert float(naive_hits.mean()) > 0.15


def test_a_52_48_split_of_a_1_1_experiment_fails_the_srm_check_at_20000_users() -> None:
    assert stats.srm_p_value([10_400, 9_600], [0.5, 0.5]) < stats.SRM_P_VALUE
    assert stats.srm_p_value([10_050, 9_950], [0.5, 0.5]) > stats.SRM_P_VALUE


def test_cuped_reduces_variance_by_at_least_30_percent_at_correlation_0_6() -> None:
    rng = np.random.default_rng(3)
    n, rho = 4000, 0.6
    pre = rng.normal(10, 3, (EXPERIMENTS, 2 * n))
    post = 10 + rho * (pre - 10) + rng.normal(0, 3 * np.sqrt(1 - rho**2), pre.shape)
    pa, pb, qa, qb = post[:, :n], post[:, n:], pre[:, :n], pre[:, n:]
    prods_a, prods_b = (pa * qa).sum(axis=1), (pb * qb).sum(axis=1)
    theta = stats.cuped_theta(_sums(pa), _sums(qa), prods_a, _sums(pb), _sums(qb), prods_b)
    adjusted = stats.cuped_estimate(_sums(pa), _sums(qa), prods_a, theta)
    plain = stats.mean_estimate(_sums(pa))
    reduction = 1 - np.median(np.asarray(adjusted.variance) / np.asarray(plain.variance))
    assert reduction >= 0.30, reduction
    # and the lifts themselves vary less across experiments
    lift_plain = stats.t_test(plain, stats.mean_estimate(_sums(pb))).lift
    lift_cuped = stats.t_test(
        adjusted, stats.cuped_estimate(_sums(pb), _sums(qb), prods_b, theta)
    ).lift
    assert np.var(lift_cuped) <= 0.7 * np.var(lift_plain)


def _completion(rng: np.random.Generator, rate: float, users: int) -> tuple[np.ndarray, np.ndarray]:
    created = rng.poisson(4.0, (EXPERIMENTS, users)).astype(float)
    completed = rng.binomial(created.astype(int), rate).astype(float)
    return completed, created


@pytest.mark.parametrize("method", list(Method))
def test_a_true_5_percent_lift_on_task_completion_is_detected_with_the_planned_power(
    method: Method,
) -> None:
    rng = np.random.default_rng(4)
    # the baseline the plan reads: task completion rate of a pre-period sample
    completed, created = _completion(rng, 0.6, 400)
    baseline_estimate = stats.ratio_estimate(
        stats.Moments(created.size, completed.sum(), (completed**2).sum()),
        stats.Moments(created.size, created.sum(), (created**2).sum()),
        (completed * created).sum(),
    )
    baseline = planning.Baseline(
        float(baseline_estimate.mean), float(baseline_estimate.variance), rate=True
    )
    days = 14
    planned = planning.required_users(baseline, 0.05, [0.5, 0.5], method=method, looks=days)
    per_day = math.ceil(planned / 2 / days)  # users per variant and day
    total = 2 * per_day * days
    promised = planning.power(baseline, 0.05, total, [0.5, 0.5], method=method, looks=days)
    assert 0.8 <= promised < 0.82
    ma, da = _completion(rng, 0.6, total // 2)
    mb, db = _completion(rng, 0.63, total // 2)

    def ratio(m: np.ndarray, d: np.ndarray) -> stats.Estimate:
        return stats.ratio_estimate(_sums(m), _sums(d), (m * d).sum(axis=1))

    if method is Method.ALPHA_SPENDING:
        # every day's look until the first crossing; detected when it crosses upwards
        decided = np.zeros(EXPERIMENTS, bool)
        detected_any = np.zeros(EXPERIMENTS, bool)
        for day in range(1, days + 1):
            n = day * per_day
            look = _daily_look(day, days, 2 * per_day)
            result = stats.group_sequential_test(
                ratio(ma[:, :n], da[:, :n]), ratio(mb[:, :n], db[:, :n]),
                look.fractions, ALPHA, look.spending,
            )  # fmt: skip
            crossed = (np.asarray(result.p_value) < ALPHA) & ~decided
            detected_any |= crossed & (np.asarray(result.lift) > 0)
            decided |= crossed
        detected = float(detected_any.mean())
    else:
        test = stats.sequential_test if method is Method.ALWAYS_VALID else stats.t_test
        result = test(ratio(ma, da), ratio(mb, db), ALPHA)
        detected = float(
            np.mean((np.asarray(result.p_value) < ALPHA) & (np.asarray(result.lift) > 0))
        )
    assert abs(detected - promised) <= 0.05, (method, detected, promised)


def test_days_to_reach_follows_the_cumulative_curve_then_the_last_weeks_pace() -> None:
    curve = [100.0 * (day + 1) for day in range(28)]  # 100 new users a day
    assert planning.days_to_reach(250, curve) == 3
    assert planning.days_to_reach(3_300, curve) == 33
    assert planning.days_to_reach(5_000, [500.0] * 28) is None  # nobody new is coming
