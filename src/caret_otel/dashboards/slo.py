"""*SLOs*: how much error budget is left, how fast it burns, when it runs out.

Source: the SLO recording rules of ``prometheus/rules/caret-slo.yml``
(:func:`caret_otel.dashboards.rules.slo_recording_rules`), so the numbers are exactly
those the burn-rate alerts compare. One row per view, one panel per SLO.

- *Error budget left*: 1 - (error ratio over the budget period / budget), the period's
  error ratio estimated as the average of the recorded 1 h ratios over 30 days;
- *Burn rate*: error ratio / budget over 1 h, 6 h, 1 d and 3 d (1 = the budget lasts
  exactly the period; the fast-burn page needs 14.4 over 1 h);
- *Time to exhaustion*: budget left x period / the 1 h burn rate.
"""

from __future__ import annotations

from typing import Any, Final

from caret_otel.dashboards import promql as q
from caret_otel.dashboards import rules
from caret_otel.dashboards.board import Board
from caret_otel.dashboards.datasources import PROMETHEUS
from caret_otel.dashboards.panels import Prom, graph, single

UID: Final = "caret-slo"
BURN_WINDOWS: Final = ("1h", "6h", "1d", "3d")


def _worst(slo: rules.Slo, expr: str, *, lowest: bool) -> str:
    """Per-group SLOs (provider errors) reduce to the worst group for a single number."""
    if not slo.by:
        return expr
    return f"{'min' if lowest else 'max'}({expr})"


def burn_rate(slo: rules.Slo, window: str) -> str:
    """Error ratio over ``window`` / the error budget."""
    return f"{slo.record(window)} / {slo.budget:.6g}"


def budget_left(slo: rules.Slo) -> str:
    """Share of the period's error budget not yet spent (negative: overspent)."""
    spent = f"avg_over_time({slo.record('1h')}[{rules.SLO_PERIOD}]) / {slo.budget:.6g}"
    return f"1 - {spent}"


def time_to_exhaustion(slo: rules.Slo) -> str:
    """Seconds until the budget is gone at the current (1 h) burn rate; 0 when already
    spent, +Inf while nothing burns."""
    left = f"clamp_min({budget_left(slo)}, 0)"
    return f"{left} * {rules.SLO_PERIOD_SECONDS} / ({burn_rate(slo, '1h')})"


def _legend(slo: rules.Slo) -> str:
    return " ".join("{{" + label + "}}" for label in slo.by)


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · SLOs",
        f"Error budgets ({rules.SLO_PERIOD}) of the plan's KPIs: budget left, burn rate and time to "
        "exhaustion, from the same recording rules as the burn-rate alerts.",
        [PROMETHEUS],
        time_from="now-7d",
    )
    slos = rules.slos()
    board.row(
        f"Error budget left ({rules.SLO_PERIOD})",
        *(
            single(
                slo.title,
                f"Share of the {rules.SLO_PERIOD} error budget ({slo.budget:.0%} {slo.what}) not yet "
                "spent; below 0 the objective is missed"
                + (" (the worst group)." if slo.by else "."),
                "percentunit",
                Prom(_worst(slo, budget_left(slo), lowest=True)),
            )
            for slo in slos
        ),
    )
    board.row(
        "Time to exhaustion",
        *(
            single(
                f"{slo.title}: budget gone in",
                "At the last hour's burn rate, how long the rest of the error budget lasts "
                "(infinite while nothing burns)" + (" (the worst group)." if slo.by else "."),
                "s",
                Prom(_worst(slo, time_to_exhaustion(slo), lowest=True)),
            )
            for slo in slos
        ),
    )
    board.row(
        "Burn rate",
        *(
            graph(
                f"{slo.title} burn rate",
                f"Error ratio / budget over {', '.join(BURN_WINDOWS)}: 1 spends the budget in exactly "
                f"{rules.SLO_PERIOD}; a page needs 14.4 (1 h and 5 m) or 6 (6 h and 30 m), a ticket "
                "3 (1 d and 2 h) or 1 (3 d and 6 h).",
                "short",
                *(
                    Prom(burn_rate(slo, window), f"{window} {_legend(slo)}".strip())
                    for window in BURN_WINDOWS
                ),
            )
            for slo in slos
        ),
    )
    board.row(
        "Error ratio",
        *(
            graph(
                f"{slo.title}: bad share",
                f"Share of {slo.what} over 5 m and 1 h, against the budget of {slo.budget:.0%}.",
                "percentunit",
                Prom(slo.record("5m"), f"5m {_legend(slo)}".strip()),
                Prom(slo.record("1h"), f"1h {_legend(slo)}".strip()),
                Prom(f"{q.sum_by((), slo.record('1h'))} * 0 + {slo.budget:.6g}", "budget"),
            )
            for slo in slos
        ),
    )
    return board.build()
