"""Overhead of in-process privacy on the OTel SDK, and the engine's own speed.

One run measures, interleaved round by round so machine drift hits every mode alike:

- **spans/s** through the SDK: ``plain`` (``BatchSpanProcessor`` -> an exporter that
  encodes each batch to OTLP protobuf and discards it) vs ``privacy`` (the same, wired
  with ``install_privacy``: the exporter wrapped in ``PrivacySpanExporter``);
- **logs/s** the same way (``BatchLogRecordProcessor`` vs the privacy log processor in
  front of it);
- **Caret client events/s** through ``ClientEventScrubber`` alone (validation, mapping,
  pseudonyms, redaction, consent), and with JSON parsing in front;
- **OTLP spans/s** through ``scrub_trace_request`` (what the gateway does per request).

Each SDK round creates ``--records`` spans (or log records) shaped like a Caret
service's (GenAI attributes, a user id, an HTTP route, one event on one span in four,
an error message on one in ten) and measures creation plus the final flush. Rates are
records per CPU-second of this process (all threads, the batch worker included):
on a shared machine CPU time is far steadier than wall time, and CPU is what the
processors cost a service. Results are written as ratios against the plain SDK into
``docs/benchmarks.md`` (section ``privacy_overhead``); the target is at most 10 %
overhead.

Usage: .venv/bin/python bench/privacy_overhead.py [--rounds 15] [--records 20000] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import copy
import gc
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from caret_otel.processors.privacy.client_events import ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.otlp import scrub_trace_request
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.processors.privacy.sdk import install_privacy
from caret_otel.receivers.gateway import hot_path
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs
from caret_otel.semconv.policy import load_policy

SECTION = "privacy_overhead"
TARGET_OVERHEAD = 0.10
KEY = "bench:" + base64.b64encode(bytes(range(32))).decode()
MODELS = ("claude-sonnet-4", "gpt-4o", "claude-3-5-haiku", "gemini-2.5-pro", "deepseek-chat")
PROVIDERS = ("anthropic", "openai", "anthropic", "gcp.gemini", "deepseek")
RESOURCE = Resource.create(
    {
        attrs.SERVICE_NAME: "llm-proxy",
        attrs.SERVICE_VERSION: "1.4.2",
        attrs.DEPLOYMENT_ENVIRONMENT_NAME: "production",
        attrs.HOST_NAME: "ip-10-0-3-17",
    }
)


class EncodingSpanExporter(SpanExporter):
    """Does the real work of an OTLP exporter except the network: encode and discard."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class EncodingLogExporter(LogRecordExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        encode_logs(batch).SerializeToString()
        self.exported += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def engine() -> PrivacyEngine:
    return PrivacyEngine(load_policy(), Pseudonymizer(parse_keys(KEY, source="bench")))


def span_attributes(i: int) -> dict[str, Any]:
    m = i % len(MODELS)
    return {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: PROVIDERS[m],
        attrs.GEN_AI_REQUEST_MODEL: MODELS[m],
        attrs.GEN_AI_RESPONSE_MODEL: MODELS[m],
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000 + i % 5000,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 100 + i % 900,
        attrs.SERVER_ADDRESS: "api.anthropic.com",
        attrs.SERVER_PORT: 443,
        attrs.HTTP_ROUTE: "/v1/messages",
        attrs.ENDUSER_ID: f"user-{i % 2000}",
        "code.line.number": 120,  # not in the registry: dropped
    }


def run_spans(privacy: bool, records: int) -> float:
    provider = TracerProvider(resource=RESOURCE)
    exporter = EncodingSpanExporter()
    if privacy:
        install_privacy(
            provider,
            None,
            engine=engine(),
            consent=InMemoryConsentStore(),
            span_exporters=[exporter],
        )
    else:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("caret.llm_proxy", "1.4.2")
    attributes = [span_attributes(i) for i in range(records)]
    gc.collect()
    started = time.process_time()
    for i in range(records):
        m = i % len(MODELS)
        with tracer.start_as_current_span(
            f"chat {MODELS[m]}", kind=SpanKind.CLIENT, attributes=attributes[i]
        ) as span:
            if i % 4 == 0:
                span.add_event("gen_ai.retry", {attrs.ERROR_TYPE: "overloaded"})
            if i % 10 == 0:
                span.set_status(Status(StatusCode.ERROR, "429 from api.anthropic.com: retry in 2s"))
    provider.force_flush()
    elapsed = time.process_time() - started
    provider.shutdown()
    assert exporter.exported == records, (exporter.exported, records)
    return records / elapsed


