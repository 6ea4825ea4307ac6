"""Benchmark: the pipeline through the Kafka tier beside the single-tier pipeline, in one run.

    .venv/bin/python bench/pipeline_kafka.py                      # rewrites its docs section and
                                                                  # bench/results/pipeline_kafka.json
    .venv/bin/python bench/pipeline_kafka.py --rate 300 --duration 20 --no-write

Both topologies take the same load, one after the other on the same machine, with the
load generator of ``bench/pipeline.py`` (``task.tokens`` client events to the gateway, open
loop):

* **single tier**: gateway -> our Collector (``otel-collector-config.yaml``) -> exporter ->
  PostgreSQL, exactly as ``bench/pipeline.py`` runs it;
* **two tiers**: gateway -> edge Collector (``collector/edge-config.yaml``) -> Kafka 4 (one
  KRaft broker) -> ``--processing`` processing Collectors (``collector/processing-config.yaml``,
  one consumer group) -> exporter -> PostgreSQL.

Measured per topology: sustained events/s (rows stored / time from the first send to the
last row), p99 event-to-row latency, and CPU seconds per 1,000 events of every tier (the
process and its children, from /proc, over the load and the drain). Also measured, for the
capacity model: Kafka bytes per event (the logs topic on disk / events), PostgreSQL bytes
per row (``raw.events`` partitions with indexes / rows), the Prometheus series one
deployment makes, and the rate one PostgreSQL primary sustained (the baseline: OTLP
batches straight to the exporter, one connection). They are written to
``bench/results/pipeline_kafka.json``, which ``caret-otel capacity`` reads.
"""

from __future__ import annotations

import argparse
import json
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


@dataclass
class Parts:
    """A running topology: where to send, where rows land, and every tier's processes."""

    gateway_url: str
    exporter_url: str
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


@contextmanager
def topology(root: Path, *, kafka: bool, processing: int) -> Iterator[Parts]:
    """PostgreSQL, Prometheus, the sink, the exporter, the Collector tier(s), the gateway."""
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
        exporter_port = free_port()
        exporter = ManagedProcess(
            "exporter",
            [pipeline.CLI, "exporter", "--host", LOOPBACK, "--port", str(exporter_port),
             "--database-url", database, "--log-level", "warning"],
            log_path=root / "exporter.log",
            ready=f"http://{LOOPBACK}:{exporter_port}/readyz", ready_timeout=60,
        )  # fmt: skip
        _start(stack, exporter, "business exporter")
        exporter_url = f"http://{LOOPBACK}:{exporter_port}"
        stores: dict[str, Any] = {
            "prometheus_remote_write_url": prometheus.remote_write_url,
            "tempo_endpoint": sink_env.grpc_endpoint,
            "loki_endpoint": sink_env.loki_endpoint,
            "business_exporter_endpoint": exporter_url,
            "log_level": "warn",
        }
        tiers: dict[str, list[ManagedProcess]] = {"exporter": [exporter]}
        kafka_dir = None
        if kafka:
            kafka_dir = root / "kafka"
            broker = KafkaBroker(kafka_dir / "data", log_path=root / "kafka.log")
            _start(stack, broker, "Kafka (KRaft)")
            tier = KafkaTierEnv(brokers=broker.bootstrap_servers)
            broker.create_topics([tier.topic(signal) for signal in tier.SIGNALS])
            assert broker.process is not None
            tiers["kafka"] = [broker.process]
            tiers["processing"] = []
            for index in range(processing):
                env = CollectorConfigEnv.with_free_ports(**stores)
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
            entry = CollectorConfigEnv.with_free_ports(storage_dir=str(root / "queue"), **stores)
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
            f"http://{LOOPBACK}:{gateway_port}", exporter_url, database, prometheus, tiers,
            kafka_dir,
        )  # fmt: skip


@dataclass
class Measured:
    topology: str
    accepted: int
    stored: int
    events_per_s: float
    p50_latency_s: float
    p99_latency_s: float
    cpu_s_per_1000: dict[str, float]


