"""``caret-otel dashboards``: generate and check Grafana dashboards and Prometheus rules."""

from __future__ import annotations

import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import click
import psycopg

from caret_otel.core.environment_variables import DATABASE_URL
from caret_otel.dashboards import generate, lint, panel_queries, prometheus_config
from caret_otel.dashboards import verify as verify_mod
from caret_otel.dashboards.paths import repo_root

root_option = click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The caret-otel checkout [default: found from this install or $CARET_OTEL_REPO].",
)


@click.group()
def dashboards() -> None:
    """Grafana dashboards, provisioning and Prometheus rules, generated from the registry.

    \b
    Examples:
      caret-otel dashboards generate   # rewrite grafana/dashboards/*.json and prometheus/rules/*.yml
      caret-otel dashboards check      # fresh files, lint, promtool check rules/config
      caret-otel dashboards prometheus-config --gateway 127.0.0.1:4310 > prometheus.yml
      caret-otel dashboards verify --prometheus http://127.0.0.1:9090 --database "$DATABASE_URL"
    """


@dashboards.command("generate")
@root_option
def generate_command(root: Path | None) -> None:
    """Write the dashboards JSON and the rule files that changed.

    \b
    Example:
      caret-otel dashboards generate
    """
    base = root or repo_root()
    written = generate.write_all(base)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"{len(written)} file(s) changed; {len(generate.DASHBOARDS)} dashboards, 2 rule files"
    )


@dashboards.command("check")
@root_option
def check_command(root: Path | None) -> None:
    """Fail on stale generated files, dashboard lint problems, or rules/config promtool rejects.

    \b
    Checks: generated files equal a fresh render; every panel has a title, description,
    unit and a datasource variable defaulting to a provisioned uid; SQL reads only
    analytics.*/trends.*; every PromQL parses; `promtool check rules` on the rule files
    and `promtool check config` on the rendered prometheus.yml pass.

    \b
    Example:
      caret-otel dashboards check
    """
    base = root or repo_root()
    errors = [
        f"{path} is stale; run `caret-otel dashboards generate`"
        for path in generate.stale_files(base)
    ]
    try:
        tool = lint.promtool_path()
    except lint.PromtoolMissingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("linting dashboards and parsing their PromQL ...", err=True)
    errors += [
        str(p) for p in lint.lint_all(list(generate.build_dashboards().values()), base, tool)
    ]
    click.echo("promtool check rules ...", err=True)
    rule_files = (generate.RECORDING_RULES, generate.ALERT_RULES, generate.SLO_RULES)
    errors += _promtool(tool, "rules", *(str(base / p) for p in rule_files))
    click.echo("promtool check config ...", err=True)
    with tempfile.TemporaryDirectory(prefix="caret-prom-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        text = prometheus_config.render(
            rules_dir=base / generate.RULES_DIR, text=prometheus_config.template(base)
        )
        config.write_text(text, encoding="utf-8")
        errors += _promtool(tool, "config", str(config))
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        raise SystemExit(1)
    click.echo(
        f"ok: {len(generate.DASHBOARDS)} dashboards lint clean; rules and prometheus.yml pass promtool"
    )


@dashboards.command("prometheus-config")
@click.option(
    "--gateway",
    default=prometheus_config.DEFAULTS["GATEWAY_TARGET"],
    show_default=True,
    help="host:port of the gateway's /metrics.",
)
@click.option(
    "--exporter",
    default=prometheus_config.DEFAULTS["EXPORTER_TARGET"],
    show_default=True,
    help="host:port of the business exporter's /metrics.",
)
@click.option(
    "--collector",
    default=prometheus_config.DEFAULTS["COLLECTOR_TARGET"],
    show_default=True,
    help="host:port of the Collector's own telemetry.",
)
@root_option
def prometheus_config_command(
    gateway: str, exporter: str, collector: str, root: Path | None
) -> None:
    """Print prometheus/prometheus.yml with the scrape targets filled in.

    \b
    Example:
      caret-otel dashboards prometheus-config --gateway 127.0.0.1:4310 \\
          --exporter 127.0.0.1:4320 --collector 127.0.0.1:8888 > /tmp/prometheus.yml
    """
    base = root or repo_root()
    try:
        text = prometheus_config.render(
            gateway=gateway, exporter=exporter, collector=collector,
            rules_dir=base / generate.RULES_DIR, text=prometheus_config.template(base),
        )  # fmt: skip
    except prometheus_config.TemplateError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(text, nl=False)


@dashboards.command("verify")
@click.option(
    "--prometheus",
    "prometheus_url",
    required=True,
    help="Base URL of the Prometheus the dashboards read.",
)
@click.option(
    "--database",
    "database_url",
    default=None,
    envvar=DATABASE_URL,
    help="PostgreSQL URL (a role allowed to SET ROLE caret_analyst) [env DATABASE_URL]; "
    "without it SQL panels are reported as failures.",
)
@click.option(
    "--since",
    type=click.IntRange(min=1),
    default=None,
    help="Minutes of history the queries cover [default: each dashboard's own time range, "
    "what a user sees first: 30 days for the business dashboard, so a 28-day simulation "
    "is in view].",
)
@click.option(
    "--role",
    default=verify_mod.ANALYST_ROLE,
    show_default=True,
    help="Role SQL panels run as (Grafana's datasource user); '' to keep the login role.",
)
def verify_command(
    prometheus_url: str, database_url: str | None, since: int | None, role: str
) -> None:
    """Run every panel query against real datasources; fail when one returns nothing.

    Variables take the first value Prometheus offers, as when a user opens the dashboard.
    Each panel prints ok, "no data" or the datasource's error.

    \b
    Example:
      caret-otel dashboards verify --prometheus http://127.0.0.1:9090 \\
          --database postgresql://postgres@127.0.0.1:5432/caret --since 30
    """
    time_range = panel_queries.TimeRange.last(timedelta(minutes=since)) if since else None
    models = list(generate.build_dashboards().values())
    total = sum(len(panel_queries.panel_queries(d)) for d in models)
    conn = psycopg.connect(database_url) if database_url else None
    done = 0

    def show(result: verify_mod.PanelResult) -> None:
        nonlocal done
        done += 1
        click.echo(f"[{done}/{total}] {result}", err=True)

    try:
        results = verify_mod.verify(
            models,
            verify_mod.PrometheusApi(prometheus_url),
            conn,
            time_range,
            role=role or None,
            progress=show,
        )
    finally:
        if conn is not None:
            conn.close()
    failed = [r for r in results if not r.ok]
    for result in failed:
        click.echo(f"FAIL {result}", err=True)
    click.echo(f"{len(results) - len(failed)} of {len(results)} panel queries returned data")
    if failed:
        raise SystemExit(1)


def _promtool(tool: Path, what: str, *paths: str) -> list[str]:
    result = subprocess.run(
        [str(tool), "check", what, *paths], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode == 0:
        return []
    return [
        f"promtool check {what}: {line}"
        for line in (result.stdout + result.stderr).strip().splitlines()
    ]
