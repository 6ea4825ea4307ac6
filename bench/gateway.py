"""Benchmark: the ingestion gateway on one core, against our Collector's privacy pass.

    .venv/bin/python bench/gateway.py              # ~2 minutes; rewrites its section of docs/benchmarks.md
    .venv/bin/python bench/gateway.py --no-write   # print only

What runs (every process pinned with ``taskset``; the machine has two cores):

1. **Gateway** (``caret-otel gateway``, core 0): ``POST /telemetry/events`` with batches
   of 50 events of the real clients' mix (the simulator's: Caret 0.4.x and Cline 2026
   shapes, camelCase properties and metadata), end to end: auth -> validation -> consent -> privacy
   -> OTLP out to a Collector that discards (core 1, with the load generator).
   Sustained events/s is measured closed-loop (connections always busy); latency p50/p99
   open-loop at 80 % of that rate, timed from each request's *scheduled* send time so a
   stall is not hidden (no coordinated omission).
2. **Collector** (our ``otelcol-caret``, core 0): the same 50 events as an OTLP/HTTP
   protobuf logs request with raw attributes, through the privacy pass of
   ``collector/privacy-pass.yaml`` (redaction + transform) into a discarding exporter.
   Same two measurements.

The ratio gateway/Collector is computed from numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/: the shared report writer
import benchreport

from caret_otel.receivers.gateway import hot_path
from caret_otel.registry.collector_privacy import INGRESS_PROCESSORS
from caret_otel.semconv import events as semconv_events
from caret_otel.semconv.policy import load_policy
from caret_otel.simulator.scenario import ScenarioSettings, build_scenario
from caret_otel.stack import collector as collector_mod
from caret_otel.stack.ports import free_port

REPO = Path(__file__).resolve().parent.parent
BENCH_NAME = "gateway"
BATCH = 50
GATEWAY_CORE = "0"
OTHER_CORE = "1"
TOKEN = "bench-ingest-token-" + secrets.token_hex(8)

# What both benchmark Collectors share: OTLP/HTTP in, a discarding exporter, a health check.
_COLLECTOR_BASE = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${env:BENCH_HTTP_PORT}
exporters:
  debug:
    verbosity: basic
extensions:
  health_check:
    endpoint: 127.0.0.1:${env:BENCH_HEALTH_PORT}
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
"""

# A Collector that takes OTLP/HTTP and throws it away (the gateway's downstream).
DISCARD_CONFIG = (
    _COLLECTOR_BASE
    + """\
    logs: {receivers: [otlp], exporters: [debug]}
    traces: {receivers: [otlp], exporters: [debug]}
    metrics: {receivers: [otlp], exporters: [debug]}
"""
)

# The Collector under comparison: the privacy pass processors of collector/privacy-pass.yaml,
# in the order the production logs pipeline runs them.
PRIVACY_PIPELINE = (
    _COLLECTOR_BASE
    + f"""\
    logs:
      receivers: [otlp]
      processors: [{", ".join(INGRESS_PROCESSORS["logs"])}]
      exporters: [debug]
"""
)


# --- the workload -----------------------------------------------------------------------


def real_client_mix() -> list[dict[str, Any]]:
    """The real clients' event mix, as the simulator sends it (Caret 0.4.x = Cline v3.38.2
    and Cline 2026 shapes: camelCase properties, host-app metadata, tokens on turns and
    task.tokens, provider errors, checkpoints, feedback, ...; docs/semantic-conventions.md)."""
    scenario = build_scenario(ScenarioSettings(users=120, days=2, seed=11))
    return [
        event.to_json()
        for request in scenario.requests()
        for event in request.events
        if not (event.expect_rejected or event.expect_opted_out)
    ]


def client_events(mix: list[dict[str, Any]], batch_no: int, now: datetime) -> list[dict[str, Any]]:
    """50 events of the real mix, in order, re-dated to just before ``now``."""
    out = []
    for i in range(BATCH):
        event = dict(mix[(batch_no * BATCH + i) % len(mix)])
        event["timestamp"] = (now - timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        out.append(event)
    return out


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def otlp_logs(events: list[dict[str, Any]]) -> bytes:
    """The same events as a service would send them: OTLP log records, raw attributes
    under registry names where one exists (the Collector's allow-list drops the rest)."""
    policy = load_policy()
    records = []
    for event in events:
        attributes: dict[str, Any] = {
            "enduser.id": event["user_id_hash"],
            "session.id": event["session_id"],
        }
        for key, value in event["properties"].items():
            attributes[policy.client_properties.get(key, key)] = value
        for key, value in event["client_info"].items():
            attributes[policy.client_info[key]] = value
        mapped = semconv_events.for_client_event(event["event_type"])
        stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        records.append(
            LogRecord(
                time_unix_nano=int(stamp.timestamp() * 1e9),
                event_name=mapped[0].name if mapped else event["event_type"],
                attributes=[KeyValue(key=k, value=_any(v)) for k, v in attributes.items()],
            )
        )
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=None, scope_logs=[ScopeLogs(log_records=records)])]
    )
    return request.SerializeToString()


