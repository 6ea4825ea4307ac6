"""Benchmark: the whole pipeline, gateway accept -> row in ``raw.events``, under load.

    .venv/bin/python bench/pipeline.py                 # ~3 minutes; rewrites its section of docs/benchmarks.md
    .venv/bin/python bench/pipeline.py --rate 500 --duration 30 --no-write

Every part is the real thing, each its own process on this machine: ``caret-otel
gateway`` -> our Collector on the production config (privacy pass, persistent queue) ->
``caret-otel exporter`` -> PostgreSQL 16 (fsync on); Prometheus takes the metrics and a
sink Collector stands where Tempo and Loki would be.

1. **Baseline**: batches of the same events, as OTLP, straight to the exporter; a 200 means
   the rows are committed, so the response time is the bare "write to PostgreSQL" latency.
2. **Pipeline**: client events (``task.tokens``) posted to the gateway at a steady rate
   (open loop: a slow answer does not slow the sender) for the given duration. Each
   request has its own task id, so every stored row can be traced back to the request
   that carried it. Latency of a row = its ``received_at`` (the exporter's insert) minus
   the moment its request was *sent* (an upper bound of accept -> row).
3. **Collection success** = rows stored / events the gateway accepted (202 counts),
   after the pipeline has drained.

Results are reported as ratios against the baseline in docs/benchmarks.md
(``<!-- bench:pipeline -->``).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchreport
import httpx
import psycopg
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.otlp.build import event_record, logs_request
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
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
from caret_otel.stack.ports import LOOPBACK, free_port

SECTION = "pipeline"
CLI = Path(sys.executable).with_name("caret-otel")
INGEST_TOKEN = "bench-ingest-token-0123456789"  # a throw-away token for this local run
KEY_ENTRY = "bench:" + base64.b64encode(b"bench-pipeline-pseudonym-key-32b").decode()
USERS = 200
SENDERS = 8


# --- the stack -------------------------------------------------------------------------------
@dataclass
class Stack:
    gateway_url: str
    exporter_url: str
    database: str
    collector_telemetry: str


@contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    """Start every component under ``root``; stop them all on the way out."""
    with ExitStack() as stack:
        pg_root = Path(tempfile.mkdtemp(prefix="caret-bench-pg-"))
        pg_root.chmod(0o755)  # the server's own OS user must reach its data directory
        stack.callback(shutil.rmtree, pg_root, ignore_errors=True)
        postgres = PostgresServer(pg_root / "data", log_path=root / "postgres.log")
        _started(stack, postgres, "PostgreSQL")
        database = postgres.create_database("caret_bench")

        prom_config = prometheus_mod.write_minimal_config(root / "prometheus" / "prometheus.yml")
        prometheus = PrometheusServer(
            root / "prometheus" / "data", config_path=prom_config, log_path=root / "prometheus.log"
        )
        _started(stack, prometheus, "Prometheus")

        binary = collector_mod.binary_path()
        sink_env = SinkConfigEnv.in_dir(root / "sink")
        sink = CollectorProcess(
            binary, collector_mod.sink_config_path(), sink_env.as_env(),
            root / "sink.log", sink_env.health_port, name="sink",
        )  # fmt: skip
        _started(stack, sink, "Tempo/Loki sink")

        exporter_port = free_port()
        exporter = ManagedProcess(
            "exporter",
            [CLI, "exporter", "--host", LOOPBACK, "--port", str(exporter_port),
             "--database-url", database, "--log-level", "warning"],
            log_path=root / "exporter.log",
            ready=f"http://{LOOPBACK}:{exporter_port}/readyz",
            ready_timeout=60,
        )  # fmt: skip
        _started(stack, exporter, "business exporter")
        exporter_url = f"http://{LOOPBACK}:{exporter_port}"

        config = CollectorConfigEnv.with_free_ports(
            prometheus_remote_write_url=prometheus.remote_write_url,
            tempo_endpoint=sink_env.grpc_endpoint,
            loki_endpoint=sink_env.loki_endpoint,
            business_exporter_endpoint=exporter_url,
            storage_dir=str(root / "queue"),
            log_level="warn",
        )
        collector = CollectorProcess(
            binary, collector_mod.default_config_path(), config.as_env(),
            root / "collector.log", config.health_port, name="collector",
        )  # fmt: skip
        _started(stack, collector, "Collector")

        gateway_port = free_port()
        gateway = ManagedProcess(
            "gateway",
            [CLI, "gateway", "--host", LOOPBACK, "--port", str(gateway_port),
             "--log-level", "warning"],
            log_path=root / "gateway.log",
            env={
                "CARET_OTEL_INGEST_TOKENS": INGEST_TOKEN,
                "CARET_OTEL_PSEUDONYM_KEYS": KEY_ENTRY,
                "OTEL_EXPORTER_OTLP_ENDPOINT": config.http_url,
            },
            ready=f"http://{LOOPBACK}:{gateway_port}/readyz",
            ready_timeout=60,
        )  # fmt: skip
        _started(stack, gateway, "gateway")
        yield Stack(
            f"http://{LOOPBACK}:{gateway_port}", exporter_url, database, config.telemetry_url
        )


def _started(stack: ExitStack, service: Any, what: str) -> None:
    print(f"  starting {what} ...", flush=True)
    service.start()
    stack.callback(service.stop)


# --- load ------------------------------------------------------------------------------------
@dataclass
class Sent:
    """One request to the gateway: when it was sent, how many events it accepted."""

    task_id: str
    sent_at: float
    accepted: int = 0
    status: int = 0


@dataclass
class Load:
    requests: list[Sent] = field(default_factory=list)
    late_sends: int = 0

    @property
    def accepted(self) -> int:
        return sum(r.accepted for r in self.requests)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for request in self.requests:
            counts[request.status] = counts.get(request.status, 0) + 1
        return counts


def client_event(run: str, seq: int, task_id: str, now: datetime) -> dict[str, Any]:
    """A ``task.tokens`` client event (plan section 2.1); ``seq`` makes each one unique."""
    return {
        "event_type": events.CARET_TASK_TOKENS.client_event,
        "user_id_hash": f"{run}-user-{seq % USERS}",
        "session_id": f"{run}-session-{seq % USERS}",
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "properties": {
            "api_provider": "anthropic",
            "model": "claude-sonnet-4",
            "task_id": task_id,
            "tokens_in": 1000 + seq,
            "tokens_out": 200,
        },
        "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
    }


def drive_gateway(url: str, run: str, rate: float, duration: float, batch: int) -> Load:
    """Open-loop sender: request i is due at start + i * batch / rate, whatever came before."""
    load = Load()
    interval = batch / rate
    count = int(duration / interval)
    local = threading.local()
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30, headers=headers)
        return local.client  # type: ignore[no-any-return]

    def send(index: int, due: float) -> None:
        lag = due - time.monotonic()
        if lag > 0:
            time.sleep(lag)
        elif lag < -interval:
            load.late_sends += 1
        task_id = f"{run}-task-{index}"
        now = datetime.now(UTC)
        body = [client_event(run, index * batch + n, task_id, now) for n in range(batch)]
        record = Sent(task_id, time.time())
        load.requests.append(record)
        response = client().post("/telemetry/events", json=body)
        record.status = response.status_code
        if response.status_code == 202:
            record.accepted = int(response.json()["accepted"])

    start = time.monotonic() + 0.5
    with ThreadPoolExecutor(SENDERS) as pool:
        futures = [pool.submit(send, i, start + i * interval) for i in range(count)]
        for number, future in enumerate(futures, start=1):
            future.result()
            if number % max(1, count // 10) == 0:
                print(f"    {number}/{count} requests sent", flush=True)
    return load


def direct_event(
    run: str, index: int, n: int, pseudonymizer: Pseudonymizer, now: datetime
) -> LogRecord:
    """The business event the gateway makes of :func:`client_event`, as OTLP."""
    spec = events.CARET_TASK_TOKENS
    return event_record(
        spec.name,
        now,
        {
            attrs.CARET_EVENT_ID: f"{run}-direct-{index}-{n}",
            attrs.CARET_EVENT_CLIENT_TYPE: str(spec.client_event),
            attrs.ENDUSER_PSEUDO_ID: pseudonymizer.pseudonymize(f"{run}-direct-{n}"),
            attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000 + n,
        },
    )


def direct_baseline(exporter_url: str, run: str, requests: int, batch: int) -> list[float]:
    """Response times of OTLP batches written straight to the exporter (rows committed)."""
    pseudonymizer = Pseudonymizer(parse_keys(KEY_ENTRY, source="bench"))
    latencies = []
    with httpx.Client(base_url=exporter_url, timeout=30) as client:
        for index in range(requests):
            now = datetime.now(UTC)
            records = [direct_event(run, index, n, pseudonymizer, now) for n in range(batch)]
            body = logs_request(records).SerializeToString()
            started = time.perf_counter()
            response = client.post(
                "/v1/logs", content=body, headers={"Content-Type": "application/x-protobuf"}
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"exporter answered {response.status_code}: {response.text}")
    return latencies


class CollectorSampler:
    """Samples the Collector's own metrics every second: the business queue's backlog
    and the process's resident memory (maxima over the run, for sizing)."""

    QUEUE = 'otelcol_exporter_queue_size{data_type="logs",exporter="otlp_http/business"'
    RSS = "otelcol_process_memory_rss"

    def __init__(self, url: str) -> None:
        self.url = url
        self.max_queue = 0.0
        self.max_rss_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector-sampler", daemon=True)

    def __enter__(self) -> CollectorSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(1.0):
                try:
                    text = client.get(self.url).text
                except httpx.HTTPError:
                    continue
                for line in text.splitlines():
                    if line.startswith(self.QUEUE):
                        self.max_queue = max(self.max_queue, float(line.rsplit(" ", 1)[1]))
                    elif line.startswith(self.RSS):
                        rss = float(line.rsplit(" ", 1)[1]) / 2**20
                        self.max_rss_mib = max(self.max_rss_mib, rss)


