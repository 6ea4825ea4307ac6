"""``verify`` against a real Prometheus fed by our real Collector.

GenAI and client metrics recorded with the OTel SDK flow through the Collector's
remote-write exporter; then every panel of the LLM API dashboard must return data, with
its variables resolved from that Prometheus. Panels of metrics nobody sent must be
reported as "no data" (not as errors, and not as ok).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from caret_otel.dashboards import generate, llm_api, pipeline_health
from caret_otel.dashboards import panel_queries as pq
from caret_otel.dashboards.promnames import prometheus_name
from caret_otel.dashboards.verify import PrometheusApi, verify
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.stack.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

PROVIDER = "anthropic"
MODEL = "claude-sonnet-4.5"  # a dot: the variable value must be regex-escaped to match


def record_round(provider: MeterProvider) -> None:
    meter = provider.get_meter("dashboards-verify-test")
    call = {
        attrs.GEN_AI_PROVIDER_NAME: PROVIDER,
        attrs.GEN_AI_REQUEST_MODEL: MODEL,
        attrs.GEN_AI_OPERATION_NAME: "chat",
    }
    duration = meter.create_histogram(metrics.GEN_AI_CLIENT_OPERATION_DURATION.name, unit="s")
    for seconds in (0.4, 0.9, 2.5, 7.0):
        duration.record(seconds, call)
    duration.record(30.0, {**call, attrs.ERROR_TYPE: "timeout"})
    usage = meter.create_histogram(metrics.GEN_AI_CLIENT_TOKEN_USAGE.name, unit="{token}")
    usage.record(1200, {**call, attrs.GEN_AI_TOKEN_TYPE: "input"})
    usage.record(300, {**call, attrs.GEN_AI_TOKEN_TYPE: "output"})
    client = {attrs.GEN_AI_PROVIDER_NAME: PROVIDER, attrs.GEN_AI_REQUEST_MODEL: MODEL}
    meter.create_counter(metrics.CARET_API_ERRORS.name, unit="{error}").add(
        1, {**client, attrs.ERROR_TYPE: "429"}
    )
    tokens = meter.create_counter(metrics.CARET_TOKENS.name, unit="{token}")
    tokens.add(1200, {**client, attrs.CARET_TOKEN_TYPE: "input"})
    tokens.add(500, {**client, attrs.CARET_TOKEN_TYPE: "cache_read"})
    cost = meter.create_counter(metrics.CARET_API_COST.name, unit=metrics.CARET_API_COST.unit)
    cost.add(0.042, client)


@pytest.fixture(scope="module")
def llm_traffic(collector: object, prometheus: PrometheusServer) -> Iterator[None]:
    """Three exports a few seconds apart, so rate() has samples to work with."""
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{collector.http_url}/v1/metrics"),  # type: ignore[attr-defined]
        export_interval_millis=600_000,
    )
    provider = MeterProvider(
        resource=Resource.create({attrs.SERVICE_NAME: "dashboards-verify"}), metric_readers=[reader]
    )
    for _ in range(3):
        record_round(provider)
        assert provider.force_flush(30_000)
        time.sleep(3)
    count = prometheus_name(metrics.GEN_AI_CLIENT_OPERATION_DURATION, "count")
    prometheus.wait_for(f'{count}{{gen_ai_request_model="{MODEL}"}}', timeout=60)
    yield
    provider.shutdown()


def test_every_llm_api_panel_returns_data(llm_traffic: None, prometheus: PrometheusServer) -> None:
    dashboard = generate.build_dashboards()[llm_api.UID]
    time_range = pq.TimeRange.last(timedelta(minutes=10))
    results = verify([dashboard], PrometheusApi(prometheus.base_url), None, time_range)
    assert len(results) == len(pq.panel_queries(dashboard))
    assert [str(r) for r in results if not r.ok] == []


def test_panels_without_data_are_reported_not_passed(
    llm_traffic: None, prometheus: PrometheusServer
) -> None:
    """Nothing scrapes the gateway, exporter or Collector here: panels that read only
    their self-metrics are empty (other tests may have sent registry metrics)."""
    dashboard = generate.build_dashboards()[pipeline_health.UID]
    time_range = pq.TimeRange.last(timedelta(minutes=10))
    results = verify([dashboard], PrometheusApi(prometheus.base_url), None, time_range)
    assert [str(r) for r in results if r.error] == []
    registry_names = [
        prometheus_name(m, "count" if m.instrument == "histogram" else None) for m in metrics.ALL
    ]
    self_only = [r for r in results if not any(name in r.expanded for name in registry_names)]
    assert len(self_only) >= 20
    assert [str(r) for r in self_only if r.ok] == []


def test_a_query_error_is_reported_with_the_datasource_message(
    prometheus: PrometheusServer,
) -> None:
    dashboard = generate.build_dashboards()[llm_api.UID]
    broken = {**dashboard, "panels": [dict(p) for p in dashboard["panels"]]}
    panel = next(p for p in broken["panels"] if p.get("targets"))
    panel["targets"] = [{**panel["targets"][0], "expr": "sum(rate(x[5m]) by"}]
    results = verify(
        [broken], PrometheusApi(prometheus.base_url), None, pq.TimeRange.last(timedelta(minutes=5))
    )
    failed = [r for r in results if r.error]
    assert len(failed) == 1
    assert "bad_data" in str(failed[0].error)


def test_verify_command_fails_naming_the_empty_panels(
    llm_traffic: None, prometheus: PrometheusServer
) -> None:
    from click.testing import CliRunner

    from caret_otel.cli.dashboards import dashboards

    result = CliRunner().invoke(
        dashboards, ["verify", "--prometheus", prometheus.base_url, "--since", "10"]
    )
    assert result.exit_code == 1
    assert (
        "FAIL caret-business / 'DAU' / A: error: no database given for an SQL panel"
        in result.output
    )
    assert "FAIL caret-llm-api" not in result.output
    assert "panel queries returned data" in result.output


def test_variables_resolve_to_the_busiest_value_first(
    llm_traffic: None, prometheus: PrometheusServer
) -> None:
    """A variable is set to the model with the most calls, as a user would look first."""
    resolve = PrometheusApi(prometheus.base_url).label_values(
        pq.TimeRange.last(timedelta(minutes=10))
    )
    count = prometheus_name(metrics.GEN_AI_CLIENT_OPERATION_DURATION, "count")
    models = resolve(f'{count}{{gen_ai_provider_name="{PROVIDER}"}}', "gen_ai_request_model")
    assert models[0] == MODEL
    assert resolve(None, "gen_ai_provider_name")[0] <= PROVIDER  # label API: sorted names