def log_attributes(i: int) -> dict[str, Any]:
    m = i % len(MODELS)
    return {
        # as the SDK makes them: a keyed hash, 32 hex digits
        attrs.CARET_EVENT_ID: hashlib.sha256(i.to_bytes(8, "big")).hexdigest()[:32],
        attrs.ENDUSER_PSEUDO_ID: f"user-{i % 2000}",
        attrs.GEN_AI_PROVIDER_NAME: PROVIDERS[m],
        attrs.GEN_AI_REQUEST_MODEL: MODELS[m],
        attrs.CARET_CREDITS_AMOUNT: 1.5,
        attrs.CARET_PLAN_NAME: "pro",
        attrs.CARET_CLIENT_VERSION: "1.0.3",
        attrs.GEO_COUNTRY_ISO_CODE: "KR",
    }


def run_logs(privacy: bool, records: int) -> float:
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    exporter = EncodingLogExporter()
    if privacy:
        install_privacy(
            None,
            provider,
            engine=engine(),
            consent=InMemoryConsentStore(),
            log_exporters=[exporter],
        )
    else:
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("caret.billing", "2.0.0")
    attributes = [log_attributes(i) for i in range(records)]
    gc.collect()
    started = time.process_time()
    for i in range(records):
        if i % 10 == 0:
            logger.emit(
                body=f"credit check failed for plan pro after {i % 7} retries",
                attributes=attributes[i],
            )
        else:
            logger.emit(
                event_name=event_specs.CARET_CREDITS_CONSUMED.name, attributes=attributes[i]
            )
    provider.force_flush()
    elapsed = time.process_time() - started
    provider.shutdown()
    assert exporter.exported == records, (exporter.exported, records)
    return records / elapsed


def client_events(count: int) -> list[dict[str, Any]]:
    """A mix of the events a Caret client sends in a working session."""
    rng = random.Random(7)
    out = []
    for i in range(count):
        m = rng.randrange(len(MODELS))
        base = {
            "user_id_hash": f"{rng.randrange(5000):064x}",
            "session_id": f"session-{rng.randrange(20000)}",
            "timestamp": f"2025-01-11T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "client_info": {"version": "1.0.3", "platform": "vscode", "language": "ko"},
        }
        task = {
            "task_id": f"task-{rng.randrange(50000)}",
            "api_provider": PROVIDERS[m],
            "model": MODELS[m],
        }
        kind = i % 10
        if kind < 4:
            event = {
                **base,
                "event_type": "task.tokens",
                "properties": {
                    **task,
                    "tokens_in": 1200,
                    "tokens_out": 300,
                    "cached_tokens": 800,
                    "cost": 0.0123,
                },
            }
        elif kind < 6:
            event = {
                **base,
                "event_type": "task.conversation_turn",
                "properties": {**task, "source": "assistant", "turn": i % 30},
            }
        elif kind == 6:
            event = {
                **base,
                "event_type": "task.tool_used",
                "properties": {
                    **task,
                    "tool": "read_file",
                    "autoApproved": True,
                    "success": True,
                    "path": "/home/dev/app.py",
                },
            }
        elif kind == 7:
            event = {
                **base,
                "event_type": "task.created",
                "properties": {**task, "mode": "act", "context_size": 200000},
            }
        elif kind == 8:
            event = {
                **base,
                "event_type": "task.provider_api_error",
                "properties": {
                    **task,
                    "error_type": "429",
                    "status_code": 429,
                    "error_message": "Rate limited for key sk-ant-api03-q8Z2n4V7k1P0w3R6t9Y5, retry after 20s",
                },
            }
        else:
            event = {
                **base,
                "event_type": "task.focus_chain_progress_update",
                "properties": {"task_id": task["task_id"]},
            }
        out.append(event)
    return out


def run_client_events(events: list[dict[str, Any]], parse: bool) -> float:
    scrubber = ClientEventScrubber(engine(), InMemoryConsentStore())
    payloads = [orjson.dumps(e) for e in events] if parse else None
    report = ScrubReport()
    gc.collect()
    started = time.process_time()
    if payloads is not None:
        for payload in payloads:
            scrubber.scrub(orjson.loads(payload), report)
    else:
        for event in events:
            scrubber.scrub(event, report)
    return len(events) / (time.process_time() - started)