# --- results ---------------------------------------------------------------------------------
def stored_rows(database: str, run: str) -> list[tuple[str, datetime]]:
    """(caret.task.id pseudonym, received_at) of this run's rows."""
    pseudonymizer = Pseudonymizer(parse_keys(KEY_ENTRY, source="bench"))
    users = [pseudonymizer.pseudonymize(f"{run}-user-{n}") for n in range(USERS)]
    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT attrs->>%s, received_at FROM raw.events WHERE user_pseudonym = ANY(%s)",
            (attrs.CARET_TASK_ID, users),
        ).fetchall()
    return [(str(task), received) for task, received in rows]


def drain(database: str, run: str, expected: int, stall: float = 60.0) -> int:
    """Wait until ``expected`` rows are stored, or nothing new arrived for ``stall`` s."""
    last, last_change = -1, time.monotonic()
    while True:
        count = len(stored_rows(database, run))
        if count >= expected:
            return count
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return count
        time.sleep(1.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Results:
    rate: float
    duration: float
    batch: int
    accepted: int
    stored: int
    statuses: dict[int, int]
    late_sends: int
    e2e: list[float]
    baseline: list[float]
    max_queue: float
    max_rss_mib: float

    @property
    def success(self) -> float:
        return self.stored / self.accepted if self.accepted else 0.0


def latencies(rows: list[tuple[str, datetime]], load: Load) -> list[float]:
    pseudonymizer = Pseudonymizer(parse_keys(KEY_ENTRY, source="bench"))
    sent_at = {pseudonymizer.pseudonymize(r.task_id): r.sent_at for r in load.requests}
    return [received.timestamp() - sent_at[task] for task, received in rows if task in sent_at]


def report(results: Results) -> str:
    e2e, base = results.e2e, results.baseline
    p50, p99 = percentile(e2e, 0.50), percentile(e2e, 0.99)
    b50, b99 = percentile(base, 0.50), percentile(base, 0.99)
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(results.statuses.items()))
    load = os.getloadavg()[0]
    return f"""## Pipeline end to end: gateway accept -> row in `raw.events` (`bench/pipeline.py`)

All real, each its own process on this machine: `caret-otel gateway` -> our Collector on
the production config (privacy pass, fsync'ed persistent queue, batching in the queue) ->
`caret-otel exporter` -> PostgreSQL 16 (fsync on); Prometheus and a Tempo/Loki sink take
the other signals. Load: `task.tokens` client events, {results.batch} per request, open loop at
{results.rate:,.0f} events/s for {results.duration:.0f} s ({SENDERS} sender threads; {results.late_sends}
requests went out later than scheduled). Latency of a row = its `received_at` minus the
moment its request was sent (an upper bound of gateway accept -> row). Baseline: batches of
the same size written straight to the exporter as OTLP (a 200 means committed rows).
1-minute load average at the end: {load:.1f}.

| | p50 | p99 | max |
|---|---|---|---|
| baseline: OTLP batch -> exporter -> committed | {b50 * 1000:.0f} ms | {b99 * 1000:.0f} ms | {max(base) * 1000:.0f} ms |
| pipeline: gateway -> Collector -> exporter -> row | {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms | {max(e2e) * 1000:.0f} ms |
| **ratio pipeline / baseline** | **{p50 / b50:.1f}x** | **{p99 / b99:.1f}x** | |

Collection success: **{results.stored:,} rows stored / {results.accepted:,} events accepted =
{results.success * 100:.3f} %** (gateway answers: {statuses}). During the run the
Collector's business queue held at most {results.max_queue:,.0f} log records and its
resident memory peaked at {results.max_rss_mib:,.0f} MiB.

Targets: p99 < 10 s ({"met" if p99 < 10 else "NOT met"}); success >= 99.99 %
({"met" if results.success >= 0.9999 else "NOT met"}). The pipeline's latency is mostly
deliberate batching - the gateway's export batches, the Collector's queue batches (flush
after 200 ms or 1000 items), the exporter's one transaction per batch - plus queueing
once the two cores (shared by all five processes, the sender and PostgreSQL) get busy.
Rerun: `.venv/bin/python bench/pipeline.py [--rate N --duration S]`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--batch", type=int, default=20, help="events per request")
    parser.add_argument("--baseline-requests", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the docs")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="caret-bench-pipeline-"))
    print(f"services and logs in {root}", flush=True)
    with running_stack(root) as stack:
        print("baseline: OTLP batches straight to the exporter ...", flush=True)
        baseline = direct_baseline(stack.exporter_url, run, args.baseline_requests, args.batch)
        print(f"pipeline: {args.rate:.0f} events/s for {args.duration:.0f} s ...", flush=True)
        with CollectorSampler(stack.collector_telemetry) as sampler:
            load = drive_gateway(stack.gateway_url, run, args.rate, args.duration, args.batch)
            print(f"draining: {load.accepted} events accepted ...", flush=True)
            stored = drain(stack.database, run, load.accepted)
        rows = stored_rows(stack.database, run)
    results = Results(
        rate=args.rate, duration=args.duration, batch=args.batch, accepted=load.accepted,
        stored=stored, statuses=load.statuses(), late_sends=load.late_sends,
        e2e=latencies(rows, load), baseline=baseline,
        max_queue=sampler.max_queue, max_rss_mib=sampler.max_rss_mib,
    )  # fmt: skip
    text = report(results)
    print(text)
    print(f"median e2e {statistics.median(results.e2e):.3f} s over {len(results.e2e)} rows")
    if not args.no_write:
        benchreport.write_section(SECTION, text)
        print(f"wrote section '{SECTION}' of {benchreport.BENCHMARKS_MD}")
    shutil.rmtree(root, ignore_errors=True)
    return 0 if results.success >= 0.9999 else 1


if __name__ == "__main__":
    sys.exit(main())
