"""``caret-otel experiments``: check, list, plan, analyze and export A/B experiments."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import click
import orjson
import psycopg

from caret_otel.cli.exporter import ANALYST, _resolve_url, data_dir_option, database_url_option
from caret_otel.experiments import analysis, definitions, group_sequential, planning, store
from caret_otel.experiments.definitions import Method
from caret_otel.experiments.metrics import CATALOG, Kind

dir_option = click.option(
    "--dir", "directory", type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None, help="Folder of the definitions [default: experiments/ of the checkout].",
)  # fmt: skip


def parse_true_lifts(values: tuple[str, ...]) -> tuple[tuple[str, float], ...] | None:
    """``simulate --true-lift VARIANT=LIFT`` (repeated) as (variant, lift) pairs; None when
    none is given (the experiment's default effect)."""
    if not values:
        return None
    pairs: dict[str, float] = {}
    for value in values:
        variant, sep, lift = value.partition("=")
        try:
            number = float(lift)
        except ValueError:
            number = math.nan
        if not sep or not variant or not math.isfinite(number):
            raise click.BadParameter(
                "expected VARIANT=LIFT with a number, e.g. hint=0.05", param_hint="--true-lift"
            )
        if variant in pairs:
            raise click.BadParameter("a variant appears twice", param_hint="--true-lift")
        pairs[variant] = number
    return tuple(pairs.items())


@click.group()
def experiments() -> None:
    """A/B experiments defined as code under experiments/ (docs/experiments.md).

    \b
    Examples:
      caret-otel experiments check
      caret-otel experiments list
      caret-otel experiments plan plan-mode-hint --baseline-mean 0.6 --baseline-sd 0.35
      caret-otel experiments analyze plan-mode-hint --format json
      caret-otel experiments analyze plan-mode-hint --method always-valid
      caret-otel experiments export --output .caret-otel/experiments.json
    """


@experiments.command()
@dir_option
def check(directory: Path | None) -> None:
    """Validate every definition against the schema and the rules; exit 1 on a problem.

    \b
    Examples:
      caret-otel experiments check
      caret-otel experiments check --dir path/to/experiments
    """
    found, problems = definitions.check(directory)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"{len(found)} experiment definition(s) valid")


@experiments.command(name="list")
@dir_option
def list_(directory: Path | None) -> None:
    """One line per experiment: key, status, active today, variants, dates, primary metric.

    \b
    Examples:
      caret-otel experiments list
    """
    for e in definitions.load(directory):
        variants = " / ".join(f"{v.key} {v.weight:.0%}" for v in e.variants)
        active = "active" if e.is_active() else "inactive"
        end = e.end.isoformat() if e.end else "open"
        click.echo(
            f"{e.key}  {e.status} ({active})  {variants}  {e.start}..{end}  primary: {e.primary_metric}"
        )


@experiments.command()
@click.argument("key")
@dir_option
@click.option("--baseline-mean", type=float, default=None,
              help="Control's per-user mean of the primary metric [default: the experiment's control so far].")  # fmt: skip
@click.option(
    "--baseline-sd",
    type=float,
    default=None,
    help="Its per-user standard deviation (for a ratio: the delta-method one).",
)
@click.option(
    "--eligible-share",
    type=float,
    default=1.0,
    show_default=True,
    help="Share of active users the targeting lets in.",
)
@database_url_option(ANALYST, "reads analytics.active_users and the experiment's statistics")
@data_dir_option
def plan(
    key: str, directory: Path | None, baseline_mean: float | None, baseline_sd: float | None,
    eligible_share: float, database_url: str | None, data_dir: Path | None,
) -> None:  # fmt: skip
    """Users needed for the minimum detectable effect at the definition's power, and the
    expected duration from current traffic (DAU/WAU/MAU of the last complete day).

    \b
    Examples:
      caret-otel experiments plan plan-mode-hint --baseline-mean 0.6 --baseline-sd 0.35
      caret-otel experiments plan plan-mode-hint --eligible-share 0.4
    """
    e = definitions.find(key, directory)
    metric = CATALOG[e.primary_metric]
    url: str | None = None
    if baseline_mean is None or baseline_sd is None:
        url = _resolve_url(database_url, data_dir, ANALYST)
        table, _ = _read(url, key)
        control = table.get(e.primary_metric, {}).get(definitions.CONTROL)
        if control is None:
            raise click.UsageError(
                "no baseline: the experiment's control has under 10 users; pass "
                "--baseline-mean and --baseline-sd"
            )
        estimate = analysis._estimates(metric.kind, control, control, use_cuped=False)[0]
        baseline_mean, baseline_sd = float(estimate.mean), math.sqrt(float(estimate.variance))
    rate = metric.kind is Kind.PROPORTION or e.primary_metric.endswith("_rate")
    baseline = planning.Baseline(baseline_mean, baseline_sd**2, rate=rate)
    looks = planning.planned_looks(e)
    needed = planning.required_users(
        baseline, e.minimum_detectable_effect, e.weights,
        alpha=e.alpha, target_power=e.power, method=e.method, looks=looks,
    )  # fmt: skip
    click.echo(
        f"{e.key}: primary {e.primary_metric}, baseline {baseline_mean:.4g} (sd {baseline_sd:.4g})"
    )
    test = {
        Method.FIXED_HORIZON: "fixed-horizon test, one look at the end",
        Method.ALWAYS_VALID: "always-valid sequential test, any number of looks",
        Method.ALPHA_SPENDING: f"alpha-spending test, {looks} daily looks",
    }[e.method]
    click.echo(
        f"  {needed} users in all ({test}, MDE {e.minimum_detectable_effect:+.1%},"
        f" alpha {e.alpha}, power {e.power:.0%})"
    )
    if e.method is Method.ALPHA_SPENDING and e.planned_users != needed:
        click.echo(
            f"  set `planned_users: {needed}` in {e.key}.yaml: alpha spending reads each look's"
            " information fraction from it"
            + (f" (now {e.planned_users})" if e.planned_users else " (now projected from the pace)")
        )
    try:
        url = url or _resolve_url(database_url, data_dir, ANALYST)
        reach = [r * eligible_share * e.coverage for r in store.recent_reach(url)]
    except (click.UsageError, psycopg.Error):
        reach = []
    days = planning.days_to_reach(needed, reach) if reach else None
    if not reach:
        click.echo("  duration: unknown (no database, or no traffic in analytics.active_users)")
    elif days is None:
        click.echo(
            f"  duration: not reachable at current traffic ({reach[-1]:.0f} eligible users in"
            " 28 days and no new ones joining)"
        )
    else:
        click.echo(f"  expected duration: {days} day(s) at current traffic")


