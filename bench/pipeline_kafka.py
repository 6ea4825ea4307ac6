"""Benchmark: the pipeline through the Kafka tier beside the single-tier pipeline, in one run.

    .venv/bin/python bench/pipeline_kafka.py                      # rewrites its docs sections and
                                                                  # bench/results/pipeline_kafka.json
    .venv/bin/python bench/pipeline_kafka.py --rate 300 --seconds 20 --no-write

Three topologies take the same load, one after the other on the same machine, with the
load generator of ``bench/pipeline.py`` (``task.tokens`` client events to the gateway, open
loop):

* **single tier** (the baseline): gateway -> our Collector (``otel-collector-config.yaml``)
  -> exporter -> PostgreSQL, exactly as ``bench/pipeline.py`` runs it;
* **two tiers, one of each**: gateway -> edge Collector (``collector/edge-config.yaml``) ->
  Kafka 4 (one KRaft broker) -> one processing Collector
  (``collector/processing-config.yaml``) -> one exporter -> PostgreSQL;
* **two tiers, N of each** (``--replicas``, default 2): the same with N processing
  Collectors in one consumer group, each sending to its own exporter (N exporters writing
  the same database).

Measured per topology: sustained events/s (rows stored / time from the first send to the
last row), p99 event-to-row latency, and CPU seconds per 1,000 events of every tier (the
processes and their children, from /proc, over the load and the drain), each also as a
ratio against the single tier of the same run; the 1-minute load average before and after
each topology (the machine is shared). Also measured in the last run, for the capacity
model: Kafka bytes per event (the logs topic on disk / events through it), PostgreSQL
bytes per row (``raw.events`` partitions with indexes / rows), the Prometheus series one
deployment makes, and the rate one PostgreSQL primary sustained (OTLP batches straight to
the exporter, one connection). They are written to ``bench/results/pipeline_kafka.json``,
which ``caret-otel capacity`` reads, and the table of docs/capacity.md is rewritten from
them (``caret_otel.cli.capacity.write_docs``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchreport
import pipeline
import psutil
import psycopg

from caret_otel.cli import capacity
from caret_otel.contracts.collector import (
    KafkaTierEnv,
    edge_config_path,
    processing_config_path,
)
from caret_otel.stack import (
    CollectorConfigEnv,
    CollectorProcess,
    ManagedProcess,
    PostgresServer,
    PrometheusServer,
    SinkConfigEnv,
)
from caret_otel.stack import collector as collector_mod
from caret_otel.stack import prometheus as prometheus_mod
from caret_otel.stack.kafka import KafkaBroker
from caret_otel.stack.ports import LOOPBACK, free_port

SECTION = "pipeline-kafka"
RESULTS = Path(__file__).resolve().parent / "results" / "pipeline_kafka.json"
#: Tiers compared with the single tier's: the Collector tier(s) are the single Collector
#: there and edge + processing Collectors here; Kafka has no counterpart (it counts in the
#: total).
COLLECTOR_TIERS = ("collector", "edge", "processing")


@dataclass(frozen=True)
class Variant:
    """One topology of the run: its key in the results (``caret_otel.cli.capacity.RUNS``)."""

    key: str
    kafka: bool
    processing: int
    exporters: int

    @property
    def label(self) -> str:
        if not self.kafka:
            return "single tier"
        collectors = "Collector" if self.processing == 1 else "Collectors"
        exporters = "exporter" if self.exporters == 1 else "exporters"
        return (
            f"two tiers, {self.processing} processing {collectors} + {self.exporters} {exporters}"
        )


def variants(replicas: int) -> list[Variant]:
    """Single tier, two tiers with one of each, two tiers with ``replicas`` of each."""
    return [
        Variant(capacity.SINGLE_TIER, kafka=False, processing=0, exporters=1),
        Variant(capacity.TWO_TIER_ONE, kafka=True, processing=1, exporters=1),
        Variant(capacity.SIZED_RUN, kafka=True, processing=replicas, exporters=replicas),
    ]


@dataclass
class Parts:
    """A running topology: where to send, where rows land, and every tier's processes."""

    gateway_url: str
    exporter_urls: list[str]
    database: str
    prometheus: PrometheusServer
    tiers: dict[str, list[ManagedProcess]]
    kafka_dir: Path | None = None


