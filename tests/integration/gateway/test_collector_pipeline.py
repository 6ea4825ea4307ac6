"""Client events posted to the gateway arrive, scrubbed, where our real Collector sends
them: log records and the caret.task span in the Tempo/Loki sink, metrics in Prometheus.
And data accepted while the Collector is down is delivered once it is up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.services import (
    CollectorFactory,
    OtlpRecord,
    RunningCollector,
    SinkCollector,
    wait_until,
)
from integration.gateway.gateway_support import GatewayFactory, client_event, iso

from caret_otel.receivers.gateway.task_spans import task_trace_id
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, spans
from caret_otel.stack import PrometheusServer

pytestmark = pytest.mark.integration

SECRET_PROMPT = "please fix /home/alice/secret-project/main.py"


def test_events_land_scrubbed_in_the_sink_and_prometheus(
    gateway_factory: GatewayFactory,
    collector: RunningCollector,
    sink_collector: SinkCollector,
    prometheus: PrometheusServer,
) -> None:
    run = uuid.uuid4().hex[:12]
    user, task, model = f"user-{run}", f"task-{run}", f"model-{run}"
    gw = gateway_factory(otlp_endpoint=collector.http_url)
    created_at = datetime.now(UTC) - timedelta(seconds=30)
    completed_at = created_at + timedelta(seconds=20)
    common = {"model": model, "task_id": task}
    batch = [
        {**client_event("task.created", user=user, mode="act", prompt=SECRET_PROMPT, email="a@b.example",
                        file_path="/home/alice/x.py", favourite_colour="blue", **common),
         "timestamp": iso(created_at)},
        {**client_event("task.tokens", user=user, tokens_in=1200, tokens_out=340, cached_tokens=50, **common)},
        {**client_event("task.completed", user=user, outcome="success", duration=20.0, **common),
         "timestamp": iso(completed_at)},
    ]  # fmt: skip
    response = gw.post_events(batch, headers={"CF-IPCountry": "de"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    assert response.json()["dropped_attributes"] == 4  # prompt, email, file_path, favourite_colour

    user_pseudonym = gw.gateway.pseudonymizer.pseudonymize(user)
    task_pseudonym = gw.gateway.pseudonymizer.pseudonymize(task)

    def mine(record: OtlpRecord) -> bool:
        return record.attributes.get(attrs.CARET_TASK_ID) == task_pseudonym

    created = sink_collector.wait_for_log_record(
        lambda r: mine(r) and r.name == events.CARET_TASK_CREATED.name
    )
    assert created.resource[attrs.SERVICE_NAME] == "caret-client"
    assert created.attributes[attrs.ENDUSER_PSEUDO_ID] == user_pseudonym
    assert created.attributes[attrs.GEN_AI_REQUEST_MODEL] == model
    assert created.attributes[attrs.GEO_COUNTRY_ISO_CODE] == "DE"
    assert created.attributes[attrs.GEO_CONTINENT_CODE] == "EU"
    assert created.attributes[attrs.CARET_CLIENT_VERSION] == "1.0.0"
    assert (
        int(created.data["timeUnixNano"])
        == int(created_at.timestamp()) * 10**9 + created_at.microsecond * 1000
    )
    assert int(created.data["observedTimeUnixNano"]) > int(created.data["timeUnixNano"])
    assert not created.data.get("body")  # no body: everything is in the attributes
    sink_collector.wait_for_log_record(
        lambda r: mine(r) and r.name == events.CARET_TASK_TOKENS.name
    )
    sink_collector.wait_for_log_record(
        lambda r: mine(r) and r.name == events.CARET_TASK_COMPLETED.name
    )

    span = sink_collector.wait_for_span(lambda r: r.name == spans.CARET_TASK and mine(r))
    assert span.data["traceId"] == task_trace_id(task_pseudonym).hex()
    assert int(span.data["startTimeUnixNano"]) == int(created_at.timestamp() * 1e6) * 1000
    assert int(span.data["endTimeUnixNano"]) == int(completed_at.timestamp() * 1e6) * 1000
    assert span.attributes[attrs.CARET_TASK_OUTCOME] == "success"
    assert span.attributes[attrs.CARET_TASK_MODE] == "act"

    # Nothing identifying or forbidden reached storage, in any form.
    stored = "".join(sink_collector.path(s).read_text() for s in ("logs", "traces"))
    for secret in (
        user,
        task,
        SECRET_PROMPT,
        "a@b.example",
        "/home/alice",
        "favourite_colour",
        "session-1",
    ):
        assert secret not in stored

    selector = f'gen_ai_request_model="{model}"'
    starts = prometheus.wait_for(f"caret_task_starts_total{{{selector}}}")
    assert float(starts[0]["value"][1]) == 1
    assert starts[0]["metric"]["caret_task_mode"] == "act"
    tokens = prometheus.wait_for(f"caret_tokens_total{{{selector}}}", until=lambda r: len(r) == 3)
    # Input tokens include cache reads (as upstream gen_ai.usage.input_tokens does).
    assert {s["metric"]["caret_token_type"]: float(s["value"][1]) for s in tokens} == {
        "input": 1250, "output": 340, "cache_read": 50,
    }  # fmt: skip
    usage = prometheus.wait_for(
        f'gen_ai_client_token_usage_count{{{selector},gen_ai_token_type="input"}}'
    )
    assert float(usage[0]["value"][1]) == 1
    duration = prometheus.wait_for(f"caret_task_duration_seconds_sum{{{selector}}}")
    assert float(duration[0]["value"][1]) == 20.0
    # No pseudonym became a label.
    for series in starts + tokens:
        assert user_pseudonym not in series["metric"].values()


def test_data_accepted_while_the_collector_is_down_is_delivered(
    collector_factory: CollectorFactory,
    gateway_factory: GatewayFactory,
    sink_collector: SinkCollector,
) -> None:
    # collector_factory first: fixtures tear down in reverse, so the gateway stops (and
    # flushes its metrics) while its Collector still runs.
    late = collector_factory(name="late", start=False)
    gw = gateway_factory(otlp_endpoint=late.http_url, env={"CARET_OTEL_EXPORT_GRACE_SECONDS": "60"})
    task = f"task-{uuid.uuid4().hex[:12]}"
    response = gw.post_events(
        [client_event("task.created", task_id=task), client_event("ui.model_selected")]
    )
    assert response.status_code == 202
    wait_until(
        lambda: gw.gateway.exporter.collector_failing_for is not None,
        what="a failed export attempt",
    )
    late.process.start()
    task_pseudonym = gw.gateway.pseudonymizer.pseudonymize(task)
    sink_collector.wait_for_log_record(
        lambda r: r.attributes.get(attrs.CARET_TASK_ID) == task_pseudonym, timeout=30
    )
    wait_until(
        lambda: gw.gateway.exporter.collector_failing_for is None, what="exports succeeding again"
    )
    assert gw.gateway.exporter.queue("logs").items == 0