def measure(name: str, parts: Parts, args: argparse.Namespace, run: str) -> Measured:
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
        topology=name,
        accepted=load.accepted,
        stored=stored,
        events_per_s=stored / max(last - started, 1e-9),
        p50_latency_s=pipeline.percentile(e2e, 0.50) if e2e else float("nan"),
        p99_latency_s=pipeline.percentile(e2e, 0.99) if e2e else float("nan"),
        cpu_s_per_1000=per_1000,
    )


def storage_figures(parts: Parts, rows: int) -> dict[str, float]:
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
        figures["kafka_bytes_per_event"] = logs / max(rows, 1)
    return figures


def report(single: Measured, two: Measured, processing: int, figures: dict[str, Any]) -> str:
    def row(m: Measured) -> str:
        cpu = ", ".join(f"{tier} {v:.2f}" for tier, v in sorted(m.cpu_s_per_1000.items()))
        return (
            f"| {m.topology} | {m.stored:,} / {m.accepted:,} | {m.events_per_s:,.0f} | "
            f"{m.p50_latency_s * 1000:.0f} ms | {m.p99_latency_s * 1000:.0f} ms | {cpu} |"
        )

    return f"""## Single tier vs two tiers with Kafka (`bench/pipeline_kafka.py`)

The same open-loop load through both topologies in one run (single tier first), everything
on this machine: gateway -> Collector(s) -> exporter -> PostgreSQL 16; the two-tier run
puts the edge Collector, one KRaft Kafka broker and {processing} processing Collector(s)
in the middle. CPU = seconds of CPU per 1,000 stored events, each tier's processes with
their children, over the load and the drain.

| topology | rows stored / accepted | sustained events/s | p50 | p99 | CPU s per 1,000 events |
|---|---|---|---|---|---|
{row(single)}
{row(two)}
| **ratio two tiers / single tier** | | **{two.events_per_s / single.events_per_s:.2f}x** | | **{two.p99_latency_s / single.p99_latency_s:.1f}x** | |

For the capacity model (`caret-otel capacity`, docs/capacity.md), written to
`bench/results/pipeline_kafka.json`: Kafka {figures["kafka_bytes_per_event"]:.0f} bytes per
event (logs topic, zstd), PostgreSQL {figures["postgres_bytes_per_row"]:.0f} bytes per row
of `raw.events` with its indexes, {figures["prometheus_series"]:,.0f} Prometheus series, and one
PostgreSQL primary sustained {figures["postgres_events_per_s"]:,.0f} events/s (baseline batches
on one connection: a lower bound).
Rerun: `.venv/bin/python bench/pipeline_kafka.py [--rate N --duration S --processing N]`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--batch", type=int, default=20, help="events per request")
    parser.add_argument("--processing", type=int, default=2, help="processing Collectors")
    parser.add_argument("--baseline-requests", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print, do not write files")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="caret-bench-kafka-"))
    print(f"services and logs in {root}", flush=True)
    print("single tier ...", flush=True)
    with topology(root / "single", kafka=False, processing=0) as parts:
        single = measure("single tier", parts, args, uuid.uuid4().hex[:8])
    print(f"two tiers ({args.processing} processing Collectors) ...", flush=True)
    with topology(root / "two", kafka=True, processing=args.processing) as parts:
        run = uuid.uuid4().hex[:8]
        baseline = pipeline.direct_baseline(
            parts.exporter_url, run, args.baseline_requests, args.batch
        )
        two = measure("two tiers (Kafka)", parts, args, run)
        figures: dict[str, Any] = storage_figures(parts, two.stored + len(baseline) * args.batch)
    figures["postgres_events_per_s"] = args.batch / pipeline.percentile(baseline, 0.5)
    text = report(single, two, args.processing, figures)
    print(text)
    if not args.no_write:
        benchreport.write_section(SECTION, text)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": benchreport.machine_line(),
                    "load": {"rate": args.rate, "duration_s": args.duration,
                             "batch": args.batch, "processing_collectors": args.processing},
                    "single_tier": asdict(single),
                    "two_tier": asdict(two),
                    **figures,
                },
                indent=2,
            )
            + "\n"
        )  # fmt: skip
        print(f"wrote section '{SECTION}' of {benchreport.BENCHMARKS_MD} and {RESULTS}")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if single.stored == single.accepted and two.stored == two.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
