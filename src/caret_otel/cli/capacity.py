"""``caret-otel capacity``: replicas, Kafka, PostgreSQL and Prometheus sizes for a traffic.

The model (docs/capacity.md) turns *measured* figures into sizes. The figures come from
one run of ``bench/pipeline_kafka.py``, which writes them to
``bench/results/pipeline_kafka.json`` (:data:`FIGURES_PATH`): the same load through the
single tier, two tiers with one processing Collector and one exporter, and two tiers with
several of each in one consumer group (:data:`RUNS`); CPU seconds per 1,000 events of each
tier of that last run (:data:`SIZED_RUN`: the model never runs fewer than two replicas;
when one processing Collector with one exporter fell behind the load, the most one pair
carried also bounds those two tiers: :attr:`Figures.pair_ceiling_events_per_s`),
bytes per event in Kafka and per row in PostgreSQL, the Prometheus series one deployment
makes and the rate one PostgreSQL primary sustained. Without that file the command
refuses: it never sizes from numbers nobody measured. The same run rewrites the table of
docs/capacity.md (:func:`docs_section`, between ``<!-- bench:capacity-table -->`` markers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
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
#: Tiers that run in pairs in the two-tier topology (each processing Collector sends to its
#: own exporter), so a measured ceiling of one pair bounds both.
PAIRED_TIERS = ("processing", "exporter")
#: A run "fell behind" when it sustained less than this share of the offered rate.
KEPT_UP = 0.95
#: The runs of bench/pipeline_kafka.py (keys of its JSON), in the order it measures them;
#: the first is the baseline its ratios are against, the last the one the model sizes from.
SINGLE_TIER = "single_tier"
TWO_TIER_ONE = "two_tier_one"
SIZED_RUN = "two_tier"
RUNS = (SINGLE_TIER, TWO_TIER_ONE, SIZED_RUN)
#: The section of docs/capacity.md that bench/pipeline_kafka.py rewrites from the figures.
DOCS_SECTION = "capacity-table"
DOCS_PATH = Path("docs") / "capacity.md"


class CapacityError(CaretOtelError):
    """No measured figures (or unusable ones): the message says how to record them."""


@dataclass(frozen=True)
class Run:
    """One topology of the benchmark run: what it sustained and what each tier cost."""

    topology: str
    events_per_s: float
    p99_latency_s: float
    cpu_s_per_1000: Mapping[str, float]  # tier -> CPU seconds per 1,000 events

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_s_per_1000.values())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            topology=str(data["topology"]),
            events_per_s=float(data["events_per_s"]),
            p99_latency_s=float(data["p99_latency_s"]),
            cpu_s_per_1000={tier: float(v) for tier, v in data["cpu_s_per_1000"].items()},
        )


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
    machine: str = ""  # the machine line of the run (cores, Python, commit)
    runs: Mapping[str, Run] = field(default_factory=dict)  # RUNS present in the file
    offered: Mapping[str, float] = field(default_factory=dict)  # the benchmark's load

    @property
    def pair_ceiling_events_per_s(self) -> float | None:
        """The rate one processing Collector with its exporter is sized for, when a pair's
        rate rather than its CPU bounds it: only if the one-of-each run fell behind the
        offered load, and then the most any measured pair carried (that run's rate, or the
        last run's rate shared by its pairs). None when one pair kept up (CPU sizes then)."""
        one, offered = self.runs.get(TWO_TIER_ONE), self.offered.get("rate")
        if one is None or offered is None or one.events_per_s >= KEPT_UP * offered:
            return None
        sized, pairs = self.runs.get(SIZED_RUN), self.offered.get("replicas", 0.0)
        shared = sized.events_per_s / pairs if sized is not None and pairs >= 1 else 0.0
        return max(one.events_per_s, shared)

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
            two_tier = data[SIZED_RUN]
            cpu = {tier: float(v) for tier, v in two_tier["cpu_s_per_1000"].items()}
            runs = {
                key: Run.from_json(data[key]) for key in RUNS if "topology" in data.get(key, {})
            }
            figures = cls(
                source=str(path),
                measured_at=str(data["measured_at"]),
                cpu_s_per_1000=cpu,
                kafka_bytes_per_event=float(data["kafka_bytes_per_event"]),
                postgres_bytes_per_row=float(data["postgres_bytes_per_row"]),
                prometheus_series=int(data["prometheus_series"]),
                postgres_events_per_s=float(data["postgres_events_per_s"]),
                machine=str(data.get("machine", "")),
                runs=runs,
                offered={k: float(v) for k, v in data.get("load", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CapacityError(f"{path}: missing or invalid field {exc}") from None
        if figures.prometheus_series <= 0:
            raise CapacityError(f"{path}: prometheus_series must be > 0 (rerun the benchmark)")
        for tier in ("edge", "processing", "exporter"):
            if cpu.get(tier, 0.0) <= 0.0:
                raise CapacityError(f"{path}: {SIZED_RUN}.cpu_s_per_1000.{tier} must be > 0")
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
    ceiling = figures.pair_ceiling_events_per_s
    for tier, cpu_s in figures.cpu_s_per_1000.items():
        cores = peak * cpu_s / 1000.0 / TARGET_UTILISATION
        replicas[tier] = max(MIN_REPLICAS, math.ceil(cores / cores_per_replica))
        if ceiling is not None and tier in PAIRED_TIERS:  # not CPU but one pair's rate bounds it
            replicas[tier] = max(replicas[tier], math.ceil(peak / TARGET_UTILISATION / ceiling))
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


def primary_limit_events_per_day(figures: Figures, peak_factor: float = 3.0) -> float:
    """The traffic (events a day) at which the peak takes :data:`TARGET_UTILISATION` of the
    rate one PostgreSQL primary sustained in the benchmark."""
    return TARGET_UTILISATION * figures.postgres_events_per_s * SECONDS_PER_DAY / peak_factor


def table(plans: list[Plan]) -> list[str]:
    """The plans as a Markdown table, one row per traffic level."""
    tiers = sorted(plans[0].replicas)
    lines = [
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
    return lines


def render(plans: list[Plan], figures: Figures, peak_factor: float = 3.0) -> str:
    limit = primary_limit_events_per_day(figures, peak_factor)
    return "\n".join(
        [
            f"measured figures: {figures.source} ({figures.measured_at})",
            "",
            *table(plans),
            "",
            f"one PostgreSQL primary: up to about {limit:,.0f} events/day at peaks "
            f"{peak_factor:g} x the average ({TARGET_UTILISATION:.0%} of the "
            f"{figures.postgres_events_per_s:,.0f} events/s it sustained in the benchmark)",
        ]
    )


def _costs(cpu: Mapping[str, float]) -> str:
    return ", ".join(f"{tier} {value:.2f}" for tier, value in sorted(cpu.items()))


def docs_section(figures: Figures) -> str:
    """The measured part of docs/capacity.md: the table for the four standard levels with
    the command's defaults, the costs behind it and where one primary stops - all from
    ``figures``, so the page is rewritten whenever the benchmark is rerun."""
    plans = [plan(figures, level, level // 100) for level in STANDARD_LEVELS]
    limit = primary_limit_events_per_day(figures)
    load = figures.offered
    offered = (
        f"{load['rate']:,.0f} events/s offered for {load['duration_s']:.0f} s through each "
        "topology, "
        if {"rate", "duration_s"} <= load.keys()
        else ""
    )
    sized = figures.runs.get(SIZED_RUN)
    basis = sized.topology if sized else SIZED_RUN
    lines = [
        f"From one run of the benchmark ({offered}measured {figures.measured_at}; the figures",
        "are in `bench/results/pipeline_kafka.json`, the run in docs/benchmarks.md),",
        "`caret-otel capacity` with its defaults (peaks 3 x the average, 2 cores a replica,",
        "Kafka keeps 3 days, replication factor 3) prints:",
        "",
        *table(plans),
        "",
        "The replicas come from each tier's CPU seconds per 1,000 events in the last run "
        f"({basis}): {_costs(figures.cpu_s_per_1000)}. All runs of the same benchmark, "
        "with ratios against the single tier of the same run:",
        "",
        "| run | sustained events/s | p99 | CPU s per 1,000 events | CPU total "
        "| vs single tier: events/s, p99, CPU |",
        "|---|---|---|---|---|---|",
    ]
    baseline = figures.runs.get(SINGLE_TIER)
    for run in figures.runs.values():
        ratios = (
            f"{run.events_per_s / baseline.events_per_s:.2f}x, "
            f"{run.p99_latency_s / baseline.p99_latency_s:.1f}x, "
            f"{run.cpu_total / baseline.cpu_total:.2f}x"
            if baseline is not None
            else "-"
        )
        lines.append(
            f"| {run.topology} | {run.events_per_s:,.0f} | {run.p99_latency_s:.2f} s | "
            f"{_costs(run.cpu_s_per_1000)} | {run.cpu_total:.2f} | {ratios} |"
        )
    lines.append("")
    ceiling = figures.pair_ceiling_events_per_s
    if ceiling is not None:
        lines += [
            "One processing Collector with one exporter fell behind the offered load, so a "
            "pair's rate, not its CPU, bounds that tier: the processing and exporter replicas "
            f"are also at least peak / 60 % / {ceiling:,.0f} events/s, the most one measured "
            "pair carried (alone, or as its share of the last run).",
            "",
        ]
    lines += [
        f"Kafka stores {figures.kafka_bytes_per_event:,.0f} bytes an event (zstd), PostgreSQL "
        f"{figures.postgres_bytes_per_row:,.0f} bytes a row of `raw.events` with its indexes; "
        f"one deployment makes {figures.prometheus_series:,} Prometheus series.",
        "",
        f"**Where one PostgreSQL primary stops:** at about **{limit / 1e6:,.0f} M events a "
        f"day** with these defaults (peak = 3 x {limit / 1e6:,.0f} M / 86,400 = "
        f"{limit * 3 / SECONDS_PER_DAY:,.0f} events/s = {TARGET_UTILISATION:.0%} of the "
        f"{figures.postgres_events_per_s:,.0f} events/s one primary took in the benchmark).",
    ]
    if figures.machine:
        lines += ["", figures.machine]
    return "\n".join(lines)


def write_docs(figures: Figures, path: Path | None = None) -> None:
    """Replace the ``DOCS_SECTION`` of docs/capacity.md with :func:`docs_section`."""
    path = path or repo_root() / DOCS_PATH
    start, end = f"<!-- bench:{DOCS_SECTION} -->", f"<!-- /bench:{DOCS_SECTION} -->"
    text = path.read_text(encoding="utf-8")
    before, found, rest = text.partition(start)
    if not found or end not in rest:
        raise CapacityError(f"{path} has no {start} ... {end} section to rewrite")
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n{docs_section(figures)}\n{end}{after}", encoding="utf-8")


def docs_written(path: Path | None = None) -> str:
    """The ``DOCS_SECTION`` of docs/capacity.md as it stands (for the check that it is
    :func:`docs_section` of the committed figures)."""
    path = path or repo_root() / DOCS_PATH
    start, end = f"<!-- bench:{DOCS_SECTION} -->", f"<!-- /bench:{DOCS_SECTION} -->"
    text = path.read_text(encoding="utf-8")
    return text.partition(start)[2].partition(end)[0].strip("\n")


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
        click.echo(render(plans, figures, peak_factor))
