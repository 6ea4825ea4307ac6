"""``caret-otel semconv``: generate and check everything derived from the registry."""

from __future__ import annotations

from pathlib import Path

import click

from caret_otel.registry.check import check
from caret_otel.registry.generate import write_all
from caret_otel.registry.model import load_registry

registry_option = click.option(
    "--registry",
    "registry_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder holding registry_manifest.yaml and registry/*.yaml "
    "[default: semantic_conventions/ of the checkout].",
)
docs_option = click.option(
    "--docs",
    "docs_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the Markdown reference goes [default: <registry>/../docs/semantic-conventions.md].",
)


@click.group()
def semconv() -> None:
    """Caret semantic conventions: the registry that drives code, privacy and docs.

    \b
    Examples:
      caret-otel semconv check        # exit 1 with file and field of every problem
      caret-otel semconv generate     # rewrite constants, policy.json, schema.json, docs
    """


@semconv.command("generate")
@registry_option
@docs_option
def generate_command(registry_dir: Path | None, docs_path: Path | None) -> None:
    """Write the Python constants, policy.json, schema.json and the Markdown reference.

    Refuses to write anything while the registry breaks a rule (run `check` to see why).

    \b
    Example:
      caret-otel semconv generate
    """
    reg = load_registry(registry_dir)
    problems = [p for p in check(reg, docs_path) if p.field != "(generated file)"]
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(1)
    written = write_all(reg, docs_path)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"{len(written)} file(s) changed; registry has {len(reg.attributes)} attributes, "
        f"{len(reg.events)} events, {len(reg.spans)} spans, {len(reg.metrics)} metrics"
    )


@semconv.command("check")
@registry_option
@docs_option
def check_command(registry_dir: Path | None, docs_path: Path | None) -> None:
    """Fail on registry rule violations and on stale generated files.

    \b
    Rules: names outside caret.* must be pinned upstream names; lower-case dot/snake
    naming; counters never end in `total`; metrics have a unit and an instrument;
    attributes have a brief and a privacy class; pseudonymous/forbidden attributes are
    never metric labels; every reference resolves; generated files are fresh.

    \b
    Example:
      caret-otel semconv check --registry semantic_conventions
    """
    reg = load_registry(registry_dir)
    problems = check(reg, docs_path)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(
        f"ok: {len(reg.attributes)} attributes, {len(reg.events)} events, "
        f"{len(reg.spans)} spans, {len(reg.metrics)} metrics; generated files are fresh"
    )
