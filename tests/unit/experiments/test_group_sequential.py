"""Group-sequential boundaries against published values and an independent integration
(scipy's multivariate normal), the daily look schedule and the repeated p-value."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from scipy import stats as sps

from caret_otel.cli.experiments import render
from caret_otel.experiments import analysis, definitions
from caret_otel.experiments import group_sequential as gs
from caret_otel.experiments.definitions import ExperimentError, Method

START = date(2026, 11, 1)


def test_obrien_fleming_type_boundaries_equal_the_published_values_for_5_looks() -> None:
    # Lan-DeMets O'Brien-Fleming-type spending, K = 5 equally spaced looks, two-sided
    # alpha 0.05 (Jennison and Turnbull 2000, table 7.6; gsDesign's sfLDOF)
    published = [4.877, 3.357, 2.680, 2.290, 2.031]
    ours = gs.boundaries(gs.equal_fractions(5), 0.05)
    assert ours == pytest.approx(published, abs=5e-4)


def _inside(fractions: tuple[float, ...], bounds: tuple[float, ...]) -> float:
    """P(|Z_k| < c_k for every k) by scipy's multivariate normal (Genz's algorithm)."""
    t = np.asarray(fractions)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = np.asarray(bounds)
    mvn = sps.multivariate_normal(np.zeros(len(t)), cov, seed=1, abseps=1e-7, releps=1e-7)
    return float(mvn.cdf(c, lower_limit=-c))


@pytest.mark.parametrize(
    "fractions", [(0.2, 0.4, 0.6, 0.8, 1.0), (0.1, 0.35, 0.5, 0.9, 1.0), (0.05, 0.3, 0.75)]
)
def test_each_look_spends_what_the_spending_function_allows(
    fractions: tuple[float, ...],
) -> None:
    bounds = gs.boundaries(fractions, 0.05)
    for k in range(1, len(fractions) + 1):
        crossed_by_k = 1 - _inside(fractions[:k], bounds[:k])
        assert crossed_by_k == pytest.approx(gs.spent(fractions[k - 1], 0.05), abs=2e-5)
    # the recursion itself agrees
    assert gs.crossing(fractions, bounds, 0.0).sum() == pytest.approx(
        gs.spent(fractions[-1], 0.05), abs=1e-7
    )


def test_a_final_look_with_fewer_users_than_planned_spends_all_alpha_left() -> None:
    fractions, spending = (0.3, 0.6, 0.8), (0.3, 0.6, 1.0)
    bounds = gs.boundaries(fractions, 0.05, spending)
    assert 1 - _inside(fractions, bounds) == pytest.approx(0.05, abs=2e-5)
    assert bounds[:2] == gs.boundaries((0.3, 0.6), 0.05)


def test_power_grows_with_the_drift_and_is_alpha_without_one() -> None:
    fractions = gs.equal_fractions(14)
    assert gs.power(0.0, fractions, 0.05) == pytest.approx(0.025, abs=1e-6)
    drift = gs.drift_for_power(0.8, fractions, 0.05)
    fixed = sps.norm.isf(0.025) + sps.norm.ppf(0.8)
    assert fixed < drift < 1.05 * fixed  # O'Brien-Fleming type costs a few percent at most
    assert gs.power(drift, fractions, 0.05) == pytest.approx(0.8, abs=1e-4)


def test_the_repeated_p_value_is_below_alpha_exactly_when_the_boundary_is_crossed() -> None:
    fractions = gs.equal_fractions(9)[:6]
    bound = gs.boundaries(fractions, 0.05)[-1]
    z = np.array([0.0, 1.0, bound - 1e-6, bound, bound + 1e-6, 5.0, 9.0, -bound - 0.1])
    p = gs.repeated_p_value(z, fractions, 0.05)
    assert list(p < 0.05) == [False, False, False, True, True, True, True, True]
    assert p[2] == pytest.approx(0.05, rel=1e-5)
    assert p[3] == pytest.approx(0.05, rel=1e-9)
    assert np.all(np.diff(p[:7]) <= 0)  # larger |z|, smaller p
    assert p[0] == 1.0
    assert p[6] == pytest.approx(1e-8)
    # at another level's boundary the p-value is that level (up to the interpolation)
    for level in (0.01, 0.2):
        other = gs.boundaries(fractions, level)[-1]
        assert gs.repeated_p_value(other, fractions, 0.05) == pytest.approx(level, rel=1e-6)
    middle = gs.boundaries(fractions, 0.03)[-1]
    assert gs.repeated_p_value(middle, fractions, 0.05) == pytest.approx(0.03, rel=0.02)


def _days(*counts: int) -> list[tuple[date, int]]:
    return [(START + timedelta(days=i), n) for i, n in enumerate(counts) if n]


def test_the_daily_look_reads_fractions_from_exposures_and_planned_users() -> None:
    end = START + timedelta(days=9)
    today = START + timedelta(days=3)
    look = gs.look(START, end, 1000, _days(100, 0, 200, 100), today, 0.05)
    assert look is not None
    # day 2 added nobody: the same data as day 1, no look of its own
    assert look.fractions == pytest.approx((0.1, 0.3, 0.4))
    assert (look.day, look.planned_days, look.users, look.number) == (4, 10, 400, 3)
    assert not look.final
    assert not look.projected
    assert look.boundary == gs.boundaries((0.1, 0.3, 0.4), 0.05)[-1]
    assert "day 4 of 10, look 3, 400 users of 1,000 planned users" in look.describe()
    assert "interim look" in look.describe()
    # without planned_users: projected from the pace so far to the end (400 in 4 of 10 days)
    projected = gs.look(START, end, None, _days(100, 0, 200, 100), today, 0.05)
    assert projected is not None
    assert projected.projected
    assert projected.planned_users == 1000
    assert gs.look(START, end, 1000, [], today, 0.05) is None
    with pytest.raises(ExperimentError, match="planned_users"):
        gs.look(START, None, None, _days(5), today, 0.05)


def test_the_planned_end_is_the_final_look_and_later_looks_are_flagged() -> None:
    end = START + timedelta(days=3)
    exposures = _days(100, 100, 100, 100, 100, 100)
    on_end = gs.look(START, end, 1000, exposures[:4], end, 0.05)
    assert on_end is not None
    assert on_end.final
    assert not on_end.past_end
    # fewer users than planned: the information is 40 %, the spending time 1
    assert on_end.fractions[-1] == pytest.approx(0.4)
    assert on_end.spending[-1] == 1.0
    later = gs.look(START, end, 1000, exposures, START + timedelta(days=5), 0.05)
    assert later is not None
    assert later.final
    assert later.past_end
    assert later.fractions == pytest.approx((0.1, 0.2, 0.3, 0.6))
    assert "past the planned end" in later.describe()
    # reaching the planned users ends it too, before the end date
    early = gs.look(START, None, 250, exposures[:3], START + timedelta(days=2), 0.05)
    assert early is not None
    assert early.final
    assert early.fraction == pytest.approx(1.2)


def test_analyze_reports_the_method_and_the_look_and_decides_at_the_boundary() -> None:
    experiment = definitions.find("plan-mode-hint")
    rng = np.random.default_rng(9)

    def stats_of(rate: float) -> analysis.VariantStats:
        created = rng.poisson(4.0, 3000).astype(float)
        done = rng.binomial(created.astype(int), rate).astype(float)
        return analysis.VariantStats(
            3000, done.sum(), (done**2).sum(), created.sum(), (created**2).sum(),
            (done * created).sum(),
        )  # fmt: skip

    table = {experiment.primary_metric: {"control": stats_of(0.6), "hint": stats_of(0.66)}}
    users = {"control": 3000, "hint": 3000}
    exposures = _days(*([600] * 10))
    for day, expected_final in ((2, False), (10, False), (92, True)):
        today = START + timedelta(days=day - 1)
        look = gs.look(experiment.start, experiment.end, 12_000, exposures[:day], today, 0.05)
        assert look is not None
        report = analysis.analyze(experiment, table, users, cuped=False, look=look)
        assert report.method == "alpha-spending"
        assert look.final is expected_final
        [primary] = [r for r in report.results if r.role == "primary"]
        assert primary.lift is not None
        assert primary.ci_low is not None
        assert primary.ci_high is not None
        # the repeated interval is lift +- boundary * se: significant exactly when it excludes 0
        assert primary.significant == (primary.ci_low > 0)
        assert primary.ci_high - primary.lift == pytest.approx(primary.lift - primary.ci_low)
        line = render(report)
        assert (
            f"method: alpha spending (group-sequential, O'Brien-Fleming type): day {day} of 92"
            in line
        )
        assert report.as_dict()["look"]["number"] == look.number
    # early looks (day 2: 1,200 of 12,000 planned users) ask for a far larger z
    early = gs.look(
        experiment.start, experiment.end, 12_000, exposures[:2], START + timedelta(days=1), 0.05
    )
    assert early is not None
    assert early.boundary > 4
    always_valid = analysis.analyze(experiment, table, users, method=Method.ALWAYS_VALID)
    assert always_valid.look is None
    assert "always valid" in render(always_valid)
