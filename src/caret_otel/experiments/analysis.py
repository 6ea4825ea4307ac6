"""An experiment's result: per metric and variant, lift, interval and p-value; the
sample-ratio check; Benjamini-Hochberg over the secondary metrics; guardrails apart;
and a decision that the sample-ratio check can block.

Input: the sufficient statistics of ``analytics.experiment_variant_stats`` (one
:class:`VariantStats` per variant and metric). Variants under the k-threshold report
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import stats
from .definitions import CONTROL, Experiment, ExperimentError, Method
from .group_sequential import Look
from .metrics import CATALOG, Kind
from .stats import Estimate, Moments


@dataclass(frozen=True)
class VariantStats:
    """One row of ``analytics.experiment_variant_stats``."""

    users: int
    value_sum: float
    value_sum_squares: float
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    value_denominator_sum_products: float | None = None
    pre_sum: float | None = None
    pre_sum_squares: float | None = None
    value_pre_sum_products: float | None = None


@dataclass
class MetricResult:
    metric: str
    role: str
    variant: str
    control_users: int
    users: int
    control_value: float | None
    value: float | None
    lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    cuped: bool = False
    significant: bool = False
    note: str = ""


@dataclass
class Report:
    experiment: str
    users: dict[str, int]
    srm_p_value: float
    srm_failed: bool
    sequential: bool
    alpha: float
    method: str = Method.FIXED_HORIZON.value
    look: Look | None = None
    """Today's look (alpha spending only)."""
    results: list[MetricResult] = field(default_factory=list)
    decision: str = ""

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        if self.look is not None:
            document["look"] |= {
                "number": self.look.number,
                "fraction": self.look.fraction,
                "nominal_alpha": self.look.nominal_alpha,
                "description": self.look.describe(),
            }
        return document

    def method_line(self) -> str:
        """Which test, and for alpha spending which look."""
        if self.method == Method.ALPHA_SPENDING:
            look = self.look.describe() if self.look else "no look yet (no exposures)"
            return f"alpha spending (group-sequential, O'Brien-Fleming type): {look}"
        if self.method == Method.ALWAYS_VALID:
            return "always valid (GrowthBook's sequential test): any look, any day"
        return "fixed horizon: valid at one look, at the planned end"


def _estimates(
    kind: Kind, control: VariantStats, treatment: VariantStats, use_cuped: bool
) -> tuple[Estimate, Estimate, bool]:
    def moments(s: VariantStats) -> Moments:
        return Moments(s.users, s.value_sum, s.value_sum_squares)

    if kind is Kind.RATIO:

        def ratio(s: VariantStats) -> Estimate:
            den = Moments(s.users, s.denominator_sum or 0.0, s.denominator_sum_squares or 0.0)
            return stats.ratio_estimate(moments(s), den, s.value_denominator_sum_products or 0.0)

        return ratio(control), ratio(treatment), False
    proportion = kind is Kind.PROPORTION
    if use_cuped and control.pre_sum is not None and treatment.pre_sum is not None:

        def pre(s: VariantStats) -> Moments:
            return Moments(s.users, s.pre_sum or 0.0, s.pre_sum_squares or 0.0)

        theta = stats.cuped_theta(
            moments(control), pre(control), control.value_pre_sum_products or 0.0,
            moments(treatment), pre(treatment), treatment.value_pre_sum_products or 0.0,
            proportion=proportion,
        )  # fmt: skip
        a = stats.cuped_estimate(
            moments(control), pre(control), control.value_pre_sum_products or 0.0, theta,
            proportion=proportion,
        )  # fmt: skip
        b = stats.cuped_estimate(
            moments(treatment), pre(treatment), treatment.value_pre_sum_products or 0.0, theta,
            proportion=proportion,
        )  # fmt: skip
        return a, b, True
    return (
        stats.mean_estimate(moments(control), proportion=proportion),
        stats.mean_estimate(moments(treatment), proportion=proportion),
        False,
    )


def _test(
    method: Method, a: Estimate, b: Estimate, alpha: float, look: Look | None
) -> stats.TestResult:
    if method is Method.ALPHA_SPENDING:
        if look is None:
            raise ExperimentError("look: alpha spending needs the day's look (exposures per day)")
        return stats.group_sequential_test(a, b, look.fractions, alpha, look.spending)
    if method is Method.ALWAYS_VALID:
        return stats.sequential_test(a, b, alpha)
    return stats.t_test(a, b, alpha)