def run_otlp(records: int) -> float:
    provider = TracerProvider(resource=RESOURCE)
    tracer = provider.get_tracer("caret.llm_proxy")
    spans = []
    for i in range(512):
        span = tracer.start_span(f"chat {MODELS[i % 5]}", attributes=span_attributes(i))
        span.end()
        spans.append(span)
    template = encode_spans(spans)  # type: ignore[arg-type]
    batches = max(1, records // 512)
    requests = [copy.deepcopy(template) for _ in range(batches)]
    privacy, consent, report = engine(), InMemoryConsentStore(), ScrubReport()
    gc.collect()
    started = time.process_time()
    for request in requests:
        scrub_trace_request(request, privacy, consent, report)
    return batches * 512 / (time.process_time() - started)


@dataclass
class Results:
    rates: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, rate: float) -> None:
        self.rates.setdefault(name, []).append(rate)

    def median(self, name: str) -> float:
        return statistics.median(self.rates[name])

    def paired_overheads(self, signal: str) -> list[float]:
        """The overhead of each round, privacy against the plain run beside it: the
        host's speed drifts over a run, and a pair of neighbouring runs shares it."""
        pairs = zip(self.rates[f"{signal}_plain"], self.rates[f"{signal}_privacy"], strict=True)
        return sorted(overhead(plain, privacy) for plain, privacy in pairs)


def overhead(plain: float, privacy: float) -> float:
    """Extra time per record, relative to the plain SDK."""
    return plain / privacy - 1


def privacy_compiled() -> bool:
    """Whether this process runs the hot path's privacy modules compiled (not from the
    ``.py`` sources, as ``hot_path.use_sources()`` or a build without mypyc has them)."""
    modules = [m for m in hot_path.MODULES if m.startswith("caret_otel.processors.")]
    files = [str(getattr(sys.modules.get(m), "__file__", "")) for m in modules]
    return all(file and not file.endswith(".py") for file in files)


def verdict(value: float) -> str:
    return "meets" if value <= TARGET_OVERHEAD else "misses"


def sdk_rows(build: str, results: Results) -> str:
    rows = []
    for signal in ("spans", "logs"):
        plain, privacy = results.median(f"{signal}_plain"), results.median(f"{signal}_privacy")
        costs = results.paired_overheads(signal)
        cost = statistics.median(costs)
        quartiles = statistics.quantiles(costs, n=4) if len(costs) > 1 else [cost, cost, cost]
        rows.append(
            f"| {signal} | {build} | {plain:,.0f}/s | {privacy:,.0f}/s | {cost:+.1%} "
            f"| {quartiles[0]:+.1%} .. {quartiles[2]:+.1%} | {verdict(cost)} |"
        )
    return "\n".join(rows)


