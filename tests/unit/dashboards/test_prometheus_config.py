"""Rendering the local stack's prometheus.yml template."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from caret_otel.dashboards import prometheus_config
from caret_otel.dashboards.selfmetrics import SCRAPE_JOBS


def test_render_fills_every_placeholder(tmp_path: Path) -> None:
    text = prometheus_config.render(
        gateway="127.0.0.1:1001",
        exporter="127.0.0.1:1002",
        collector="127.0.0.1:1003",
        rules_dir=tmp_path,
    )
    assert not prometheus_config.PLACEHOLDER.search(text)
    config = yaml.safe_load(text)
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "caret-gateway": ["127.0.0.1:1001"],
        "caret-exporter": ["127.0.0.1:1002"],
        "otelcol": ["127.0.0.1:1003"],
    }
    assert set(targets) == set(SCRAPE_JOBS)
    assert config["rule_files"] == [f"{tmp_path}/*.yml"]
    assert config["storage"]["tsdb"]["out_of_order_time_window"] == "30m"


def test_defaults_render() -> None:
    text = prometheus_config.render()
    assert prometheus_config.DEFAULTS["GATEWAY_TARGET"] in text


@pytest.mark.parametrize("bad", ["", 'a"b', "a\nb", "x#y"])
def test_values_that_would_break_the_yaml_are_refused(bad: str) -> None:
    with pytest.raises(prometheus_config.TemplateError, match="GATEWAY_TARGET"):
        prometheus_config.render(gateway=bad)


def test_a_placeholder_without_a_value_is_named() -> None:
    with pytest.raises(prometheus_config.TemplateError, match=r"\$\{LOKI_TARGET\}"):
        prometheus_config.render(text="x: ${LOKI_TARGET}\n")
