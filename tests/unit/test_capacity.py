"""`caret-otel capacity`: refuses without measured figures; sizes from them when present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from caret_otel.cli.capacity import (
    MIN_PARTITIONS,
    MIN_REPLICAS,
    STANDARD_LEVELS,
    TARGET_UTILISATION,
    CapacityError,
    Figures,
    capacity,
    plan,
)

# A figures file in the shape bench/pipeline_kafka.py writes (test inputs, not measurements).
FIGURES = {
    "measured_at": "2026-12-03T00:00:00+00:00",
    "two_tier": {"cpu_s_per_1000": {"edge": 0.5, "processing": 0.8, "exporter": 2.0}},
    "kafka_bytes_per_event": 120.0,
    "postgres_bytes_per_row": 600.0,
    "prometheus_series": 1000,
    "postgres_events_per_s": 5000.0,
}


@pytest.fixture
def figures_file(tmp_path: Path) -> Path:
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(FIGURES))
    return path


def test_refuses_without_measured_figures(tmp_path: Path) -> None:
    result = CliRunner().invoke(capacity, ["--figures", str(tmp_path / "missing.json")])
    assert result.exit_code == 1
    assert "no measured figures" in result.output
    assert "bench/pipeline_kafka.py" in result.output


def test_refuses_incomplete_figures(tmp_path: Path) -> None:
    path = tmp_path / "figures.json"
    path.write_text(json.dumps({**FIGURES, "two_tier": {"cpu_s_per_1000": {"edge": 1.0}}}))
    with pytest.raises(CapacityError, match="processing must be > 0"):
        Figures.load(path)


def test_replicas_partitions_and_storage_follow_the_figures(figures_file: Path) -> None:
    figures = Figures.load(figures_file)
    sized = plan(figures, 100_000_000, 1_000_000, peak_factor=3.0, cores_per_replica=2.0)
    peak = 100_000_000 / 86_400 * 3.0
    assert sized.peak_events_per_s == pytest.approx(peak)
    exporter_cores = peak * 2.0 / 1000 / TARGET_UTILISATION
    assert sized.replicas["exporter"] == max(MIN_REPLICAS, math.ceil(exporter_cores / 2.0))
    assert sized.kafka_partitions == max(MIN_PARTITIONS, 2 * sized.replicas["processing"])
    assert sized.postgres_bytes_per_day == pytest.approx(100_000_000 * 600.0)
    assert sized.postgres_raw_bytes == pytest.approx(30 * 100_000_000 * 600.0)
    assert sized.kafka_retention_bytes == pytest.approx(100_000_000 * 120.0 * 3.0 * 3)
    assert sized.postgres_primary_share == pytest.approx(peak / 5000.0)


def test_one_primary_stops_somewhere_between_the_levels(figures_file: Path) -> None:
    figures = Figures.load(figures_file)
    plans = [plan(figures, level, level // 100) for level in STANDARD_LEVELS]
    assert plans[0].one_primary_suffices
    assert not plans[-1].one_primary_suffices
    replicas = [p.replicas["processing"] for p in plans]
    assert replicas == sorted(replicas)


def test_command_prints_the_four_levels(figures_file: Path) -> None:
    result = CliRunner().invoke(capacity, ["--figures", str(figures_file)])
    assert result.exit_code == 0, result.output
    for level in STANDARD_LEVELS:
        assert f"| {level:,} |" in result.output
    assert "shard" in result.output
    one = CliRunner().invoke(capacity, ["--figures", str(figures_file), "--json",
                                        "--events-per-day", "5000000"])  # fmt: skip
    assert json.loads(one.output)[0]["events_per_day"] == 5_000_000
