"""`caret-otel capacity`: refuses without measured figures; sizes from them when present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from caret_otel.cli.capacity import (
    DOCS_SECTION,
    MIN_PARTITIONS,
    MIN_REPLICAS,
    STANDARD_LEVELS,
    TARGET_UTILISATION,
    CapacityError,
    Figures,
    capacity,
    docs_section,
    docs_written,
    plan,
    primary_limit_events_per_day,
    write_docs,
)


def run(topology: str, events_per_s: float, p99: float, cpu: dict[str, float]) -> dict[str, object]:
    return {"topology": topology, "events_per_s": events_per_s, "p99_latency_s": p99,
            "cpu_s_per_1000": cpu}  # fmt: skip


# A figures file in the shape bench/pipeline_kafka.py writes (test inputs, not measurements).
FIGURES = {
    "measured_at": "2026-12-03T00:00:00+00:00",
    "machine": "_Measured on a test machine._",
    "load": {"rate": 800.0, "duration_s": 30.0, "batch": 20.0, "replicas": 2.0},
    "single_tier": run("single tier", 800.0, 0.5, {"collector": 1.0, "exporter": 0.5}),
    "two_tier_one": run("two tiers, 1 + 1", 780.0, 2.0,
                        {"edge": 0.5, "processing": 0.6, "exporter": 1.9}),
    "two_tier": run("two tiers, 2 + 2", 760.0, 4.0,
                    {"edge": 0.5, "processing": 0.8, "exporter": 2.0}),
    "kafka_bytes_per_event": 120.0,
    "postgres_bytes_per_row": 600.0,
    "prometheus_series": 1000,
    "postgres_events_per_s": 5000.0,
}  # fmt: skip


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
    broken = {**FIGURES, "two_tier": run("two tiers", 1.0, 1.0, {"edge": 1.0})}
    path.write_text(json.dumps(broken))
    with pytest.raises(CapacityError, match=r"two_tier\.cpu_s_per_1000\.processing must be > 0"):
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
    assert "one PostgreSQL primary: up to about 86,400,000 events/day" in result.output


def test_the_model_sizes_from_the_last_run_with_ratios_against_the_single_tier(
    figures_file: Path,
) -> None:
    figures = Figures.load(figures_file)
    assert figures.cpu_s_per_1000 == {"edge": 0.5, "processing": 0.8, "exporter": 2.0}
    assert list(figures.runs) == ["single_tier", "two_tier_one", "two_tier"]
    assert figures.runs["two_tier"].cpu_total == pytest.approx(3.3)
    # 0.6 x 5,000 events/s x 86,400 s / peak factor 3
    assert primary_limit_events_per_day(figures) == pytest.approx(86_400_000)
    text = docs_section(figures)
    assert "800 events/s offered for 30 s" in text
    assert "in the last run (two tiers, 2 + 2): edge 0.50, exporter 2.00, processing 0.80" in text
    assert (
        "| single tier | 800 | 0.50 s | collector 1.00, exporter 0.50 | 1.50 | 1.00x, 1.0x, 1.00x |"
        in text
    )
    assert (
        "| two tiers, 1 + 1 | 780 | 2.00 s | edge 0.50, exporter 1.90, processing 0.60 | 3.00 | 0.97x, 4.0x, 2.00x |"
        in text
    )
    assert "| two tiers, 2 + 2 | 760 | 4.00 s |" in text
    assert "0.95x, 8.0x, 2.20x |" in text
    assert "at about **86 M events a day**" in text
    assert text.endswith("_Measured on a test machine._")


def test_write_docs_replaces_only_its_section(figures_file: Path, tmp_path: Path) -> None:
    page = tmp_path / "capacity.md"
    start, end = f"<!-- bench:{DOCS_SECTION} -->", f"<!-- /bench:{DOCS_SECTION} -->"
    page.write_text(f"# Title\n\n{start}\nold table\n{end}\n\nProse after.\n")
    figures = Figures.load(figures_file)
    write_docs(figures, page)
    written = page.read_text()
    assert written.startswith(f"# Title\n\n{start}\n")
    assert written.endswith(f"\n{end}\n\nProse after.\n")
    assert "old table" not in written
    assert docs_written(page) == docs_section(figures)
    page.write_text("# no section\n")
    with pytest.raises(CapacityError, match="no <!-- bench:capacity-table -->"):
        write_docs(figures, page)


def test_docs_capacity_md_is_derived_from_the_committed_figures() -> None:
    """docs/capacity.md's table is what the committed benchmark figures give (rerunning
    bench/pipeline_kafka.py rewrites both)."""
    assert docs_written() == docs_section(Figures.load())


def test_a_pair_that_fell_behind_bounds_processing_and_exporter_replicas(
    tmp_path: Path, figures_file: Path
) -> None:
    # One processing Collector + exporter sustained 300 of 800 events/s offered; two pairs
    # kept up at 760 (380 a pair): the pair rate the model trusts is 380 events/s.
    data = {**FIGURES, "two_tier_one": run("two tiers, 1 + 1", 300.0, 90.0, {"edge": 0.5})}
    path = tmp_path / "behind.json"
    path.write_text(json.dumps(data))
    behind = Figures.load(path)
    assert behind.pair_ceiling_events_per_s == pytest.approx(380.0)
    sized = plan(behind, 100_000_000, 1_000_000)
    by_rate = math.ceil(sized.peak_events_per_s / TARGET_UTILISATION / 380.0)
    assert sized.replicas["processing"] == by_rate
    assert sized.replicas["exporter"] == by_rate
    by_cpu = plan(Figures.load(figures_file), 100_000_000, 1_000_000)
    assert by_rate > by_cpu.replicas["processing"]
    assert sized.replicas["edge"] == by_cpu.replicas["edge"]  # not a paired tier
    assert "the most one measured pair carried" in docs_section(behind)
    # The fixture's one-of-each run kept up (780 of 800 offered): CPU alone sizes.
    assert Figures.load(figures_file).pair_ceiling_events_per_s is None