def _pids(process: ManagedProcess) -> list[psutil.Process]:
    assert process.pid is not None
    root = psutil.Process(process.pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[ManagedProcess]) -> float:
    total = 0.0
    for process in processes:
        for proc in _pids(process):
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def _start(stack: ExitStack, service: Any, what: str) -> None:
    print(f"  starting {what} ...", flush=True)
    service.start()
    stack.callback(service.stop)


def _exporter(
    stack: ExitStack, root: Path, database: str, index: int
) -> tuple[ManagedProcess, str]:
    """Start business exporter ``index`` writing ``database``; it and its base URL."""
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    exporter = ManagedProcess(
        f"exporter-{index}",
        [pipeline.CLI, "exporter", "--host", LOOPBACK, "--port", str(port),
         "--database-url", database, "--log-level", "warning"],
        log_path=root / f"exporter-{index}.log", ready=f"{url}/readyz", ready_timeout=60,
    )  # fmt: skip
    _start(stack, exporter, f"business exporter {index}")
    return exporter, url


@contextmanager
def topology(root: Path, variant: Variant) -> Iterator[Parts]:
    """PostgreSQL, Prometheus, the sink, the exporter(s), the Collector tier(s), the gateway."""
    with ExitStack() as stack:
        pg_root = Path(tempfile.mkdtemp(prefix="caret-bench-pg-"))
        pg_root.chmod(0o755)
        stack.callback(shutil.rmtree, pg_root, ignore_errors=True)
        postgres = PostgresServer(pg_root / "data", log_path=root / "postgres.log")
        _start(stack, postgres, "PostgreSQL")
        database = postgres.create_database("caret_bench")
        prom_config = prometheus_mod.write_minimal_config(root / "prometheus" / "prometheus.yml")
        prometheus = PrometheusServer(
            root / "prometheus" / "data", config_path=prom_config, log_path=root / "prometheus.log"
        )
        _start(stack, prometheus, "Prometheus")
        binary = collector_mod.binary_path()
        sink_env = SinkConfigEnv.in_dir(root / "sink")
        sink = CollectorProcess(
            binary, collector_mod.sink_config_path(), sink_env.as_env(),
            root / "sink.log", sink_env.health_port, name="sink",
        )  # fmt: skip
        _start(stack, sink, "Tempo/Loki sink")
        started = [_exporter(stack, root, database, i) for i in range(variant.exporters)]
        exporter_urls = [url for _, url in started]

        def stores(index: int) -> dict[str, Any]:
            return {
                "prometheus_remote_write_url": prometheus.remote_write_url,
                "tempo_endpoint": sink_env.grpc_endpoint,
                "loki_endpoint": sink_env.loki_endpoint,
                "business_exporter_endpoint": exporter_urls[index % len(exporter_urls)],
                "log_level": "warn",
            }

        tiers: dict[str, list[ManagedProcess]] = {"exporter": [e for e, _ in started]}
        kafka_dir = None
        if variant.kafka:
            kafka_dir = root / "kafka"
            broker = KafkaBroker(kafka_dir / "data", log_path=root / "kafka.log")
            _start(stack, broker, "Kafka (KRaft)")
            tier = KafkaTierEnv(brokers=broker.bootstrap_servers)
            broker.create_topics([tier.topic(signal) for signal in tier.SIGNALS])
            assert broker.process is not None
            tiers["kafka"] = [broker.process]
            tiers["processing"] = []
            for index in range(variant.processing):
                env = CollectorConfigEnv.with_free_ports(**stores(index))
                process = CollectorProcess(
                    binary, processing_config_path(), {**env.as_env(), **tier.as_env()},
                    root / f"processing-{index}.log", env.health_port, name=f"processing-{index}",
                )  # fmt: skip
                _start(stack, process, f"processing Collector {index}")
                tiers["processing"].append(process.process)
            entry = CollectorConfigEnv.with_free_ports(
                storage_dir=str(root / "edge-queue"), log_level="warn"
            )
            edge = CollectorProcess(
                binary, edge_config_path(), {**entry.as_env(), **tier.as_env()},
                root / "edge.log", entry.health_port, name="edge",
            )  # fmt: skip
            _start(stack, edge, "edge Collector")
            tiers["edge"] = [edge.process]
        else:
            entry = CollectorConfigEnv.with_free_ports(storage_dir=str(root / "queue"), **stores(0))
            collector = CollectorProcess(
                binary, collector_mod.default_config_path(), entry.as_env(),
                root / "collector.log", entry.health_port, name="collector",
            )  # fmt: skip
            _start(stack, collector, "Collector")
            tiers["collector"] = [collector.process]
        gateway_port = free_port()
        gateway = ManagedProcess(
            "gateway",
            [pipeline.CLI, "gateway", "--host", LOOPBACK, "--port", str(gateway_port),
             "--log-level", "warning"],
            log_path=root / "gateway.log",
            env={
                "CARET_OTEL_INGEST_TOKENS": pipeline.INGEST_TOKEN,
                "CARET_OTEL_PSEUDONYM_KEYS": pipeline.KEY_ENTRY,
                "OTEL_EXPORTER_OTLP_ENDPOINT": entry.http_url,
            },
            ready=f"http://{LOOPBACK}:{gateway_port}/readyz", ready_timeout=60,
        )  # fmt: skip
        _start(stack, gateway, "gateway")
        tiers["gateway"] = [gateway]
        yield Parts(
            f"http://{LOOPBACK}:{gateway_port}", exporter_urls, database, prometheus, tiers,
            kafka_dir,
        )  # fmt: skip


