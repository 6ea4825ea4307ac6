"""``caret-otel capacity``: replicas, Kafka, PostgreSQL and Prometheus sizes for a traffic.

The model (docs/capacity.md) turns *measured* figures into sizes. The figures come from
one run of ``bench/pipeline_kafka.py``, which writes them to
``bench/results/pipeline_kafka.json`` (:data:`FIGURES_PATH`): CPU seconds per 1,000
events of each tier, bytes per event in Kafka and per row in PostgreSQL, the Prometheus
series one deployment makes and the rate one PostgreSQL primary sustained. Without that
file the command refuses: it never sizes from numbers nobody measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from caret_otel.contracts.checkout import repo_root
from caret_otel.core.errors import CaretOtelError

#: Written by bench/pipeline_kafka.py; read here.
FIGURES_PATH = Path("bench") / "results" / "pipeline_kafka.json"
#: The traffic levels docs/capacity.md tabulates (events a day).
STANDARD_LEVELS = (1_000_000, 10_000_000, 100_000_000, 1_000_000_000)
SECONDS_PER_DAY = 86_400
#: Raw events are kept 30 days (exporter retention), Prometheus 365 days (deploy/).
RAW_RETENTION_DAYS = 30
PROMETHEUS_RETENTION_DAYS = 365
#: Prometheus: one sample every 15 s per series, ~1.5 bytes a sample after compression
#: (Prometheus' own sizing rule: retention x samples/s x bytes/sample).
PROMETHEUS_SAMPLE_INTERVAL_S = 15
PROMETHEUS_BYTES_PER_SAMPLE = 1.5
#: Replicas never go below two (one can fail or be rolled) and run at <= 60 % CPU.
MIN_REPLICAS = 2
TARGET_UTILISATION = 0.6
#: Kafka: replication factor 3 in production, at least two partitions per processing
#: replica (room to scale out without repartitioning), never fewer than 6.
KAFKA_REPLICATION = 3
MIN_PARTITIONS = 6


class CapacityError(CaretOtelError):
    """No measured figures (or unusable ones): the message says how to record them."""


@dataclass(frozen=True)
class Figures:
    """What one benchmark run measured (see bench/pipeline_kafka.py)."""

    source: str
    measured_at: str
    cpu_s_per_1000: Mapping[str, float]  # tier -> CPU seconds per 1,000 events
    kafka_bytes_per_event: float
    postgres_bytes_per_row: float
    prometheus_series: int
    postgres_events_per_s: float  # what one primary sustained

    @classmethod
    def load(cls, path: Path | None = None) -> Figures:
        path = path or repo_root() / FIGURES_PATH
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise CapacityError(
                f"no measured figures at {path}: run `python bench/pipeline_kafka.py` "
                "(single-tier and two-tier pipeline in one run) first; the capacity model "
                "never sizes from unmeasured defaults"
            ) from None
        except ValueError as exc:
            raise CapacityError(f"{path} is not JSON: {exc}") from None
        try:
            two_tier = data["two_tier"]
            cpu = {tier: float(v) for tier, v in two_tier["cpu_s_per_1000"].items()}
            figures = cls(
                source=str(path),
                measured_at=str(data["measured_at"]),
                cpu_s_per_1000=cpu,
                kafka_bytes_per_event=float(data["kafka_bytes_per_event"]),
                postgres_bytes_per_row=float(data["postgres_bytes_per_row"]),
                prometheus_series=int(data["prometheus_series"]),
                postgres_events_per_s=float(data["postgres_events_per_s"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CapacityError(f"{path}: missing or invalid field {exc}") from None
        if figures.prometheus_series <= 0:
            raise CapacityError(f"{path}: prometheus_series must be > 0 (rerun the benchmark)")
        for tier in ("edge", "processing", "exporter"):
            if cpu.get(tier, 0.0) <= 0.0:
                raise CapacityError(f"{path}: two_tier.cpu_s_per_1000.{tier} must be > 0")
        return figures


@dataclass(frozen=True)
class Plan:
    """Sizes for one traffic level."""

    events_per_day: int
    users: int
    peak_events_per_s: float
    replicas: Mapping[str, int]  # tier -> replicas (cores_per_replica cores each)
    kafka_partitions: int
    kafka_retention_bytes: float
    postgres_bytes_per_day: float
    postgres_raw_bytes: float
    prometheus_series: int
    prometheus_bytes: float
    postgres_primary_share: float  # peak rate / what one primary sustains

    @property
    def one_primary_suffices(self) -> bool:
        return self.postgres_primary_share <= TARGET_UTILISATION


def plan(
    figures: Figures,
    events_per_day: int,
    users: int,
    *,
    peak_factor: float = 3.0,
    cores_per_replica: float = 2.0,
    kafka_retention_days: float = 3.0,
) -> Plan:
    """Size every tier for ``events_per_day`` with peaks ``peak_factor`` x the average."""
    peak = events_per_day / SECONDS_PER_DAY * peak_factor
    replicas = {}
    for tier, cpu_s in figures.cpu_s_per_1000.items():
        cores = peak * cpu_s / 1000.0 / TARGET_UTILISATION
        replicas[tier] = max(MIN_REPLICAS, math.ceil(cores / cores_per_replica))
    partitions = max(MIN_PARTITIONS, 2 * replicas.get("processing", MIN_REPLICAS))
    per_day = events_per_day * figures.postgres_bytes_per_row
    # Every Collector, gateway and exporter replica adds its own series (target_info, self
    # metrics); the measured count is for one replica of each.
    series = figures.prometheus_series * max(replicas.values(), default=1)
    samples = series * SECONDS_PER_DAY / PROMETHEUS_SAMPLE_INTERVAL_S * PROMETHEUS_RETENTION_DAYS
    return Plan(
        events_per_day=events_per_day,
        users=users,
        peak_events_per_s=peak,
        replicas=replicas,
        kafka_partitions=partitions,
        kafka_retention_bytes=events_per_day
        * figures.kafka_bytes_per_event
        * kafka_retention_days
        * KAFKA_REPLICATION,
        postgres_bytes_per_day=per_day,
        postgres_raw_bytes=per_day * RAW_RETENTION_DAYS,
        prometheus_series=series,
        prometheus_bytes=samples * PROMETHEUS_BYTES_PER_SAMPLE,
        postgres_primary_share=peak / figures.postgres_events_per_s,
    )


def _size(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def render(plans: list[Plan], figures: Figures) -> str:
    tiers = sorted(plans[0].replicas)
    lines = [
        f"measured figures: {figures.source} ({figures.measured_at})",
        "",
        "| events/day | users | peak ev/s | "
        + " | ".join(f"{t} replicas" for t in tiers)
        + " | Kafka partitions | Kafka retention | PG per day (= per daily partition) "
        "| PG raw 30 d | Prom series | Prom disk 365 d | one PG primary |",
        "|" + "---|" * (11 + len(tiers) - 1),
    ]
    for p in plans:
        verdict = (
            f"{p.postgres_primary_share:.0%} of it"
            if p.one_primary_suffices
            else f"{p.postgres_primary_share:.0%}: shard (docs/capacity.md)"
        )
        lines.append(
            f"| {p.events_per_day:,} | {p.users:,} | {p.peak_events_per_s:,.0f} | "
            + " | ".join(str(p.replicas[t]) for t in tiers)
            + f" | {p.kafka_partitions} | {_size(p.kafka_retention_bytes)} | "
            f"{_size(p.postgres_bytes_per_day)} | {_size(p.postgres_raw_bytes)} | "
            f"{p.prometheus_series:,} | {_size(p.prometheus_bytes)} | {verdict} |"
        )
    return "\n".join(lines)


@click.command()
@click.option(
    "--events-per-day",
    type=click.IntRange(1),
    default=None,
    help="Traffic to size for; without it the four standard levels (1 M-1 B).",
)
@click.option(
    "--users",
    type=click.IntRange(1),
    default=None,
    help="Daily active users (default: events/day / 100).",
)
@click.option(
    "--peak-factor",
    type=click.FloatRange(1.0),
    default=3.0,
    show_default=True,
    help="Peak rate as a multiple of the daily average.",
)
@click.option(
    "--cores-per-replica",
    type=click.FloatRange(0.25),
    default=2.0,
    show_default=True,
    help="CPU cores of one replica of each tier.",
)
@click.option(
    "--kafka-retention-days",
    type=click.FloatRange(0.1),
    default=3.0,
    show_default=True,
    help="How long Kafka keeps data (outage budget).",
)
@click.option(
    "--figures",
    "figures_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Measured figures [default: {FIGURES_PATH}].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plans as JSON.")
def capacity(
    events_per_day: int | None,
    users: int | None,
    peak_factor: float,
    cores_per_replica: float,
    kafka_retention_days: float,
    figures_path: Path | None,
    as_json: bool,
) -> None:
    """Replicas per tier, Kafka partitions and retention size, PostgreSQL storage and
    Prometheus series/disk for a traffic, from the measured benchmark figures.

    Refuses to answer when bench/pipeline_kafka.py has recorded no figures.

    \b
    Examples:
      caret-otel capacity                                   # 1 M, 10 M, 100 M, 1 B events/day
      caret-otel capacity --events-per-day 50000000 --users 400000
      caret-otel capacity --peak-factor 5 --cores-per-replica 4 --json
    """
    try:
        figures = Figures.load(figures_path)
    except CapacityError as exc:
        raise click.ClickException(str(exc)) from None
    levels = [events_per_day] if events_per_day else list(STANDARD_LEVELS)
    plans = [
        plan(figures, level, users or max(1, level // 100), peak_factor=peak_factor,
             cores_per_replica=cores_per_replica, kafka_retention_days=kafka_retention_days)
        for level in levels
    ]  # fmt: skip
    if as_json:
        click.echo(json.dumps([p.__dict__ | {"replicas": dict(p.replicas)} for p in plans]))
    else:
        click.echo(render(plans, figures))
