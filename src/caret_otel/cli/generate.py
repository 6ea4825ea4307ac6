"""``caret-otel generate``: run every generator of the checkout, or check they are fresh.

One command for every file derived from code or from the registry, so nothing generated
can go stale unnoticed (``make generate`` writes, ``make check`` runs ``--check``):

- the semantic-conventions runtime package (constants, ``policy.json``, ``schema.json``),
  ``docs/semantic-conventions.md`` and the Collector's privacy pass, from
  ``semantic_conventions/`` (:mod:`caret_otel.registry`);
- the Grafana dashboards, the Prometheus recording and alert rules and their docs, from
  :mod:`caret_otel.dashboards`.
"""

from __future__ import annotations

from pathlib import Path

import click

from caret_otel.contracts.checkout import repo_root
from caret_otel.core.errors import InputError
from caret_otel.dashboards import generate as dashboards_generate
from caret_otel.registry import generate as registry_generate
from caret_otel.registry.check import check as check_registry
from caret_otel.registry.model import load_registry

GENERATED_MARK = "(generated file)"


def expected_files(root: Path) -> dict[Path, str]:
    """Every generated file of the checkout at ``root`` and its expected content.

    Raises :class:`InputError` listing every rule the registry breaks: nothing is
    generated from a broken registry.
    """
    reg = load_registry(root / "semantic_conventions")
    problems = [p for p in check_registry(reg) if p.field != GENERATED_MARK]
    if problems:
        listed = "\n".join(f"  {problem}" for problem in problems)
        raise InputError(f"the registry breaks {len(problems)} rule(s):\n{listed}")
    files = dict(registry_generate.render_all(reg))
    for relative, text in dashboards_generate.render_all().items():
        files[root / relative] = text
    return files


def stale(files: dict[Path, str]) -> list[Path]:
    """The files that are missing or differ from their expected content."""
    return [
        path
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


@click.command("generate")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 naming every generated file that is stale or missing.",
)
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The checkout [default: found from this installation or the working directory].",
)
def generate(check_only: bool, root: Path | None) -> None:
    """Run every generator: semconv package, docs, Collector privacy pass, dashboards, rules.

    \b
    Examples:
      caret-otel generate            # rewrite whatever changed
      caret-otel generate --check    # CI: fail when a generated file is stale
    """
    root = root or repo_root()
    files = expected_files(root)
    outdated = stale(files)
    if check_only:
        for path in outdated:
            click.echo(f"stale: {path.relative_to(root)}", err=True)
        if outdated:
            raise click.ClickException(
                f"{len(outdated)} generated file(s) are stale; run: caret-otel generate"
            )
        click.echo(f"ok: {len(files)} generated files are fresh")
        return
    for path in outdated:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        click.echo(f"wrote {path.relative_to(root)}")
    click.echo(f"{len(outdated)} of {len(files)} generated file(s) changed")