@dataclass
class Measured:
    topology: str
    processing: int
    exporters: int
    accepted: int
    stored: int
    events_per_s: float
    p50_latency_s: float
    p99_latency_s: float
    cpu_s_per_1000: dict[str, float]
    load_average: tuple[float, float]  # 1-minute load average before and after

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_s_per_1000.values())

    def cpu_of(self, tiers: tuple[str, ...]) -> float:
        return sum(v for tier, v in self.cpu_s_per_1000.items() if tier in tiers)


def measure(variant: Variant, parts: Parts, args: argparse.Namespace, run: str) -> Measured:
    load_before = os.getloadavg()[0]
    before = {tier: cpu_seconds(procs) for tier, procs in parts.tiers.items()}
    started = time.time()
    load = pipeline.drive_gateway(parts.gateway_url, run, args.rate, args.duration, args.batch)
    print(f"  draining: {load.accepted} events accepted ...", flush=True)
    stored = pipeline.drain(parts.database, run, load.accepted)
    rows = pipeline.stored_rows(parts.database, run)
    after = {tier: cpu_seconds(procs) for tier, procs in parts.tiers.items()}
    last = max((received.timestamp() for _, received in rows), default=time.time())
    e2e = pipeline.latencies(rows, load)
    per_1000 = {tier: (after[tier] - before[tier]) / max(stored, 1) * 1000 for tier in before}
    return Measured(
        topology=variant.label,
        processing=variant.processing,
        exporters=variant.exporters,
        accepted=load.accepted,
        stored=stored,
        events_per_s=stored / max(last - started, 1e-9),
        p50_latency_s=pipeline.percentile(e2e, 0.50) if e2e else float("nan"),
        p99_latency_s=pipeline.percentile(e2e, 0.99) if e2e else float("nan"),
        cpu_s_per_1000=per_1000,
        load_average=(load_before, os.getloadavg()[0]),
    )


