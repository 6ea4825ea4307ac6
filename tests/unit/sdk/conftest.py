"""Fixtures of the SDK tests: the provider stub (a real HTTP server), in-memory SDK
readers that capture every span and metric point the GenAI instrumentation records, and
a real OTLP/HTTP receiver for what ``configure()`` exports."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from caret_otel.devtools.provider_stub import ProviderStub
from caret_otel.sdk.genai import instrument_httpx, uninstrument_httpx
from caret_otel.sdk.genai.operation import SCOPE_NAME


@pytest.fixture(scope="session")
def provider_stub() -> Iterator[ProviderStub]:
    with ProviderStub() as stub:
        yield stub


@dataclass
class Captured:
    """What one instrumented test recorded, read from the SDK's in-memory exporters."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    _metrics: MetricsData | None = None

    def finished_spans(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def genai_spans(self) -> list[ReadableSpan]:
        return [
            s
            for s in self.finished_spans()
            if s.instrumentation_scope is not None and s.instrumentation_scope.name == SCOPE_NAME
        ]

    def only_genai_span(self) -> ReadableSpan:
        spans = self.genai_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metrics(self) -> MetricsData:
        # Cumulative temporality: reading once per test sees everything it recorded.
        if self._metrics is None:
            data = self.reader.get_metrics_data()
            assert data is not None
            self._metrics = data
        return self._metrics

    def points(self, metric_name: str) -> list[Any]:
        found = []
        for resource_metrics in self.metrics().resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == metric_name:
                        found.extend(metric.data.data_points)
        return found

    def exported_text(self) -> str:
        """Every span (name, attributes, events, links, resource) and metric, as JSON."""
        spans = "\n".join(s.to_json() for s in self.finished_spans())
        return spans + "\n" + self.metrics().to_json()


def fresh_capture() -> Captured:
    """New SDK providers whose spans and metric points are kept in memory."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return Captured(exporter, reader, tracer_provider, MeterProvider(metric_readers=[reader]))


Instrument = Callable[..., Captured]


@pytest.fixture
def instrument(provider_stub: ProviderStub) -> Iterator[Instrument]:
    """``instrument("anthropic")``: map the stub's ``host:port`` to that provider (``None``:
    leave it unmapped), plus any ``hosts=`` entries; install the instrumentation with fresh
    in-memory providers and return what they capture."""

    def install(provider: str | None, hosts: Mapping[str, str] | None = None) -> Captured:
        captured = fresh_capture()
        mapping = dict(hosts or {})
        if provider is not None:
            mapping[provider_stub.authority] = provider
        uninstrument_httpx()
        instrument_httpx(mapping, captured.tracer_provider, captured.meter_provider)
        return captured

    yield install
    uninstrument_httpx()


# --- a real OTLP/HTTP receiver -------------------------------------------------------------
@dataclass(frozen=True)
class OtlpRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def decoded(self) -> Any:
        """The protobuf request this path carries."""
        message = {
            "/v1/traces": trace_service_pb2.ExportTraceServiceRequest,
            "/v1/metrics": metrics_service_pb2.ExportMetricsServiceRequest,
            "/v1/logs": logs_service_pb2.ExportLogsServiceRequest,
        }[self.path]()
        message.ParseFromString(self.body)
        return message


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) endpoint on a free loopback port that keeps what it gets."""

    def __init__(self) -> None:
        received: list[OtlpRequest] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(
                    OtlpRequest(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(length),
                    )
                )
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def requests(self, path: str) -> list[OtlpRequest]:
        return [r for r in list(self.received) if r.path == path]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()
