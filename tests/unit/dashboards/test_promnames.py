"""The OTel -> Prometheus naming rules, against names the Collector really produces."""

from __future__ import annotations

import re

import pytest

from caret_otel.dashboards.promnames import UnknownUnitError, prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.metrics import MetricSpec


def spec(name: str, instrument: str, unit: str) -> MetricSpec:
    return MetricSpec(name=name, instrument=instrument, unit=unit, brief="b", attributes=())


@pytest.mark.parametrize(
    ("metric", "series", "expected"),
    [
        (
            metrics.GEN_AI_CLIENT_OPERATION_DURATION,
            "bucket",
            "gen_ai_client_operation_duration_seconds_bucket",
        ),
        (
            metrics.GEN_AI_CLIENT_OPERATION_DURATION,
            "count",
            "gen_ai_client_operation_duration_seconds_count",
        ),
        (metrics.GEN_AI_CLIENT_TOKEN_USAGE, "sum", "gen_ai_client_token_usage_sum"),
        (metrics.CARET_TASK_STARTS, None, "caret_task_starts_total"),
        (metrics.CARET_TASK_DURATION, "bucket", "caret_task_duration_seconds_bucket"),
        (metrics.CARET_SESSION_ACTIVE, None, "caret_session_active"),
        (metrics.CARET_CREDITS_CONSUMED, None, "caret_credits_consumed_total"),
        (metrics.CARET_TOKENS, None, "caret_tokens_total"),
    ],
)
def test_registry_metrics_get_the_collector_names(
    metric: MetricSpec, series: str | None, expected: str
) -> None:
    assert prometheus_name(metric, series) == expected


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        (
            spec("http.server.request.body.size", "histogram", "By"),
            "http_server_request_body_size_bytes_sum",
        ),
        (spec("net.io", "counter", "By/s"), "net_io_bytes_per_second_total"),
        (spec("cpu.utilization", "gauge", "1"), "cpu_utilization_ratio"),
        (spec("queue.size", "updowncounter", "1"), "queue_size"),
        (spec("x.latency.seconds", "histogram", "s"), "x_latency_seconds_sum"),
        (spec("jobs.total", "counter", "{job}"), "jobs_total"),
        (spec("temp", "gauge", "Cel"), "temp_celsius"),
    ],
)
def test_translation_rules(metric: MetricSpec, expected: str) -> None:
    series = "sum" if metric.instrument == "histogram" else None
    assert prometheus_name(metric, series) == expected


def test_every_registry_metric_has_a_valid_prometheus_name() -> None:
    valid = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    for metric in metrics.ALL:
        series = "bucket" if metric.instrument == "histogram" else None
        assert valid.match(prometheus_name(metric, series)), metric.name


def test_histograms_need_a_series_and_others_refuse_one() -> None:
    with pytest.raises(ValueError, match="histogram"):
        prometheus_name(metrics.CARET_TASK_DURATION)
    with pytest.raises(ValueError, match="no 'bucket' series"):
        prometheus_name(metrics.CARET_TASK_STARTS, "bucket")


def test_an_unknown_unit_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnknownUnitError, match="furlong"):
        prometheus_name(spec("race.length", "gauge", "furlong"))


def test_labels() -> None:
    assert prometheus_label(attrs.ERROR_TYPE) == "error_type"
    assert prometheus_label(attrs.GEN_AI_PROVIDER_NAME) == "gen_ai_provider_name"
    assert prometheus_label(attrs.DEPLOYMENT_ENVIRONMENT_NAME) == "deployment_environment_name"
    assert prometheus_label("1st.label") == "key_1st_label"