def storage_figures(parts: Parts, rows: int, through_kafka: int) -> dict[str, float]:
    """Bytes per row in PostgreSQL (``rows`` in ``raw.events``), Kafka bytes per event (of
    the ``through_kafka`` that went through it), the Prometheus series of one deployment."""
    with psycopg.connect(parts.database, autocommit=True) as conn:
        found = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'raw.events'::regclass"
        ).fetchone()
    pg_bytes = float(found[0]) if found else 0.0
    try:  # the Collectors push every few seconds; give the first samples time to land
        series = parts.prometheus.wait_for('count({__name__=~".+"}) > 0', timeout=90)
    except TimeoutError:
        series = []  # recorded as 0: `caret-otel capacity` then refuses to size from it
    figures = {
        "postgres_bytes_per_row": pg_bytes / max(rows, 1),
        "prometheus_series": float(series[0]["value"][1]) if series else 0.0,
    }
    if parts.kafka_dir is not None:
        logs = sum(
            f.stat().st_size
            for f in (parts.kafka_dir / "data").glob(f"{KafkaTierEnv().topic('logs')}-*/*.log")
        )
        figures["kafka_bytes_per_event"] = logs / max(through_kafka, 1)
    return figures


def _ratio(value: float, base: float, digits: int = 2) -> str:
    if base <= 0:
        return "-"
    ratio = value / base
    return f"{ratio:.{digits if ratio >= 0.1 else 2}f}x"


