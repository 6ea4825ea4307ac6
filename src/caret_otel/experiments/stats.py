"""The statistics of an experiment, on sufficient statistics (n, sums, sums of squares).

The formulas are GrowthBook's frequentist engine (``gbstats`` 0.8: ``models/statistics.py``
and ``frequentist/tests.py``), re-stated here on numpy arrays so that the same code
analyses one experiment from PostgreSQL and 500 simulated ones at once:

- per-user means, proportions and ratios (the delta method for ratio metrics);
- relative lift ``(mean_b - mean_a) / mean_a`` with the delta-method variance
  ``var_b / (mean_a^2 n_b) + var_a mean_b^2 / (mean_a^4 n_a)``;
- CUPED: ``post - theta * pre`` with ``theta = cov(post, pre) / var(pre)`` pooled over
  both variants (gbstats' ``compute_theta``);
- the fixed-horizon Welch t-test and GrowthBook's sequential test (the always-valid
  confidence sequence of Waudby-Smith et al. 2023, tuning parameter 5000);
- the group-sequential alpha-spending test (``group_sequential``; not in gbstats), the
  default for daily looks.

We do not import gbstats at run time: it pins ``numpy<2`` and ``pandas<2`` and brings
pandas and nbformat for a few dozen lines of arithmetic. ``tests/unit/experiments`` checks
these functions against gbstats to 1e-6 on fixed data. The sample-ratio test
(``scipy.stats.chisquare``) and Benjamini-Hochberg (``scipy.stats.false_discovery_control``)
come from scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from . import group_sequential

FloatArray = npt.NDArray[np.float64]
Number = float | FloatArray

SEQUENTIAL_TUNING: Final = 5000.0
"""gbstats' default: the total sample size at which the sequential interval is tightest."""
K_THRESHOLD: Final = 10
"""Variants with fewer users report nothing (as the anonymised trends)."""
SRM_P_VALUE: Final = 0.001
"""A sample-ratio p-value under this blocks a decision (GrowthBook's default)."""


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of one per-user quantity in one variant."""

    n: Number
    sum: Number
    sum_squares: Number

    @property
    def mean(self) -> Number:
        return np.divide(
            self.sum,
            self.n,
            out=np.zeros_like(np.asarray(self.sum, float)),
            where=np.asarray(self.n) > 0,
        )

    @property
    def variance(self) -> Number:
        n = np.asarray(self.n, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = (np.asarray(self.sum_squares) - np.square(self.sum) / n) / (n - 1)
        return np.where(n > 1, value, 0.0)


def proportion_variance(mean: Number) -> Number:
    """A 0/1 metric's variance as gbstats' ``ProportionStatistic`` computes it."""
    value: FloatArray = np.asarray(mean, float) * (1 - np.asarray(mean, float))
    return value


def cross_covariance(n: Number, sum_x: Number, sum_y: Number, sum_xy: Number) -> Number:
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (np.asarray(sum_xy) - np.asarray(sum_x) * np.asarray(sum_y) / n) / (n - 1)
    return np.where(n > 1, value, 0.0)


@dataclass(frozen=True)
class Estimate:
    """One variant's metric as the tests consume it."""

    n: Number
    mean: Number
    """The (CUPED-adjusted) mean."""
    variance: Number
    """Per-user variance of the (adjusted) quantity."""
    unadjusted_mean: Number


def mean_estimate(m: Moments, *, proportion: bool = False) -> Estimate:
    variance = proportion_variance(m.mean) if proportion else m.variance
    return Estimate(n=m.n, mean=m.mean, variance=variance, unadjusted_mean=m.mean)