# --- a minimal keep-alive HTTP/1.1 load generator ---------------------------------------


@dataclass
class Target:
    host: str
    port: int
    path: str
    headers: dict[str, str]
    bodies: list[bytes]
    expect: int

    def requests(self) -> list[bytes]:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return [
            ("\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])).encode() + body
            for body in self.bodies
        ]


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    target: Target, connections: int, seconds: float, warmup: float, server: psutil.Process
) -> tuple[float, float]:
    """Requests/s with every connection always busy (the sustainable maximum), and the
    server's CPU seconds per wall second meanwhile (1.0 = it had its core to itself)."""
    requests = target.requests()
    conns = [await Connection.open(target) for _ in range(connections)]
    counted = 0
    measuring = False
    stop = False

    async def worker(conn: Connection, offset: int) -> None:
        nonlocal counted
        i = offset
        while not stop:
            status = await conn.exchange(requests[i % len(requests)])
            if status != target.expect:
                raise RuntimeError(f"{target.path}: HTTP {status}")
            if measuring:
                counted += 1
            i += connections

    tasks = [asyncio.create_task(worker(c, n)) for n, c in enumerate(conns)]
    await asyncio.sleep(warmup)
    cpu_before = sum(server.cpu_times()[:2])
    measuring, started = True, time.perf_counter()
    await asyncio.sleep(seconds)
    measuring, elapsed = False, time.perf_counter() - started
    cpu = sum(server.cpu_times()[:2]) - cpu_before
    stop = True
    await asyncio.gather(*tasks)
    for conn in conns:
        conn.close()
    return counted / elapsed, cpu / elapsed


async def open_loop(target: Target, rate: float, seconds: float, pool: int) -> list[float]:
    """Latencies (s) of requests sent on a fixed schedule of ``rate`` per second."""
    requests = target.requests()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        idle.put_nowait(await Connection.open(target))
    latencies: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        scheduled = start + i / rate
        conn = await idle.get()
        status = await conn.exchange(requests[i % len(requests)])
        latencies.append(time.perf_counter() - scheduled)
        idle.put_nowait(conn)
        if status != target.expect:
            raise RuntimeError(f"{target.path}: HTTP {status}")

    tasks = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- processes --------------------------------------------------------------------------


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")


