"""By simulation (numpy, vectorised over experiments): error rates, the sample-ratio check,
CUPED's variance reduction and the power ``plan`` promises."""

from __future__ import annotations

import numpy as np

from caret_otel.experiments import planning, stats

EXPERIMENTS = 500
ALPHA = 0.05


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


def test_aa_false_positive_rate_with_daily_sequential_looks() -> None:
    rng = np.random.default_rng(2)
    days, per_day = 14, 300
    a = rng.poisson(3.0, (EXPERIMENTS, days * per_day)).astype(float)
    b = rng.poisson(3.0, (EXPERIMENTS, days * per_day)).astype(float)
    sequential_hits = np.zeros(EXPERIMENTS, bool)
    naive_hits = np.zeros(EXPERIMENTS, bool)
    for day in range(1, days + 1):
        n = day * per_day
        ea, eb = stats.mean_estimate(_sums(a[:, :n])), stats.mean_estimate(_sums(b[:, :n]))
        sequential_hits |= np.asarray(stats.sequential_test(ea, eb, ALPHA).p_value) < ALPHA
        naive_hits |= np.asarray(stats.t_test(ea, eb, ALPHA).p_value) < ALPHA
    rate = float(sequential_hits.mean())
    assert rate <= 0.07, rate
    # peeking at a fixed-horizon test every day inflates the error; the sequential one does not
    assert float(naive_hits.mean()) > 0.10


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


def test_a_true_5_percent_lift_on_task_completion_is_detected_with_the_planned_power() -> None:
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
    for sequential in (False, True):
        planned = planning.required_users(baseline, 0.05, [0.5, 0.5], sequential=sequential)
        total = planned + planned % 2
        promised = planning.power(baseline, 0.05, total, [0.5, 0.5], sequential=sequential)
        assert 0.8 <= promised < 0.82
        ma, da = _completion(rng, 0.6, total // 2)
        mb, db = _completion(rng, 0.63, total // 2)

        def ratio(m: np.ndarray, d: np.ndarray) -> stats.Estimate:
            return stats.ratio_estimate(_sums(m), _sums(d), (m * d).sum(axis=1))

        test = stats.sequential_test if sequential else stats.t_test
        result = test(ratio(ma, da), ratio(mb, db), ALPHA)
        detected = float(
            np.mean((np.asarray(result.p_value) < ALPHA) & (np.asarray(result.lift) > 0))
        )
        assert abs(detected - promised) <= 0.05, (sequential, detected, promised)


def test_days_to_reach_follows_the_cumulative_curve_then_the_last_weeks_pace() -> None:
    curve = [100.0 * (day + 1) for day in range(28)]  # 100 new users a day
    assert planning.days_to_reach(250, curve) == 3
    assert planning.days_to_reach(3_300, curve) == 33
    assert planning.days_to_reach(5_000, [500.0] * 28) is None  # nobody new is coming
