"""The three legs of our Collector are wired: OTLP from the OTel Python SDK goes in,
and comes out in Prometheus (metrics), in the Tempo/Loki sink (span, log record), and
on the business leg (only ``caret.*`` events and metrics).

One SDK export per signal, then the tests look for the data where it must land. Each
session uses a fresh ``run_id`` (sent as the value of ``RUN_KEY``, a registry attribute
the Collector's privacy pass keeps on every signal) so earlier data cannot match.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.services import (
    CollectorFactory,
    OtlpRecord,
    RunningCollector,
    SinkCollector,
    read_records,
    wait_until,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics as registry_metrics
from caret_otel.stack import CollectorProcess, PrometheusServer, SinkConfigEnv
from caret_otel.stack import collector as collector_mod
from caret_otel.stack.ports import free_port, is_listening

pytestmark = pytest.mark.integration
RUN_KEY = attrs.GEN_AI_REQUEST_MODEL

SERVICE = "caret-otel-legs-test"


@dataclass(frozen=True)
class Sent:
    """What the SDK sent, to look for downstream."""

    run_id: str
    span_name: str
    trace_id: str
    event_name: str
    noise_event_name: str


def _sdk_send(collector: RunningCollector) -> Sent:
    run_id = uuid.uuid4().hex
    resource = Resource.create(
        {
            "service.name": SERVICE,
            "service.instance.id": run_id,
            "deployment.environment.name": "test",
        }
    )
    base = collector.http_url

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=10))
    )
    # Cumulative temporality: Prometheus remote write drops delta sums and histograms.
    cumulative: dict[type, AggregationTemporality] = {
        Counter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.CUMULATIVE,
    }
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics", timeout=10, preferred_temporality=cumulative
        ),
        export_interval_millis=3_600_000,  # exported by force_flush below, not by a timer
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=10))
    )

    try:
        tracer = tracer_provider.get_tracer("caret-otel.tests")
        with tracer.start_as_current_span("legs-test span", attributes={RUN_KEY: run_id}) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")

        meter = meter_provider.get_meter("caret-otel.tests")
        # Registry metrics: only those go on (filter/registry_metrics); the noise does not.
        starts, task_duration = (
            registry_metrics.CARET_TASK_STARTS,
            registry_metrics.CARET_TASK_DURATION,
        )
        requests = meter.create_counter(starts.name, unit=starts.unit)
        duration = meter.create_histogram(task_duration.name, unit=task_duration.unit)
        noise = meter.create_counter("test.noise", unit="{thing}")
        requests.add(3, {RUN_KEY: run_id})
        duration.record(0.25, {RUN_KEY: run_id})
        duration.record(1.5, {RUN_KEY: run_id})
        noise.add(1, {RUN_KEY: run_id})
        assert meter_provider.force_flush(10_000)

        logger = logger_provider.get_logger("caret-otel.tests")
        logger.emit(
            event_name="caret.test.event",
            body="business event body",
            attributes={RUN_KEY: run_id},
        )
        logger.emit(
            event_name="test.noise_event", body="not business", attributes={RUN_KEY: run_id}
        )
        logger.emit(body="plain log line", attributes={RUN_KEY: run_id})
        assert logger_provider.force_flush(10_000)
        assert tracer_provider.force_flush(10_000)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()
    return Sent(run_id, "legs-test span", trace_id, "caret.test.event", "test.noise_event")


@pytest.fixture(scope="module")
def sent(collector: RunningCollector) -> Sent:
    return _sdk_send(collector)


def _has_run(record: OtlpRecord, run_id: str) -> bool:
    return record.attributes.get(RUN_KEY) == run_id


def _metric_has_run(record: OtlpRecord, run_id: str) -> bool:
    return any(p["attributes"].get(RUN_KEY) == run_id for p in record.data_points())


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_collector_is_healthy_and_listens(collector: RunningCollector) -> None:
    assert httpx.get(collector.health_url, timeout=5).status_code == 200
    host, port = collector.grpc_endpoint.rsplit(":", 1)
    assert is_listening(int(port), host), "OTLP/gRPC receiver"
    own = httpx.get(collector.telemetry_url, timeout=5)
    assert own.status_code == 200
    assert "otelcol_process_uptime" in own.text


def test_metrics_reach_prometheus(sent: Sent, prometheus: PrometheusServer) -> None:
    selector = f'{{{prometheus_label(RUN_KEY)}="{sent.run_id}"}}'
    counter = prometheus.wait_for(prometheus_name(registry_metrics.CARET_TASK_STARTS) + selector)
    assert _value(counter) == 3
    series = counter[0]["metric"]
    # service.name/service.instance.id become job/instance; the environment is copied
    # onto the points for dashboards; other resource attributes stay off the series
    # (resource_to_telemetry_conversion off) ...
    assert series["job"] == SERVICE
    assert series["instance"] == sent.run_id
    assert series["deployment_environment_name"] == "test"
    assert "telemetry_sdk_language" not in series
    # ... and are found on target_info instead.
    info = prometheus.wait_for(f'target_info{{instance="{sent.run_id}"}}')
    assert info[0]["metric"]["deployment_environment_name"] == "test"
    assert info[0]["metric"]["telemetry_sdk_language"] == "python"

    task_duration = registry_metrics.CARET_TASK_DURATION
    count = prometheus.wait_for(prometheus_name(task_duration, "count") + selector)
    assert _value(count) == 2
    assert _value(prometheus.wait_for(prometheus_name(task_duration, "sum") + selector)) == 1.75
    # A metric the registry does not know goes nowhere (it was exported in the same
    # SDK requests as the series that arrived, so it would be here by now).
    assert prometheus.query(f"test_noise_total{selector}") == []


def test_span_reaches_the_tempo_sink(sent: Sent, sink_collector: SinkCollector) -> None:
    span = sink_collector.wait_for_span(lambda r: _has_run(r, sent.run_id))
    assert span.name == sent.span_name
    assert span.data["traceId"] == sent.trace_id
    assert span.resource["service.name"] == SERVICE
    assert span.scope["name"] == "caret-otel.tests"


def test_log_records_reach_the_loki_sink(sent: Sent, sink_collector: SinkCollector) -> None:
    # All three records (the business event too: Loki is where SREs read events).
    event = sink_collector.wait_for_log_record(
        lambda r: _has_run(r, sent.run_id) and r.name == sent.event_name
    )
    assert event.body == "business event body"
    assert event.resource["service.name"] == SERVICE
    sink_collector.wait_for_log_record(
        lambda r: _has_run(r, sent.run_id) and r.body == "plain log line"
    )
    sink_collector.wait_for_log_record(
        lambda r: _has_run(r, sent.run_id) and r.name == sent.noise_event_name
    )


def test_business_leg_gets_only_caret_events_and_metrics(
    sent: Sent, business_sink: SinkCollector
) -> None:
    event = business_sink.wait_for_log_record(lambda r: _has_run(r, sent.run_id))
    assert event.name == sent.event_name
    assert event.body == "business event body"
    starts, task_duration = registry_metrics.CARET_TASK_STARTS, registry_metrics.CARET_TASK_DURATION
    metric = business_sink.wait_for_metric(
        lambda r: r.name == starts.name and _metric_has_run(r, sent.run_id)
    )
    assert metric.data["unit"] == starts.unit
    business_sink.wait_for_metric(
        lambda r: r.name == task_duration.name and _metric_has_run(r, sent.run_id)
    )
    # The noise was exported in the same SDK requests as the business data that has
    # arrived, so had the filters let it through it would be here by now.
    logs = [r for r in business_sink.log_records() if _has_run(r, sent.run_id)]
    assert [r.name for r in logs] == [sent.event_name]
    metrics = {r.name for r in business_sink.metrics() if _metric_has_run(r, sent.run_id)}
    assert metrics == {starts.name, task_duration.name}
    # Spans never go to the business leg.
    assert not business_sink.traces_path.exists() or not business_sink.spans()


def _emit_business_event(collector: RunningCollector, run_id: str) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{collector.http_url}/v1/logs", timeout=10)
        )
    )
    try:
        provider.get_logger("caret-otel.tests").emit(
            event_name="caret.test.durable", body="queued", attributes={RUN_KEY: run_id}
        )
        assert provider.force_flush(10_000)
    finally:
        provider.shutdown()


def test_business_leg_survives_a_collector_restart(
    collector_factory: CollectorFactory,
    collector_binary: Path,
    tmp_path: Path,
) -> None:
    """The business exporter is down; the Collector restarts; once the exporter is back,
    the event that was accepted before the restart is delivered (persistent queue on
    disk + retry forever)."""
    port = free_port()
    durable = collector_factory(
        name="durable", business_exporter_endpoint=f"http://127.0.0.1:{port}"
    )
    run_id = uuid.uuid4().hex
    _emit_business_event(durable, run_id)  # accepted: 200 from the receiver, queued on disk
    durable.process.stop()

    sink_env = SinkConfigEnv.in_dir(
        tmp_path, http_endpoint=f"127.0.0.1:{port}", logs_url_path="/v1/logs"
    )
    exporter_standin = CollectorProcess(
        collector_binary,
        collector_mod.sink_config_path(),
        sink_env.as_env(),
        tmp_path / "standin.log",
        sink_env.health_port,
        name="business-standin",
    )
    exporter_standin.start()
    try:
        durable.process.start()
        records = wait_until(
            lambda: [
                r for r in read_records(Path(sink_env.logs_path), "logs") if _has_run(r, run_id)
            ],
            timeout=30,
            what="the queued business event after the restart",
        )
        assert [r.name for r in records][:1] == ["caret.test.durable"]
    finally:
        exporter_standin.stop()
