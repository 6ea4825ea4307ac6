"""Client-event metric labels: every allowed label the event can carry is set, ``other``
when the event has no value for it (not sent, or dropped off-shape by the privacy
processor); a label the event cannot carry is not made up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from metric_capture import MetricCapture

from caret_otel.receivers.gateway import client_metrics
from caret_otel.receivers.gateway.config import OtlpTarget
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics
from caret_otel.semconv.policy import OTHER_VALUE, load_policy


@pytest.fixture
def recorder() -> Iterator[client_metrics.ClientMetrics]:
    policy = load_policy()
    provider, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), policy, exporter=MetricCapture()
    )
    yield recorder
    provider.shutdown()


def _sums(
    recorder: client_metrics.ClientMetrics, event: str, attributes: dict[str, object]
) -> dict[str, dict[str, object]]:
    batch = client_metrics.MetricBatch()
    recorder.observe(batch, event, attributes)  # type: ignore[arg-type]
    return {name: dict(labels) for name, labels in batch.sums}


def test_a_label_without_a_value_is_other(recorder: client_metrics.ClientMetrics) -> None:
    # the privacy processor dropped the model (off-shape) and the client sent no mode
    sums = _sums(recorder, events.CARET_TASK_CREATED.name, {attrs.GEN_AI_PROVIDER_NAME: "openai"})
    assert sums[metrics.CARET_TASK_STARTS.name] == {
        attrs.GEN_AI_PROVIDER_NAME: "openai",
        attrs.GEN_AI_REQUEST_MODEL: OTHER_VALUE,
        attrs.CARET_TASK_MODE: OTHER_VALUE,
        attrs.CARET_CLIENT_PLATFORM: OTHER_VALUE,
    }


def test_a_label_the_event_cannot_carry_is_left_out(
    recorder: client_metrics.ClientMetrics,
) -> None:
    focus = {attrs.CARET_FEATURE_NAME: "focus_chain", attrs.CARET_FEATURE_ACTION: "enabled"}
    sums = _sums(recorder, events.CARET_TASK_FOCUS_CHAIN.name, focus)
    assert sums[metrics.CARET_FEATURE_USES.name] == focus  # no gen_ai.tool.name at all
    assert attrs.GEN_AI_TOOL_NAME in events.CARET_TASK_TOOL_USED.attributes
    tool = _sums(recorder, events.CARET_TASK_TOOL_USED.name, {attrs.CARET_FEATURE_NAME: "tool"})
    assert tool[metrics.CARET_FEATURE_USES.name][attrs.GEN_AI_TOOL_NAME] == OTHER_VALUE


def test_a_measurements_own_label_wins(recorder: client_metrics.ClientMetrics) -> None:
    sums = _sums(
        recorder,
        events.CARET_USER_OPT_OUT.name,
        {attrs.CARET_CONSENT_TELEMETRY_ENABLED: True},  # the event's value never wins
    )
    assert sums[metrics.CARET_CONSENT_CHANGES.name] == {
        attrs.CARET_CONSENT_TELEMETRY_ENABLED: False
    }
