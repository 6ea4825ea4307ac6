"""Against the references: GrowthBook's stats engine (gbstats) to 1e-6 and GrowthBook's SDK
assignment for 10,000 users."""

from __future__ import annotations

import numpy as np
import pytest
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RatioStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
    compute_theta,
)
from growthbook import Experiment as GbExperiment
from growthbook import GrowthBook

from caret_otel.experiments import stats
from caret_otel.experiments.definitions import load
from caret_otel.sdk import experiments as sdk_experiments

RNG = np.random.default_rng(20261203)
POST_A = RNG.poisson(3.0, 800).astype(float)
POST_B = RNG.poisson(3.2, 900).astype(float)
PRE_A = POST_A + RNG.normal(0, 1.5, 800)
PRE_B = POST_B * 0.9 + RNG.normal(0, 1.5, 900)
DEN_A = POST_A + RNG.poisson(2.0, 800)
DEN_B = POST_B + RNG.poisson(2.0, 900)
BIN_A = (RNG.random(800) < 0.30).astype(float)
BIN_B = (RNG.random(900) < 0.34).astype(float)


def _gb_mean(x: np.ndarray) -> SampleMeanStatistic:
    return SampleMeanStatistic(n=len(x), sum=float(x.sum()), sum_squares=float((x * x).sum()))


def _moments(x: np.ndarray) -> stats.Moments:
    return stats.Moments(len(x), float(x.sum()), float((x * x).sum()))


def _same(ours: stats.TestResult, theirs: object) -> None:
    assert float(ours.lift) == pytest.approx(theirs.expected, abs=1e-6)  # type: ignore[attr-defined]
    assert float(ours.ci_low) == pytest.approx(theirs.ci[0], abs=1e-6)  # type: ignore[attr-defined]
    assert float(ours.ci_high) == pytest.approx(theirs.ci[1], abs=1e-6)  # type: ignore[attr-defined]
    assert float(ours.p_value) == pytest.approx(theirs.p_value, abs=1e-6)  # type: ignore[attr-defined]


@pytest.mark.parametrize("sequential", [False, True])
def test_mean_metric_equals_gbstats(sequential: bool) -> None:
    a, b = stats.mean_estimate(_moments(POST_A)), stats.mean_estimate(_moments(POST_B))
    if sequential:
        theirs = SequentialTwoSidedTTest(
            _gb_mean(POST_A), _gb_mean(POST_B), SequentialConfig(difference_type="relative")
        ).compute_result()
        _same(stats.sequential_test(a, b), theirs)
    else:
        theirs = TwoSidedTTest(
            _gb_mean(POST_A), _gb_mean(POST_B), FrequentistConfig(difference_type="relative")
        ).compute_result()
        _same(stats.t_test(a, b), theirs)


def test_proportion_metric_equals_gbstats() -> None:
    ours = stats.t_test(
        stats.mean_estimate(_moments(BIN_A), proportion=True),
        stats.mean_estimate(_moments(BIN_B), proportion=True),
    )
    theirs = TwoSidedTTest(
        ProportionStatistic(n=800, sum=float(BIN_A.sum())),
        ProportionStatistic(n=900, sum=float(BIN_B.sum())),
        FrequentistConfig(difference_type="relative"),
    ).compute_result()
    _same(ours, theirs)


def test_ratio_metric_delta_method_equals_gbstats() -> None:
    def gb_ratio(m: np.ndarray, d: np.ndarray) -> RatioStatistic:
        return RatioStatistic(
            n=len(m), m_statistic=_gb_mean(m), d_statistic=_gb_mean(d),
            m_d_sum_of_products=float((m * d).sum()),
        )  # fmt: skip

    def ours(m: np.ndarray, d: np.ndarray) -> stats.Estimate:
        return stats.ratio_estimate(_moments(m), _moments(d), float((m * d).sum()))

    theirs = TwoSidedTTest(
        gb_ratio(POST_A, DEN_A),
        gb_ratio(POST_B, DEN_B),
        FrequentistConfig(difference_type="relative"),
    ).compute_result()
    _same(stats.t_test(ours(POST_A, DEN_A), ours(POST_B, DEN_B)), theirs)


@pytest.mark.parametrize("sequential", [False, True])
def test_cuped_equals_gbstats_regression_adjustment(sequential: bool) -> None:
    def gb(post: np.ndarray, pre: np.ndarray) -> RegressionAdjustedStatistic:
        return RegressionAdjustedStatistic(
            n=len(post), post_statistic=_gb_mean(post), pre_statistic=_gb_mean(pre),
            post_pre_sum_of_products=float((post * pre).sum()), theta=0,
        )  # fmt: skip

    gb_a, gb_b = gb(POST_A, PRE_A), gb(POST_B, PRE_B)
    theta = compute_theta(gb_a, gb_b)
    gb_a.theta = theta
    gb_b.theta = theta
    products_a, products_b = float((POST_A * PRE_A).sum()), float((POST_B * PRE_B).sum())
    ours_theta = stats.cuped_theta(
        _moments(POST_A), _moments(PRE_A), products_a, _moments(POST_B), _moments(PRE_B), products_b
    )
    assert float(ours_theta) == pytest.approx(theta, abs=1e-9)
    a = stats.cuped_estimate(_moments(POST_A), _moments(PRE_A), products_a, ours_theta)
    b = stats.cuped_estimate(_moments(POST_B), _moments(PRE_B), products_b, ours_theta)
    config = SequentialConfig if sequential else FrequentistConfig
    test = SequentialTwoSidedTTest if sequential else TwoSidedTTest
    theirs = test(gb_a, gb_b, config(difference_type="relative")).compute_result()  # type: ignore[operator]
    _same(stats.sequential_test(a, b) if sequential else stats.t_test(a, b), theirs)


def test_assignment_equals_the_growthbook_sdk_for_10000_users() -> None:
    definitions = {e.key: e for e in load()}
    served = definitions["plan-mode-hint"].served()
    uneven = sdk_experiments.ServedExperiment(
        key="three-way", variations=("control", "a", "b"), weights=(0.2, 0.3, 0.5),
        coverage=0.8, seed="another-seed", condition={"plan": {"$in": ["free", "pro"]}},
    )  # fmt: skip
    rng = np.random.default_rng(7)
    versions = ["2.9.9", "3.0.0", "3.0.0-beta.1", "v3.12.4", "10.0.1"]
    apps = ["vscode", "cursor", "jetbrains", None]
    plans = ["free", "pro", "team", None]
    in_experiment = 0
    for i in range(10_000):
        user = sdk_experiments.UserContext(
            user_id=f"user-{i}-{rng.integers(1 << 30)}" if i % 7 else f"사용자-{i}",
            client_version=versions[i % len(versions)],
            host_app=apps[i % len(apps)],
            plan=plans[(i // 3) % len(plans)],
        )
        gb = GrowthBook(attributes=user.attributes())
        for experiment in (served, uneven):
            theirs = gb.run(GbExperiment(**experiment.growthbook_fields()))  # type: ignore[arg-type]
            expected = theirs.value if theirs.inExperiment else None
            assert sdk_experiments.assign(experiment, user) == expected, (i, experiment.key)
            in_experiment += expected is not None
        gb.destroy()
    assert in_experiment > 5_000  # both experiments assign most users: the test compares variants