def report(runs: list[Measured], figures: dict[str, Any], args: argparse.Namespace) -> str:
    base = runs[0]

    def row(m: Measured) -> str:
        cpu = ", ".join(f"{tier} {v:.2f}" for tier, v in sorted(m.cpu_s_per_1000.items()))
        return (
            f"| {m.topology} | {m.stored:,} / {m.accepted:,} | {m.events_per_s:,.0f} | "
            f"{m.p50_latency_s * 1000:,.0f} ms | {m.p99_latency_s * 1000:,.0f} ms | {cpu} | "
            f"{m.cpu_total:.2f} | {m.load_average[0]:.1f} -> {m.load_average[1]:.1f} |"
        )

    def ratios(m: Measured) -> str:
        return (
            f"| {m.topology} | {_ratio(m.events_per_s, base.events_per_s)} | "
            f"{_ratio(m.p99_latency_s, base.p99_latency_s, 1)} | "
            f"{_ratio(m.cpu_total, base.cpu_total)} | "
            f"{_ratio(m.cpu_s_per_1000['gateway'], base.cpu_s_per_1000['gateway'])} | "
            f"{_ratio(m.cpu_of(COLLECTOR_TIERS), base.cpu_of(COLLECTOR_TIERS))} | "
            f"{_ratio(m.cpu_s_per_1000.get('kafka', 0.0), base.cpu_total)} | "
            f"{_ratio(m.cpu_s_per_1000['exporter'], base.cpu_s_per_1000['exporter'])} |"
        )

    one, many = runs[1], runs[2]
    scale_out = (
        f"{many.processing} of each against one of each (same run): sustained events/s "
        f"{_ratio(many.events_per_s, one.events_per_s)}, p99 "
        f"{_ratio(many.p99_latency_s, one.p99_latency_s, 1)}, CPU per event of the processing "
        f"tier {_ratio(many.cpu_s_per_1000['processing'], one.cpu_s_per_1000['processing'])} "
        f"and of the exporters {_ratio(many.cpu_s_per_1000['exporter'], one.cpu_s_per_1000['exporter'])} "
        "(all replicas of a tier together: above 1.00x is what splitting the work costs)."
    )
    return f"""## Single tier vs two tiers with Kafka, one vs {many.processing} of each (`bench/pipeline_kafka.py`)

The same open-loop load ({args.rate:,.0f} events/s offered for {args.duration:.0f} s, {args.batch}
events a request) through three topologies in one run, one after the other, everything on
this machine: gateway -> Collector(s) -> exporter(s) -> PostgreSQL 16. The two-tier runs
put the edge Collector and one KRaft Kafka broker in the middle, then one processing
Collector and one exporter, then {many.processing} processing Collectors (one consumer group) each
with its own exporter. Sustained events/s = rows stored / time from the first send to the
last row (it equals the offered rate while a topology keeps up). CPU = seconds of CPU per
1,000 stored events, each tier's processes with their children (all replicas of a tier
together), over the load and the drain. The machine is shared: the 1-minute load average
before and after each topology is in the last column.

| topology | rows stored / accepted | sustained events/s | p50 | p99 | CPU s per 1,000 events | CPU total | load average |
|---|---|---|---|---|---|---|---|
{row(base)}
{row(one)}
{row(many)}

Ratios against the single tier of the same run (Collector tier(s): the single Collector
there, edge + processing Collectors in two tiers; Kafka, which has no counterpart, as a
share of the single tier's total):

| topology | sustained events/s | p99 | CPU total | gateway | Collector tier(s) | Kafka | exporter(s) |
|---|---|---|---|---|---|---|---|
{ratios(one)}
{ratios(many)}

{scale_out}

For the capacity model (`caret-otel capacity`, docs/capacity.md: it sizes from the last
run's per-tier CPU), written to `bench/results/pipeline_kafka.json`: Kafka
{figures["kafka_bytes_per_event"]:.0f} bytes per event (logs topic, zstd), PostgreSQL
{figures["postgres_bytes_per_row"]:.0f} bytes per row of `raw.events` with its indexes,
{figures["prometheus_series"]:,.0f} Prometheus series, and one PostgreSQL primary sustained
{figures["postgres_events_per_s"]:,.0f} events/s (baseline batches on one connection: a lower
bound). Rerun: `.venv/bin/python bench/pipeline_kafka.py [--rate N --seconds S --replicas N]`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument(
        "--seconds", "--duration", dest="duration", type=float, default=60.0,
        help="seconds of load per topology",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=20, help="events per request")
    parser.add_argument(
        "--replicas", type=int, default=2,
        help="processing Collectors and exporters of the last two-tier run",
    )  # fmt: skip
    parser.add_argument("--baseline-requests", type=int, default=200)
    parser.add_argument(
        "--no-write", action="store_true",
        help="print; write neither the docs nor the results (unless --results is given)",
    )  # fmt: skip
    parser.add_argument(
        "--results", type=Path, default=None,
        help=f"where to write the figures [default: {RESULTS}, none with --no-write]",
    )  # fmt: skip
    args = parser.parse_args()
    if args.replicas < 2:
        parser.error("--replicas must be at least 2 (one of each is measured anyway)")

    root = Path(tempfile.mkdtemp(prefix="caret-bench-kafka-"))
    print(f"services and logs in {root}", flush=True)
    runs: list[Measured] = []
    figures: dict[str, Any] = {}
    for variant in variants(args.replicas):
        print(f"{variant.label} ...", flush=True)
        with topology(root / variant.key, variant) as parts:
            run = uuid.uuid4().hex[:8]
            sized = variant.key == capacity.SIZED_RUN
            if sized:  # the capacity figures come from the last run, the one sized from
                baseline = pipeline.direct_baseline(
                    parts.exporter_urls[0], run, args.baseline_requests, args.batch
                )
                figures["postgres_events_per_s"] = args.batch / pipeline.percentile(baseline, 0.5)
            runs.append(measure(variant, parts, args, run))
            if sized:
                stored = runs[-1].stored
                figures |= storage_figures(parts, stored + len(baseline) * args.batch, stored)
    text = report(runs, figures, args)
    print(text)
    results = args.results or (None if args.no_write else RESULTS)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(
            json.dumps(
                {
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": benchreport.machine_line(),
                    "load": {"rate": args.rate, "duration_s": args.duration,
                             "batch": args.batch, "replicas": args.replicas},
                    **{v.key: asdict(m) for v, m in zip(variants(args.replicas), runs, strict=True)},
                    **figures,
                },
                indent=2,
            )
            + "\n"
        )  # fmt: skip
        print(f"wrote {results}")
    complete = all(m.stored == m.accepted for m in runs)
    if not args.no_write:
        benchreport.write_section(SECTION, text)
        print(f"wrote section '{SECTION}' of {benchreport.BENCHMARKS_MD}")
        try:
            capacity.write_docs(capacity.Figures.load(results))
        except capacity.CapacityError as exc:
            print(f"docs/capacity.md left as it was: {exc}", file=sys.stderr)
            complete = False
        else:
            print(f"rewrote the table of {capacity.DOCS_PATH} from {results}")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