def report(results: Results, rounds: int, records: int, interpreted: Results | None) -> str:
    spans_plain, logs_plain = results.median("spans_plain"), results.median("logs_plain")
    span_cost = statistics.median(results.paired_overheads("spans"))
    log_cost = statistics.median(results.paired_overheads("logs"))
    compiled = privacy_compiled()
    build = "compiled (mypyc)" if compiled else "pure Python"
    table = sdk_rows(build, results)
    if interpreted is not None:
        table += "\n" + sdk_rows("pure Python", interpreted)
    engine_build = (
        "compiled with mypyc, as `make install` builds it in this repository; the rows "
        "marked pure Python come from a second process of the same run that imports the "
        "same modules from their `.py` sources (`hot_path.use_sources()`), as a service "
        "that installs the distributions as wheels runs them"
        if compiled
        else "pure Python"
    )

    return f"""## In-process privacy overhead (`bench/privacy_overhead.py`)

The OTel Python SDK with and without the privacy processors of `caret_otel.processors.privacy.sdk`
(wired by `install_privacy`), same run, {rounds} interleaved rounds of {records:,} records
each; rates are medians, the overhead is the median of each round's privacy run against
the plain run beside it (with the quartiles of those rounds: single runs on this shared
host scatter by ±15 %, a pair shares the host's drift). Both modes export through the SDK's batch processor to an exporter that
encodes every batch to OTLP protobuf and discards it (no network). Records look like a
Caret service's: GenAI attributes, a user id (pseudonymised), an unknown key (dropped), an
event on one span in four, an error status on one in ten. Rates are records per CPU-second
of the process (all threads, the batch worker included): on a shared machine CPU time is
far steadier than wall time, and CPU is what the processors cost a service. The privacy
modules: {engine_build}.

| signal | privacy modules | plain SDK | SDK + privacy | overhead | rounds' quartiles | target ≤ {TARGET_OVERHEAD:.0%} |
|---|---|---:|---:|---:|---|---|
{table}

At those overheads ({build}), privacy adds {span_cost * 1e6 / spans_plain:.1f} µs of CPU to a
span (which costs {1e6 / spans_plain:.1f} µs without it) and {log_cost * 1e6 / logs_plain:.1f} µs to
a log record ({1e6 / logs_plain:.1f} µs without it).

The privacy engine on its own (one core, no SDK):

| input | rate |
|---|---:|
| Caret client events, `ClientEventScrubber.scrub` (validation, mapping, pseudonyms, redaction, consent) | {results.median("events"):,.0f} events/s |
| the same with `orjson.loads` of each event first | {results.median("events_json"):,.0f} events/s |
| OTLP spans, `scrub_trace_request` on 512-span requests | {results.median("otlp"):,.0f} spans/s |
"""


# The second process: the same script with the hot path imported from its sources.
_PURE_PYTHON_CHILD: Final = (
    "import runpy, sys\n"
    "from caret_otel.receivers.gateway import hot_path\n"
    "hot_path.use_sources()\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_rounds(steps: list[tuple[str, Callable[[], float]]], rounds: int) -> Results:
    results = Results()
    for _, warm_up in steps:  # imports, caches, allocator
        warm_up()
    for number in range(1, rounds + 1):
        order = steps if number % 2 else steps[::-1]  # alternate so neither mode always goes first
        for name, step in order:
            results.add(name, step())
        print(
            f"round {number}/{rounds}: "
            + ", ".join(f"{name} {results.rates[name][-1]:,.0f}/s" for name, _ in steps),
            file=sys.stderr,
            flush=True,
        )
    return results


def pure_python_results(rounds: int, records: int) -> Results:
    """The SDK rows again in a child process that runs the privacy modules from source."""
    print("the same SDK rounds with the privacy modules as pure Python:", file=sys.stderr)
    options = ("--rounds", str(rounds), "--records", str(records))
    child = subprocess.run(
        [sys.executable, "-c", _PURE_PYTHON_CHILD, __file__, "--sdk-json", *options],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Results(json.loads(child.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone"
    )
    parser.add_argument(
        "--sdk-json",
        action="store_true",
        help="only the SDK rounds; print their rates as one JSON line (the pure-Python "
        "process of a run)",
    )
    args = parser.parse_args(argv)
    # Queues big enough for a whole round: both modes must export every record, or the
    # mode that falls behind would look faster by dropping work.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(args.records + 1)
    os.environ["OTEL_BLRP_MAX_QUEUE_SIZE"] = str(args.records + 1)
    sdk_steps: list[tuple[str, Callable[[], float]]] = [
        ("spans_plain", lambda: run_spans(False, args.records)),
        ("spans_privacy", lambda: run_spans(True, args.records)),
        ("logs_plain", lambda: run_logs(False, args.records)),
        ("logs_privacy", lambda: run_logs(True, args.records)),
    ]
    if args.sdk_json:
        results = run_rounds(sdk_steps, args.rounds)
        print(json.dumps(results.rates))
        return 0
    events = client_events(args.records)
    engine_steps: list[tuple[str, Callable[[], float]]] = [
        ("events", lambda: run_client_events(events, parse=False)),
        ("events_json", lambda: run_client_events(events, parse=True)),
        ("otlp", lambda: run_otlp(args.records)),
    ]
    results = run_rounds(sdk_steps + engine_steps, args.rounds)
    interpreted = pure_python_results(args.rounds, args.records) if privacy_compiled() else None
    text = report(results, args.rounds, args.records, interpreted)
    print(text)
    if not args.no_write:
        import benchreport

        benchreport.write_section(SECTION, text)
        print(f"wrote section {SECTION} of {benchreport.BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
