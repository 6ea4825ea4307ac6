"""The checked-in dashboards and rules are exactly what the generator produces."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from caret_otel.cli.dashboards import dashboards
from caret_otel.dashboards import generate, prometheus_config
from caret_otel.dashboards.paths import repo_root

ROOT = repo_root()


def test_checked_in_files_are_fresh() -> None:
    assert generate.stale_files(ROOT) == [], "run `caret-otel dashboards generate`"


def test_rendering_is_deterministic() -> None:
    assert generate.render_all() == generate.render_all()


def copy_repo_parts(tmp_path: Path) -> Path:
    for part in ("grafana", "prometheus"):
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def test_check_names_a_stale_file_and_generate_repairs_it(tmp_path: Path) -> None:
    root = copy_repo_parts(tmp_path)
    stale = root / generate.dashboard_path("caret-llm-api")
    stale.write_text(stale.read_text().replace("p99 latency", "p98 latency"))

    result = CliRunner().invoke(dashboards, ["check", "--root", str(root)])
    assert result.exit_code == 1
    assert "grafana/dashboards/caret-llm-api.json is stale" in result.output

    result = CliRunner().invoke(dashboards, ["generate", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "wrote grafana/dashboards/caret-llm-api.json" in result.output
    assert CliRunner().invoke(dashboards, ["check", "--root", str(root)]).exit_code == 0


def test_check_passes_on_the_repository() -> None:
    result = CliRunner().invoke(dashboards, ["check", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert f"ok: {len(generate.DASHBOARDS)} dashboards" in result.output


def test_prometheus_config_command_fills_the_targets() -> None:
    args = [
        "prometheus-config",
        "--gateway",
        "127.0.0.1:1",
        "--exporter",
        "127.0.0.1:2",
        "--collector",
        "127.0.0.1:3",
    ]
    result = CliRunner().invoke(dashboards, [*args, "--root", str(ROOT)])
    assert result.exit_code == 0, result.output
    for target in ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"):
        assert f'["{target}"]' in result.output
    assert not prometheus_config.PLACEHOLDER.search(result.output)


def test_prometheus_config_command_rejects_a_bad_target() -> None:
    result = CliRunner().invoke(
        dashboards, ["prometheus-config", "--gateway", 'a"b', "--root", str(ROOT)]
    )
    assert result.exit_code == 2
    assert "GATEWAY_TARGET" in result.output