def ratio_estimate(numerator: Moments, denominator: Moments, sum_of_products: Number) -> Estimate:
    """A ratio of sums (e.g. completed / created tasks) with the delta-method variance."""
    m_mean, d_mean = np.asarray(numerator.mean), np.asarray(denominator.mean)
    cov = cross_covariance(numerator.n, numerator.sum, denominator.sum, sum_of_products)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(
            np.asarray(denominator.sum) != 0,
            np.asarray(numerator.sum) / np.asarray(denominator.sum),
            0.0,
        )
        variance = (
            np.asarray(numerator.variance) / d_mean**2
            - 2 * cov * m_mean / d_mean**3
            + m_mean**2 * np.asarray(denominator.variance) / d_mean**4
        )
    variance = np.where((d_mean == 0) | (np.asarray(numerator.n) <= 1), 0.0, variance)
    return Estimate(n=numerator.n, mean=mean, variance=variance, unadjusted_mean=mean)


def cuped_theta(
    post_a: Moments, pre_a: Moments, products_a: Number,
    post_b: Moments, pre_b: Moments, products_b: Number,
    *, proportion: bool = False,
) -> Number:  # fmt: skip
    """gbstats' ``compute_theta``: cov(post, pre) / var(pre) over both variants pooled."""
    n = np.asarray(post_a.n) + np.asarray(post_b.n)
    post = Moments(
        n, np.asarray(post_a.sum) + post_b.sum, np.asarray(post_a.sum_squares) + post_b.sum_squares
    )
    pre = Moments(
        n, np.asarray(pre_a.sum) + pre_b.sum, np.asarray(pre_a.sum_squares) + pre_b.sum_squares
    )
    post_var = proportion_variance(post.mean) if proportion else post.variance
    pre_var = proportion_variance(pre.mean) if proportion else pre.variance
    cov = cross_covariance(n, post.sum, pre.sum, np.asarray(products_a) + products_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = cov / np.asarray(pre_var)
    return np.where((np.asarray(pre_var) == 0) | (np.asarray(post_var) == 0), 0.0, theta)


def cuped_estimate(
    post: Moments, pre: Moments, products: Number, theta: Number, *, proportion: bool = False
) -> Estimate:
    """gbstats' ``RegressionAdjustedStatistic``: the mean of ``post - theta * pre``."""
    post_var = proportion_variance(post.mean) if proportion else post.variance
    pre_var = proportion_variance(pre.mean) if proportion else pre.variance
    cov = cross_covariance(post.n, post.sum, pre.sum, products)
    variance = np.asarray(post_var) + np.square(theta) * pre_var - 2 * np.asarray(theta) * cov
    variance = np.where(np.asarray(post.n) > 1, variance, 0.0)
    mean = np.asarray(post.mean) - np.asarray(theta) * np.asarray(pre.mean)
    return Estimate(n=post.n, mean=mean, variance=variance, unadjusted_mean=post.mean)


@dataclass(frozen=True)
class TestResult:
    """Relative lift of b over a, its interval and p-value (arrays for many tests)."""

    lift: Number
    ci_low: Number
    ci_high: Number
    p_value: Number
    std_error: Number
    valid: Number
    """False where the test could not run (zero baseline, zero variance): then lift 0,
    interval [0, 0] and p-value 1, as gbstats answers."""


def _lift_and_variance(a: Estimate, b: Estimate) -> tuple[FloatArray, FloatArray, FloatArray]:
    mean_a, mean_b = np.asarray(a.mean, float), np.asarray(b.mean, float)
    unadj_a, unadj_b = np.asarray(a.unadjusted_mean, float), np.asarray(b.unadjusted_mean, float)
    n_a, n_b = np.asarray(a.n, float), np.asarray(b.n, float)
    var_a, var_b = np.asarray(a.variance, float), np.asarray(b.variance, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (mean_b - mean_a) / unadj_a
        variance = var_b / (unadj_a**2 * n_b) + var_a * unadj_b**2 / (unadj_a**4 * n_a)
        dof = (var_b / n_b + var_a / n_a) ** 2 / (
            var_b**2 / (n_b**2 * (n_b - 1)) + var_a**2 / (n_a**2 * (n_a - 1))
        )
    return lift, variance, dof


def _valid(a: Estimate, b: Estimate) -> FloatArray:
    mean_a = np.asarray(a.mean, float)
    unadj = np.asarray(a.unadjusted_mean, float)
    return (  # type: ignore[no-any-return]
        (mean_a != 0) & (unadj != 0)
        & (np.asarray(a.variance) > 0) & (np.asarray(b.variance) > 0)
    )  # fmt: skip


def _finish(
    valid: FloatArray, lift: FloatArray, low: FloatArray, high: FloatArray,
    p: FloatArray, se: FloatArray,
) -> TestResult:  # fmt: skip
    return TestResult(
        lift=np.where(valid, lift, 0.0),
        ci_low=np.where(valid, low, 0.0),
        ci_high=np.where(valid, high, 0.0),
        p_value=np.where(valid, p, 1.0),
        std_error=np.where(valid, se, 0.0),
        valid=valid,
    )


def t_test(a: Estimate, b: Estimate, alpha: float = 0.05) -> TestResult:
    """Fixed-horizon two-sided Welch t-test on the relative lift (gbstats ``TwoSidedTTest``)."""
    valid = _valid(a, b)
    lift, variance, dof = _lift_and_variance(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(variance)
        p = 2 * (1 - sps.t.cdf(np.abs(lift / se), dof))
        width = sps.t.ppf(1 - alpha / 2, dof) * se
    return _finish(valid, lift, lift - width, lift + width, np.asarray(p, float), se)


def sequential_rho(alpha: float, tuning: float = SEQUENTIAL_TUNING) -> float:
    return float(np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning))


def sequential_test(
    a: Estimate, b: Estimate, alpha: float = 0.05, tuning: float = SEQUENTIAL_TUNING
) -> TestResult:
    """GrowthBook's sequential test (``SequentialTwoSidedTTest``): an always-valid
    interval and p-value, so looking at the result every day keeps the error rate."""
    valid = _valid(a, b)
    lift, variance, _ = _lift_and_variance(a, b)
    total = np.asarray(a.n, float) + np.asarray(b.n, float)
    rho = sequential_rho(alpha, tuning)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s2 = variance * total
        width = np.sqrt(s2) * np.sqrt(
            2
            * (total * rho**2 + 1)
            * np.log(np.sqrt(total * rho**2 + 1) / alpha)
            / (total * rho) ** 2
        )
        st2 = lift**2 * total / variance
        tr2p1 = total * rho**2 + 1
        evalue = np.exp(rho**2 * st2 / (2 * tr2p1)) / np.sqrt(tr2p1)
        p = np.minimum(1 / evalue, 1.0)
    return _finish(valid, lift, lift - width, lift + width, p, np.sqrt(variance))


def srm_p_value(observed: Sequence[float], weights: Sequence[float]) -> float:
    """Chi-square goodness of fit of the users per variant against the weights."""
    counts = np.asarray(observed, dtype=float)
    total = counts.sum()
    if total == 0:
        return 1.0
    expected = np.asarray(weights, dtype=float) / float(np.sum(weights)) * total
    return float(sps.chisquare(counts, expected).pvalue)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy's ``false_discovery_control``)."""
    if not p_values:
        return []
    return [float(v) for v in sps.false_discovery_control(np.asarray(p_values, float), method="bh")]


def group_sequential_test(
    a: Estimate, b: Estimate, fractions: Sequence[float], alpha: float = 0.05,
    spending: Sequence[float] | None = None,
) -> TestResult:  # fmt: skip
    """The alpha-spending test at the last of ``fractions`` (``group_sequential``): the
    z-statistic of the relative lift (delta-method standard error) against the look's
    boundary ``c``; the repeated confidence interval ``lift +- c se`` and the repeated
    p-value (below alpha exactly when ``|z| >= c``)."""
    valid = _valid(a, b)
    lift, variance, _ = _lift_and_variance(a, b)
    bound = group_sequential.boundaries(fractions, alpha, spending)[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(variance)
        z = lift / se
        width = bound * se if np.isfinite(bound) else np.full_like(se, np.inf)
    p = group_sequential.repeated_p_value(np.where(valid, z, 0.0), fractions, alpha, spending)
    return _finish(valid, lift, lift - width, lift + width, p, se)