def start(argv: list[str], core: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", core, *argv],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def collector(
    config_files: list[Path], core: str, work: Path, name: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    http, health = free_port(), free_port()
    argv = [str(collector_mod.binary_path()), *(f"--config={c}" for c in config_files)]
    process = start(
        argv,
        core,
        {"BENCH_HTTP_PORT": str(http), "BENCH_HEALTH_PORT": str(health), **env},
        work / f"{name}.log",
    )
    wait_http(f"http://127.0.0.1:{health}/")
    return process, http


@dataclass
class Result:
    rate: float  # items/s, closed loop
    cpu_share: float  # CPU seconds the server got per wall second in that phase
    p50_ms: float
    p99_ms: float
    at_rate: float  # items/s offered in the latency phase

    @property
    def per_cpu_second(self) -> float:
        """Items per CPU second: the rate on a core of its own, whatever else ran."""
        return self.rate / self.cpu_share if self.cpu_share else 0.0


def measure(
    target: Target, seconds: float, connections: int, items_per_request: int, pid: int
) -> Result:
    rps, cpu_share = asyncio.run(
        closed_loop(target, connections, seconds, warmup=2.0, server=psutil.Process(pid))
    )
    offered = 0.8 * rps
    latencies = asyncio.run(open_loop(target, offered, seconds, pool=max(connections * 2, 32)))
    return Result(
        rate=rps * items_per_request,
        cpu_share=cpu_share,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        at_rate=offered * items_per_request,
    )


# --- report -----------------------------------------------------------------------------


def report(
    gateway: Result, baseline: Result, seconds: float, connections: int, load: float, lost: str
) -> str:
    ratio = gateway.per_cpu_second / baseline.per_cpu_second
    wall_ratio = gateway.rate / baseline.rate
    met_rate = "met" if gateway.per_cpu_second >= 20000 else "not met"
    met_p99 = "met" if gateway.p99_ms < 50 else "not met"
    compiled = hot_path.compiled_modules()
    if len(compiled) == len(hot_path.MODULES):
        path = "compiled with mypyc (`make install`; `make pure-python` for the pure-Python one)"
    else:
        path = f"pure Python ({len(compiled)} of {len(hot_path.MODULES)} modules compiled)"
    return f"""## Gateway: client events in, OTLP out (`bench/gateway.py`)

Each side pinned to one core with `taskset`; batches of {BATCH} events; {seconds:.0f} s per
phase after a 2 s warm-up. Rate: {connections} connections closed-loop. Latency: open-loop
at 80 % of that rate, timed from each request's scheduled send (stalls count). The
machine is shared (1-minute load average {load:.1f} at the start), so a pinned process
does not get its core to itself: *per CPU-second* divides by the CPU time the process
really got, which is the rate on a core of its own. The gateway's hot path: {path}.
Rerun: `.venv/bin/python bench/gateway.py`.

| pipeline (one core) | events/s (wall) | share of the core it got | **events per CPU-second** | offered at 80 % | p50 | p99 |
|---|---:|---:|---:|---:|---:|---:|
| gateway: JSON events -> auth, validation, consent, privacy, log records + spans + metrics -> OTLP | {gateway.rate:,.0f} | {gateway.cpu_share:.0%} | **{gateway.per_cpu_second:,.0f}** | {gateway.at_rate:,.0f}/s | {gateway.p50_ms:.1f} ms | {gateway.p99_ms:.1f} ms |
| baseline: our Collector, same events as OTLP/HTTP logs -> redaction + transform privacy pass | {baseline.rate:,.0f} | {baseline.cpu_share:.0%} | **{baseline.per_cpu_second:,.0f}** | {baseline.at_rate:,.0f}/s | {baseline.p50_ms:.1f} ms | {baseline.p99_ms:.1f} ms |

**Ratio gateway / Collector: {ratio:.2f}** per CPU-second ({wall_ratio:.2f} on wall-clock rates).
Targets: >= 20,000 events/s on one core: {gateway.per_cpu_second:,.0f} per CPU-second
({met_rate}), {gateway.rate:,.0f}/s on the wall clock of this shared machine; p99 < 50 ms
at 80 % load: {gateway.p99_ms:.1f} ms ({met_p99}).
Accepted events lost on the way to the Collector during the run: {lost}.
The gateway does more per event than the Collector's pass: it validates the client
format, checks consent, derives a span and metrics, and answers per-event errors.
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase")
    parser.add_argument("--connections", type=int, default=8, help="closed-loop connections")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        print("needs taskset and at least two cores", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {int(OTHER_CORE)})  # the load generator stays off the measured core
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    load = os.getloadavg()[0]
    now = datetime.now(UTC)
    mix = real_client_mix()
    batches = [client_events(mix, b, now) for b in range(64)]
    key = base64.b64encode(secrets.token_bytes(32)).decode()

    print("1/2 gateway ...", flush=True)
    (work / "discard.yaml").write_text(DISCARD_CONFIG)
    sink, sink_port = collector([work / "discard.yaml"], OTHER_CORE, work, "discard", {})
    gateway_port = free_port()
    gateway = start(
        [
            str(REPO / ".venv" / "bin" / "caret-otel"),
            "gateway",
            "--port",
            str(gateway_port),
            "--log-level",
            "warning",
        ],
        GATEWAY_CORE,
        {
            "CARET_OTEL_INGEST_TOKENS": TOKEN,
            "CARET_OTEL_PSEUDONYM_KEYS": f"b1:{key}",
            # the real mix holds opt-outs and opt-ins; a benchmark has no PostgreSQL to keep them
            "CARET_OTEL_DEV_VOLATILE_CONSENT": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        },
        work / "gateway.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
        target = Target("127.0.0.1", gateway_port, "/telemetry/events",
                        {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                        [orjson.dumps(b) for b in batches], 202)  # fmt: skip
        gw = measure(target, args.seconds, args.connections, BATCH, gateway.pid)
        metrics = httpx.get(f"http://127.0.0.1:{gateway_port}/metrics").text
        lost = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("caret_gateway_export_lost_items_total")
        )
    finally:
        stop(gateway)
        stop(sink)
    lost_text = "none" if lost == 0 else f"{lost:.0f} (see caret_gateway_export_lost_items_total)"
    print(
        f"   {gw.rate:,.0f} events/s ({gw.per_cpu_second:,.0f} per CPU-second, {gw.cpu_share:.0%} of the core); "
        f"at 80 %: p50 {gw.p50_ms:.1f} ms, p99 {gw.p99_ms:.1f} ms; lost: {lost_text}"
    )

    print("2/2 Collector privacy pass ...", flush=True)
    (work / "privacy-bench.yaml").write_text(PRIVACY_PIPELINE)
    baseline_collector, port = collector(
        [REPO / "collector" / "privacy-pass.yaml", work / "privacy-bench.yaml"], GATEWAY_CORE, work, "privacy",
        {"CARET_OTEL_COLLECTOR_HMAC_KEY": secrets.token_hex(32), "CARET_OTEL_COLLECTOR_HMAC_KEY_ID": "b1"},
    )  # fmt: skip
    try:
        target = Target("127.0.0.1", port, "/v1/logs", {"Content-Type": "application/x-protobuf"},
                        [otlp_logs(b) for b in batches], 200)  # fmt: skip
        col = measure(target, args.seconds, args.connections, BATCH, baseline_collector.pid)
    finally:
        stop(baseline_collector)
    print(
        f"   {col.rate:,.0f} records/s ({col.per_cpu_second:,.0f} per CPU-second, {col.cpu_share:.0%} of the core); "
        f"at 80 %: p50 {col.p50_ms:.1f} ms, p99 {col.p99_ms:.1f} ms"
    )

    text = report(gw, col, args.seconds, args.connections, load, lost_text)
    print(text)
    if not args.no_write:
        benchreport.write_section(BENCH_NAME, text)
        print(f"wrote section {BENCH_NAME} of {benchreport.BENCHMARKS_MD}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
