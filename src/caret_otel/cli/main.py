"""Entry point of the ``caret-otel`` command: one group, one sub-command per module."""

from __future__ import annotations

from typing import Any

import click

from caret_otel.core.errors import CaretOtelError
from caret_otel.core.version import __version__


class CaretOtelGroup(click.Group):
    """The one CLI error handler: any :class:`CaretOtelError` a command lets through is
    printed as ``Error: <message>`` with exit status 1, never as a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CaretOtelError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(
    cls=CaretOtelGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="caret-otel")
def cli() -> None:
    """caret-otel: Caret telemetry, OpenTelemetry-native, privacy first.

    \b
    Examples:
      caret-otel demo                 # whole pipeline, simulated traffic, report
      caret-otel semconv check        # registry and generated files agree
      caret-otel generate --check     # every generated file is fresh
      caret-otel privacy scrub --input events.jsonl --format events
    """


def _register_commands() -> None:
    # Imported here so `caret-otel --help` lists every command from one place.
    from caret_otel.cli.behaviour import churn, funnel, paths
    from caret_otel.cli.capacity import capacity
    from caret_otel.cli.dashboards import dashboards
    from caret_otel.cli.experiments import experiments
    from caret_otel.cli.exporter import db, exporter, forget, report, retention
    from caret_otel.cli.gateway import gateway
    from caret_otel.cli.generate import generate
    from caret_otel.cli.privacy import privacy
    from caret_otel.cli.sdk import sdk
    from caret_otel.cli.semconv import semconv
    from caret_otel.cli.stack import demo, env, replay, simulate, up

    cli.add_command(capacity)
    cli.add_command(semconv)
    cli.add_command(generate)
    for stack_command in (up, demo, simulate, replay, env):
        cli.add_command(stack_command)
    cli.add_command(privacy)
    cli.add_command(dashboards)
    cli.add_command(sdk)
    cli.add_command(gateway)
    cli.add_command(experiments)
    for command in (exporter, db, retention, forget, report):
        cli.add_command(command)
    cli.add_command(funnel)
    cli.add_command(paths)
    cli.add_command(churn)


def main() -> None:
    _register_commands()
    cli()