def compare(
    metric: str, role: str, variant: str, control: VariantStats | None,
    treatment: VariantStats | None, *, alpha: float, method: Method, look: Look | None = None,
    cuped: bool = True,
) -> MetricResult:  # fmt: skip
    """One variant against control on one metric."""
    if (
        control is None
        or treatment is None
        or min(control.users, treatment.users) < stats.K_THRESHOLD
    ):
        return MetricResult(
            metric, role, variant, 0, 0, None, None,
            note=f"fewer than {stats.K_THRESHOLD} users in a variant: nothing reported",
        )  # fmt: skip
    kind = CATALOG[metric].kind
    a, b, adjusted = _estimates(kind, control, treatment, cuped and CATALOG[metric].cuped)
    test = _test(method, a, b, alpha, look)
    if not bool(test.valid):
        return MetricResult(
            metric, role, variant, control.users, treatment.users,
            float(a.unadjusted_mean), float(b.unadjusted_mean),
            note="no variance or a zero control value: no test",
        )  # fmt: skip
    return MetricResult(
        metric=metric, role=role, variant=variant,
        control_users=control.users, users=treatment.users,
        control_value=float(a.unadjusted_mean), value=float(b.unadjusted_mean),
        lift=float(test.lift), ci_low=float(test.ci_low), ci_high=float(test.ci_high),
        p_value=float(test.p_value), adjusted_p_value=float(test.p_value), cuped=adjusted,
    )  # fmt: skip


def analyze(
    experiment: Experiment,
    table: Mapping[str, Mapping[str, VariantStats]],
    users: Mapping[str, int],
    *,
    cuped: bool = True,
    look: Look | None = None,
    method: Method | None = None,
) -> Report:
    """The report of ``experiment`` from ``table[metric][variant]`` and users per variant;
    ``look``: today's look (:func:`group_sequential.look`), needed by alpha spending;
    ``method``: another test than the definition's (to compare)."""
    method = method or experiment.method
    counts = [users.get(v, 0) for v in experiment.variant_keys]
    srm = stats.srm_p_value(counts, experiment.weights)
    report = Report(
        experiment=experiment.key,
        users={v: users.get(v, 0) for v in experiment.variant_keys},
        srm_p_value=srm,
        srm_failed=sum(counts) > 0 and srm < stats.SRM_P_VALUE,
        sequential=method is not Method.FIXED_HORIZON,
        alpha=experiment.alpha,
        method=method.value,
        look=look if method is Method.ALPHA_SPENDING else None,
    )
    roles: Sequence[tuple[str, Sequence[str]]] = (
        ("primary", (experiment.primary_metric,)),
        ("secondary", experiment.secondary_metrics),
        ("guardrail", experiment.guardrail_metrics),
    )
    for role, names in roles:
        for name in names:
            rows = table.get(name, {})
            for variant in experiment.variant_keys[1:]:
                report.results.append(
                    compare(
                        name,
                        role,
                        variant,
                        rows.get(CONTROL),
                        rows.get(variant),
                        alpha=experiment.alpha,
                        method=method,
                        look=report.look,
                        cuped=cuped,
                    )
                )
    secondary = [r for r in report.results if r.role == "secondary" and r.p_value is not None]
    for result, adjusted in zip(
        secondary, stats.benjamini_hochberg([r.p_value or 1.0 for r in secondary]), strict=True
    ):
        result.adjusted_p_value = adjusted
    for result in report.results:
        if result.adjusted_p_value is not None:
            result.significant = result.adjusted_p_value < experiment.alpha
    report.decision = _decide(experiment, report)
    return report


def _decide(experiment: Experiment, report: Report) -> str:
    if sum(report.users.values()) == 0:
        return "no data: no exposures recorded yet"
    if report.srm_failed:
        return (
            f"blocked: sample ratio mismatch (p = {report.srm_p_value:.2g}); the assignment or"
            " the exposure logging is broken, so no effect can be trusted"
        )
    harmful = [
        r for r in report.results
        if r.role == "guardrail" and r.significant and r.lift is not None
        and (r.lift < 0) == CATALOG[r.metric].higher_is_better
    ]  # fmt: skip
    if harmful:
        names = ", ".join(sorted({f"{r.metric} ({r.variant})" for r in harmful}))
        return f"stop: a guardrail got significantly worse: {names}"
    primary = [r for r in report.results if r.role == "primary"]
    if any(r.lift is None for r in primary):
        return "keep running: too few users in a variant"
    better = CATALOG[experiment.primary_metric].higher_is_better
    winners = [
        r for r in primary if r.significant and r.lift is not None and (r.lift > 0) == better
    ]
    losers = [r for r in primary if r.significant and r.lift is not None and (r.lift > 0) != better]
    if winners:
        best = max(winners, key=lambda r: abs(r.lift or 0.0))
        return f"ship {best.variant}: {experiment.primary_metric} {best.lift:+.1%}"
    if losers and len(losers) == len(primary):
        return f"keep control: every variant is significantly worse on {experiment.primary_metric}"
    return "keep running: no significant difference on the primary metric yet"