def _read(url: str, key: str) -> tuple[dict[str, dict[str, analysis.VariantStats]], dict[str, int]]:
    try:
        return store.variant_stats(url, key)
    except psycopg.Error as exc:
        raise click.ClickException(
            f"cannot read the experiment views ({type(exc).__name__}); is the database "
            "migrated and reachable as caret_analyst?"
        ) from None


def _read_daily(url: str, key: str) -> tuple[list[tuple[date, int]], date]:
    try:
        return store.new_users_per_day(url, key)
    except psycopg.Error as exc:
        raise click.ClickException(
            f"cannot read analytics.experiment_exposures_daily ({type(exc).__name__})"
        ) from None


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


@experiments.command()
@click.argument("key")
@dir_option
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@click.option("--no-cuped", is_flag=True, help="Do not adjust with pre-exposure values.")
@click.option("--method", "method_name", type=click.Choice([m.value for m in Method]),
              default=None, help="Another test than the definition's, to compare "
              "[default: the definition's sequential_method, or fixed-horizon].")  # fmt: skip
@database_url_option(ANALYST, "reads the analytics.experiment_* views")
@data_dir_option
def analyze(
    key: str, directory: Path | None, output: str, no_cuped: bool,
    database_url: str | None, data_dir: Path | None, method_name: str | None = None,
) -> None:  # fmt: skip
    """The result of one experiment: per metric and variant, lift and interval, the
    sample-ratio check, the method and today's look, and the decision.

    \b
    Examples:
      caret-otel experiments analyze plan-mode-hint
      caret-otel experiments analyze plan-mode-hint --format json | jq .decision
      caret-otel experiments analyze plan-mode-hint --method always-valid
    """
    e = definitions.find(key, directory)
    method = Method(method_name) if method_name else e.method
    url = _resolve_url(database_url, data_dir, ANALYST)
    table, users = _read(url, key)
    look = None
    if method is Method.ALPHA_SPENDING:
        daily, today = _read_daily(url, key)
        look = group_sequential.look(e.start, e.end, e.planned_users, daily, today, e.alpha)
    report = analysis.analyze(e, table, users, cuped=not no_cuped, look=look, method=method)
    if output == "json":
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(render(report))


def render(report: analysis.Report) -> str:
    """The report as a text table."""
    lines = [
        f"experiment {report.experiment}: "
        + ", ".join(f"{v} {n} users" for v, n in report.users.items()),
        f"sample ratio check: p = {report.srm_p_value:.3g}"
        + ("  MISMATCH" if report.srm_failed else "  ok"),
        f"{'role':<10} {'metric':<22} {'variant':<10} {'control':>10} {'variant':>10} "
        f"{'lift':>8} {'interval':>19} {'p':>8}",
    ]
    for r in report.results:
        interval = f"[{_fmt(r.ci_low, '+.1%')}, {_fmt(r.ci_high, '+.1%')}]"
        mark = " *" if r.significant else ""
        lines.append(
            f"{r.role:<10} {r.metric:<22} {r.variant:<10} {_fmt(r.control_value, '.4g'):>10} "
            f"{_fmt(r.value, '.4g'):>10} {_fmt(r.lift, '+.1%'):>8} {interval:>19} "
            f"{_fmt(r.adjusted_p_value, '.3g'):>8}{mark}{'  ' + r.note if r.note else ''}"
        )
    lines.append(f"method: {report.method_line()}")
    lines.append(
        f"intervals: {1 - report.alpha:.0%}, {report.method}; * significant"
        " (secondary: BH-adjusted)"
    )
    lines.append(f"decision: {report.decision}")
    return "\n".join(lines)


@experiments.command()
@dir_option
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The JSON file the gateway serves (CARET_OTEL_EXPERIMENTS_FILE).")  # fmt: skip
def export(directory: Path | None, output: Path) -> None:
    """Write every definition in the form the gateway serves at GET /telemetry/experiments.

    \b
    Examples:
      caret-otel experiments export --output .caret-otel/experiments.json
    """
    document = definitions.export_document(definitions.load(directory))
    output.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    click.echo(f"wrote {len(document['experiments'])} definition(s) to {output}")
