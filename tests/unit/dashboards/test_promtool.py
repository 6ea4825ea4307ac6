"""``promtool`` accepts our config and rules, and the rule unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

from caret_otel.dashboards import generate, lint, prometheus_config
from caret_otel.dashboards.paths import repo_root

ROOT = repo_root()


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(lint.promtool_path()), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_rendered_prometheus_config_passes_check_config(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        prometheus_config.render(
            gateway="127.0.0.1:1111", exporter="127.0.0.1:2222", collector="127.0.0.1:3333"
        )
    )
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every rule file (recording, alerts, SLOs) is picked up through the rule_files glob.
    assert "SUCCESS: 3 rule files found" in result.stdout


def test_rule_files_pass_check_rules() -> None:
    rule_files = (generate.RECORDING_RULES, generate.ALERT_RULES, generate.SLO_RULES)
    paths = [str(ROOT / p) for p in rule_files]
    result = promtool("check", "rules", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    tests = sorted((ROOT / "prometheus" / "tests").glob("*.yml"))
    assert len(tests) >= 2
    result = promtool("test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_exercised_firing_and_quiet() -> None:
    """Each alert of the rule file appears in the unit tests with and without alerts."""
    import yaml

    rules = yaml.safe_load((ROOT / generate.ALERT_RULES).read_text())
    names = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    cases = yaml.safe_load((ROOT / "prometheus" / "tests" / "alerts_test.yml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"


def test_every_recording_rule_is_tested() -> None:
    import yaml

    rules = yaml.safe_load((ROOT / generate.RECORDING_RULES).read_text())
    names = {rule["record"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((ROOT / "prometheus" / "tests" / "recording_test.yml").read_text())
    tested = {case["expr"] for test in cases["tests"] for case in test.get("promql_expr_test", [])}
    assert names - tested == set()


def test_every_slo_alert_is_exercised_firing_and_quiet() -> None:
    """Each burn-rate alert appears in ``slo_test.yml`` firing and staying quiet."""
    import yaml

    rules = yaml.safe_load((ROOT / generate.SLO_RULES).read_text())
    names = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    assert len(names) == 8  # four SLOs, fast and slow burn each
    cases = yaml.safe_load((ROOT / "prometheus" / "tests" / "slo_test.yml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    assert names - firing == set(), "SLO alerts never tested firing"
    assert names - quiet == set(), "SLO alerts never tested staying quiet"
