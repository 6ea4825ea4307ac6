"""Real-client corpus through the gateway's ingestion (scrubber, time window, log
records, task spans, metric measurements): every real event accepted, unknown types
rejected one by one, tokens and cost counted exactly once on both client shapes."""

from __future__ import annotations

import asyncio
import base64
import math
from collections import Counter
from typing import Any

import pytest
from metric_capture import MetricCapture
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from real_client_corpus import FUTURE_EVENT_TYPES, Corpus, batches, build

from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.client_events import ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.receivers.gateway import client_metrics
from caret_otel.receivers.gateway.client_ingest import ClientEventIngestor, IngestResult
from caret_otel.receivers.gateway.config import IngestLimits, OtlpTarget
from caret_otel.receivers.gateway.task_spans import TaskSpans
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics
from caret_otel.semconv.policy import load_policy

KEY = "1:" + base64.b64encode(bytes(range(32))).decode()


class Run:
    def __init__(self, corpus: Corpus) -> None:
        policy = load_policy()
        self.engine = PrivacyEngine(policy, Pseudonymizer(parse_keys(KEY, source="test")))
        _, recorder = client_metrics.pipeline(
            OtlpTarget(endpoints={}), policy, exporter=MetricCapture()
        )
        self.ingestor = ClientEventIngestor(
            ClientEventScrubber(self.engine, InMemoryConsentStore()),
            recorder,
            TaskSpans(max_open_tasks=1000),
            IngestLimits(),
            raw_retention_days=30,
        )
        self.results: list[IngestResult] = []
        self.rejected: list[tuple[str, str]] = []
        self.report = ScrubReport()
        for batch in batches(corpus):
            result = asyncio.run(self.ingestor.ingest(batch, "KR", self._consent))
            self.results.append(result)
            self.rejected += [(batch[r.index]["event_type"], r.code) for r in result.rejected]
            self.report.merge(result.report)

    @staticmethod
    async def _consent(user: str, enabled: bool) -> None:
        raise AssertionError("the corpus has no consent change")

    def sums(self, metric: str, label: tuple[str, Any] | None = None) -> float:
        return sum(
            value
            for r in self.results
            for (name, labels), value in r.measurements.sums.items()
            if name == metric and (label is None or label in labels)
        )

    def log_records(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for result in self.results:
            request = ExportLogsServiceRequest.FromString(self.ingestor.logs_request(result))
            for resource in request.resource_logs:
                for scope in resource.scope_logs:
                    for record in scope.log_records:
                        values = {a.key: _value(a.value) for a in record.attributes}
                        out.append((record.event_name, values))
        return out

    def spans(self) -> list[Any]:
        out = []
        for result in self.results:
            request = ExportTraceServiceRequest.FromString(self.ingestor.traces_request(result))
            out += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return out


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build()


@pytest.fixture(scope="module")
def run(corpus: Corpus) -> Run:
    return Run(corpus)


def test_every_real_event_is_accepted_and_unknown_types_are_rejected_one_by_one(
    corpus: Corpus, run: Run
) -> None:
    assert len(corpus.events) >= 500
    assert sorted(run.rejected) == sorted(
        (e["event_type"], "invalid_event_type")
        for e in corpus.events
        if e["event_type"] in FUTURE_EVENT_TYPES
    )
    accepted = sum(r.accepted for r in run.results)
    assert accepted == len(corpus.events) - corpus.future_events


def test_tokens_and_cost_in_log_records_equal_the_clients_totals(corpus: Corpus, run: Run) -> None:
    totals: Counter[str] = Counter()
    cost = 0.0
    for _, values in run.log_records():
        for key in (
            attrs.GEN_AI_USAGE_INPUT_TOKENS,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
            attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        ):
            totals[key] += values.get(key, 0)
        cost += values.get(attrs.CARET_API_COST, 0.0)
    assert totals[attrs.GEN_AI_USAGE_INPUT_TOKENS] == corpus.totals.input_tokens
    assert totals[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] == corpus.totals.output_tokens
    assert totals[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == corpus.totals.cache_read_tokens
    assert (
        totals[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == corpus.totals.cache_write_tokens
    )
    assert math.isclose(cost, corpus.totals.cost, rel_tol=1e-9)


def test_token_and_cost_metrics_equal_the_clients_totals(corpus: Corpus, run: Run) -> None:
    tokens = metrics.CARET_TOKENS.name
    by_type = {
        kind: run.sums(tokens, (attrs.CARET_TOKEN_TYPE, kind))
        for kind in ("input", "output", "cache_read", "cache_write")
    }
    assert by_type == {
        "input": corpus.totals.input_tokens,
        "output": corpus.totals.output_tokens,
        "cache_read": corpus.totals.cache_read_tokens,
        "cache_write": corpus.totals.cache_write_tokens,
    }
    assert math.isclose(run.sums(metrics.CARET_API_COST.name), corpus.totals.cost, rel_tol=1e-9)


def test_provider_errors_of_both_shapes_feed_the_error_metric(corpus: Corpus, run: Run) -> None:
    assert run.sums(metrics.CARET_API_ERRORS.name) == corpus.provider_errors
    assert (
        run.sums(metrics.CARET_API_ERRORS.name, (attrs.HTTP_RESPONSE_STATUS_CODE, 429))
        == corpus.provider_errors
    )
    messages = [
        v[attrs.CARET_ERROR_MESSAGE]
        for name, v in run.log_records()
        if name == events.CARET_TASK_PROVIDER_API_ERROR.name
    ]
    assert messages
    assert all("jane@example.com" not in m for m in messages)


def test_an_mcp_call_is_one_use(corpus: Corpus, run: Run) -> None:
    uses = run.sums(metrics.CARET_FEATURE_USES.name, (attrs.CARET_FEATURE_NAME, "mcp_tool"))
    assert uses == corpus.mcp_calls


def test_one_span_per_task_run_with_distinct_ids(corpus: Corpus, run: Run) -> None:
    spans = run.spans()
    assert len(spans) == corpus.task_runs
    assert len({s.span_id for s in spans}) == len(spans)
    assert all(s.end_time_unix_nano >= s.start_time_unix_nano for s in spans)
    assert sum(1 for s in spans if s.end_time_unix_nano > s.start_time_unix_nano) == len(spans)


def test_content_properties_are_dropped_with_a_reason_and_metadata_is_coarse(run: Run) -> None:
    dropped: Counter[tuple[str, str]] = Counter()
    for result in run.results:
        for (key, reason), n in result.report.dropped.items():
            dropped[key, reason] += n
    for key in ("ruleFileName", "commandName", "argumentKeys", "os_version", "requestId"):
        assert dropped[key, reasons.NOT_COLLECTED] > 0, key
    assert dropped[attrs.GEN_AI_USAGE_INPUT_TOKENS, reasons.COUNTED_ELSEWHERE] > 0
    records = run.log_records()
    platforms = {v.get(attrs.CARET_CLIENT_PLATFORM) for _, v in records}
    assert platforms <= {"vscode", "cursor", "windsurf", "vscodium", None}
    assert {v.get(attrs.OS_TYPE) for _, v in records} <= {"darwin", "windows", "linux", None}
    flat = repr(records)
    for secret in ("acme-secrets.md", "my-release-workflow.md", "acme-db", "llm.corp.internal",
                   "Darwin Kernel", "localhost:3000"):  # fmt: skip
        assert secret not in flat
