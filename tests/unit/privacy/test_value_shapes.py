"""Values fail closed: whatever a hostile or careless sender puts into any public
attribute, any client property or any string field of any OTLP signal, what leaves the
privacy processor is a registry-shaped value (or redacted free text, a pseudonym, a
coarse code, a value the registry supplies) and holds none of the planted secrets.

The OTLP side is driven by the protobuf descriptors themselves: every string field of
every message reachable from the three export requests is filled with hostile text,
and :data:`OTLP_FIELDS` must name every such field (so a new OTLP release that adds a
string field fails here until someone decides how it is handled).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from unit.privacy import otlp_docs as doc
from unit.privacy.conftest import make_pseudonymizer
from unit.privacy.planted import Planted, any_secret
from unit.privacy.test_client_events import PLAN_EXAMPLE

from caret_otel.otlp.json_format import parse_request
from caret_otel.processors.privacy.client_events import ClientEventError, ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.otlp import (
    OTLP_FIELDS,
    SCHEMA_URL_RE,
    scrub_logs_request,
    scrub_metrics_request,
    scrub_trace_request,
)
from caret_otel.processors.privacy.pseudonyms import is_pseudonym
from caret_otel.processors.privacy.redaction import CONTROL_RE, PATH, redact_text
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics
from caret_otel.semconv.policy import OTHER_VALUE, AttributeRule, load_policy

POLICY = load_policy()
ENGINE = PrivacyEngine(POLICY, make_pseudonymizer())
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REQUESTS = (ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest)
SHAPED = sorted(
    name
    for name, rule in POLICY.attributes.items()
    if rule.privacy == "public" and rule.type == "string" and rule.shape is not None
)
FREE_TEXT = sorted(name for name, rule in POLICY.attributes.items() if rule.free_text)
HANGUL_NAMES = ("김철수", "이영희", "박지민", "홍길동")
CONTROL_TEXTS = ("claude\x00sonnet", "1.0.0\x1b[31m", "ko\x07", "a\x00")
PROMPTS = (
    "Please refactor the login handler in my repo",
    "fix the bug where 김철수's invoice total is wrong",
    "리팩터링 해줘: 결제 모듈",
)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, Planted | None]:
    """A hostile value, and the planted secret it carries (if any)."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        secret = draw(any_secret)
        return secret.text, secret
    if choice == 1:
        return draw(st.sampled_from(HANGUL_NAMES)), None
    if choice == 2:
        return draw(st.sampled_from(CONTROL_TEXTS)), None
    if choice == 3:
        return draw(st.sampled_from(PROMPTS)), None
    if choice == 4:
        secret = draw(any_secret)
        glue = draw(st.sampled_from([" ", "\u200b", "%20"]))
        return f"claude-sonnet-4{glue}{secret.text}", secret
    return draw(st.text(max_size=40)), None


hostile_lists = st.lists(hostile(), min_size=1, max_size=8)


class Values:
    """Hands out hostile values in turn and remembers the secrets planted."""

    def __init__(self, drawn: list[tuple[str, Planted | None]]) -> None:
        self._texts = [text for text, _ in drawn]
        self.secrets = [secret for _, secret in drawn if secret is not None]
        self.plain = [text.casefold() for text, secret in drawn if secret is None]
        """Texts drawn without a secret: a needle they contain proves nothing."""
        self._next = 0

    def __call__(self) -> str:
        text = self._texts[self._next % len(self._texts)]
        self._next += 1
        return text


# --- the invariant -------------------------------------------------------------------------


def _backstop_clean(key: str, value: str) -> bool:
    kinds = redact_text(value)[1]
    return all(kind == PATH and key == attrs.HTTP_ROUTE for kind in kinds)


def check_value(key: str, rule: AttributeRule, value: object, *, metric: bool) -> None:
    """One attribute value that left the processor is what the registry allows."""
    values = value if isinstance(value, list | tuple) else [value]
    for item in values:
        if not isinstance(item, str):
            continue
        assert not CONTROL_RE.search(item), (key, item)
        if rule.privacy == "pseudonymous":
            assert is_pseudonym(item), (key, item)
        elif rule.privacy == "coarse":
            assert re.fullmatch(r"[A-Z]{2}", item), (key, item)
        elif rule.free_text:
            assert redact_text(item)[1] == [], (key, item)
        else:
            assert rule.shape is not None, key
            if metric and item == OTHER_VALUE:
                continue
            assert rule.shape.matches(item), (key, item)
            assert _backstop_clean(key, item), (key, item)


def check_attributes(attributes: dict[str, object], *, metric: bool = False) -> None:
    for key, value in attributes.items():
        rule = POLICY.rule(key)
        assert rule is not None, f"unknown key {key!r} left the processor"
        assert rule.privacy != "forbidden", key
        assert not metric or rule.metric, key
        check_value(key, rule, value, metric=metric)


def check_no_secret(values: Values, output: str) -> None:
    for secret in values.secrets:
        if any(n.casefold() in p for n in secret.needles for p in values.plain):
            continue
        needle = secret.found_in(output)
        assert needle is None, f"{secret.kind} {needle!r} survived in {output[:2000]}"


# --- engine: every public attribute ----------------------------------------------------------


@given(drawn=hostile_lists, metric=st.booleans())
@SETTINGS
def test_every_public_attribute_leaves_shaped_or_not_at_all(
    drawn: list[tuple[str, Planted | None]], metric: bool
) -> None:
    values = Values(drawn)
    sent = {name: values() for name in [*SHAPED, *FREE_TEXT]}
    report = ScrubReport()
    out = ENGINE.scrub_attributes(sent, report, metric=metric)
    check_attributes(out, metric=metric)
    check_no_secret(values, json.dumps(out, ensure_ascii=False))
    for key, value in out.items():
        rule = POLICY.rule(key)
        if rule is not None and rule.shape is not None and value == OTHER_VALUE:
            assert report.dropped[(key, "shape")] >= 1


def test_registry_examples_and_real_model_ids_keep_their_shape() -> None:
    kept = {
        attrs.GEN_AI_REQUEST_MODEL: "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
        attrs.GEN_AI_RESPONSE_MODEL: "claude-3-5-sonnet@20240620",
        attrs.GEN_AI_PROVIDER_NAME: "openai-native",
        attrs.CARET_CLIENT_VERSION: "3.38.2",
        attrs.CARET_CLIENT_LANGUAGE: "zh-CN",
        attrs.CARET_CLIENT_PLATFORM: "Visual Studio Code",
        attrs.HTTP_ROUTE: "/v1/messages",
        attrs.OS_TYPE: "darwin",
    }
    assert ENGINE.scrub_attributes(kept, ScrubReport()) == kept
    for model in (
        "anthropic/claude-sonnet-4.5",
        "qwen2.5-coder:32b",
        "accounts/fireworks/models/llama-v3p1-70b-instruct",
    ):
        assert ENGINE.scrub_attributes({attrs.GEN_AI_REQUEST_MODEL: model}, ScrubReport())


@pytest.mark.parametrize(
    "event_id",
    [
        "41111111-1111-1111-1111-11111111111a",  # the backstop would read a card number
        "4111111111111111abcdef0123456789",
        "0" * 31 + "f",
        "A3F0" * 10,
    ],
)
def test_hex_and_uuid_ids_are_kept_whatever_digits_they_hold(event_id: str) -> None:
    """An id the shape admits is not judged by the free-text backstop (it would take a
    run of digits for a card or phone number and lose the id that dedups the event)."""
    kept = {attrs.CARET_EVENT_ID: event_id}
    assert ENGINE.scrub_attributes(kept, ScrubReport()) == kept
    # decimal digits only are not taken for an id: a card number stays a card number
    card = {attrs.CARET_EVENT_ID: "4000000000000002"}
    assert ENGINE.scrub_attributes(card, ScrubReport()) == {}


@pytest.mark.parametrize(
    "model",
    [
        "/home/alice/models/llama-3-8b.Q4_K_M.gguf",
        "C:\\models\\llama.gguf",
        "alice@example.com",
        "sk-ant-api03-abcdefghijklmnopqrstuvwx",
        "my model",
        "models/llama-3-8b.gguf",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "김철수",
    ],
)
def test_a_model_id_that_is_a_path_key_or_name_is_dropped_or_other(model: str) -> None:
    report = ScrubReport()
    assert ENGINE.scrub_attributes({attrs.GEN_AI_REQUEST_MODEL: model}, report) == {}
    assert report.dropped == {(attrs.GEN_AI_REQUEST_MODEL, "shape"): 1}
    label = ENGINE.scrub_attributes({attrs.GEN_AI_REQUEST_MODEL: model}, report, metric=True)
    assert label == {attrs.GEN_AI_REQUEST_MODEL: OTHER_VALUE}


# --- client events: every client property and client_info field -------------------------------


def _events_allowing(name: str) -> list[events.EventSpec]:
    return [
        spec
        for spec in events.ALL
        if name in spec.attributes and spec.client_event and not spec.client_event.endswith("*")
    ]


CLIENT_PROPERTIES = sorted(
    (key, name)
    for key, name in POLICY.client_properties.items()
    if _events_allowing(name) and POLICY.attributes[name].privacy != "forbidden"
)


@given(drawn=hostile_lists, which=st.integers(0, 10_000))
@SETTINGS
def test_client_properties_and_client_info_leave_shaped(
    drawn: list[tuple[str, Planted | None]], which: int
) -> None:
    values = Values(drawn)
    key, name = CLIENT_PROPERTIES[which % len(CLIENT_PROPERTIES)]
    candidates = _events_allowing(name)
    spec = candidates[which % len(candidates)]
    raw: dict[str, Any] = json.loads(json.dumps(PLAN_EXAMPLE))
    raw["event_type"] = spec.client_event
    raw["properties"][key] = values()
    raw["properties"][values()] = values()  # a hostile key too
    raw["client_info"] = {field: values() for field in POLICY.client_info}
    report = ScrubReport()
    try:
        event = ClientEventScrubber(ENGINE, InMemoryConsentStore()).scrub(raw, report)
    except ClientEventError:  # rejected per event (naming the field): nothing leaves
        return
    if event is None:
        return
    check_attributes(event.attributes)
    check_no_secret(values, json.dumps(event.attributes, ensure_ascii=False))


# --- OTLP: every string field of every signal ---------------------------------------------------


def _string_fields(
    descriptor: Descriptor, seen: set[str] | None = None
) -> Iterator[FieldDescriptor]:
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            yield field
        if field.message_type is not None:
            yield from _string_fields(field.message_type, seen)


def test_every_otlp_string_field_has_a_handling() -> None:
    """Walks the descriptors of the protobuf release installed: a new string or bytes
    field fails here until OTLP_FIELDS (and docs/privacy.md) say how it is handled."""
    found = {f.full_name for request in REQUESTS for f in _string_fields(request.DESCRIPTOR)}
    assert found - set(OTLP_FIELDS) == set(), "string fields the privacy processor does not cover"
    assert set(OTLP_FIELDS) - found == set(), "OTLP_FIELDS names fields that no longer exist"


def test_docs_list_the_handling_of_every_otlp_field() -> None:
    from caret_otel.contracts.checkout import repo_root

    text = (repo_root() / "docs" / "privacy.md").read_text(encoding="utf-8")
    for name in OTLP_FIELDS:
        assert f"`{name.removeprefix('opentelemetry.proto.')}`" in text, name


def _fill(message: Message, values: Values, depth: int = 0) -> None:
    """Every string field of ``message`` and its sub-messages set to a hostile value
    (attribute values and keys are set by the documents; names, states, URLs here)."""
    for field in message.DESCRIPTOR.fields:
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
            if field.containing_type.full_name in (KeyValue.DESCRIPTOR.full_name,):
                continue
            if field.containing_type.full_name == AnyValue.DESCRIPTOR.full_name:
                continue
            if field.name == "name" and message.DESCRIPTOR.name == "Metric":
                continue  # one registry metric, one hostile one: set by the document
            setattr(message, field.name, values())
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < 12:
            if field.is_repeated:
                for item in getattr(message, field.name):
                    _fill(item, values, depth + 1)
            elif message.HasField(field.name):
                _fill(getattr(message, field.name), values, depth + 1)


def _hostile_attributes(values: Values) -> dict[str, object]:
    hostile_values: dict[str, object] = {name: values() for name in [*SHAPED, *FREE_TEXT]}
    hostile_values[values()] = values()  # an unknown key
    hostile_values[attrs.USER_ID] = values()
    return hostile_values


def _requests(values: Values) -> list[tuple[Message, Any]]:
    attributes = _hostile_attributes(values)
    span = doc.span(values(), attributes)
    span["events"] = [{"timeUnixNano": "1", "name": values(), "attributes": doc.kvs(attributes)}]
    span["links"] = [{"traceId": "ab" * 16, "spanId": "cd" * 8, "attributes": doc.kvs(attributes)}]
    span["status"] = {"code": 2, "message": values()}
    traces = doc.traces([span], resource=attributes)
    body = {**attributes, "nested": {"k": values()}, values(): values()}
    logs = doc.logs(
        [doc.log_record(body, attributes), doc.log_record(values(), attributes)],
        resource=attributes,
    )
    labels = {name: values() for name in SHAPED if POLICY.attributes[name].metric}
    metric_docs = [
        doc.metric(
            metrics.CARET_TOKENS.name, "sum", [doc.number_point(3, labels, exemplar=labels)]
        ),
        doc.metric(values(), "sum", [doc.number_point(1, labels)]),
    ]
    metric_request = doc.metrics(metric_docs, resource=attributes)
    out: list[tuple[Message, Any]] = []
    for document, scrub in (
        (traces, scrub_trace_request),
        (logs, scrub_logs_request),
        (metric_request, scrub_metrics_request),
    ):
        _, request = parse_request(document)
        _fill(request, values)
        for resource in _messages(request, "Resource"):
            resource.entity_refs.add(type=values(), schema_url=values(), id_keys=[values()])
        out.append((request, scrub))
    return out


def _messages(message: Message, name: str) -> Iterator[Any]:
    if message.DESCRIPTOR.name == name:
        yield message
    for field in message.DESCRIPTOR.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.is_repeated:
            for item in getattr(message, field.name):
                yield from _messages(item, name)
        elif message.HasField(field.name):
            yield from _messages(getattr(message, field.name), name)


def _check_kvs(kvs: Any, *, metric: bool) -> None:
    for kv in kvs:
        rule = POLICY.rule(kv.key)
        assert rule is not None, kv.key
        assert rule.privacy != "forbidden", kv.key
        check_value(kv.key, rule, _python(kv.value), metric=metric)


def _python(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "kvlist_value":
        _check_kvs(value.kvlist_value.values, metric=False)
        return None
    if kind == "array_value":
        return [_python(v) for v in value.array_value.values]
    assert kind != "bytes_value", "bytes left the processor"
    return getattr(value, kind) if kind else None


def _check_request(request: Message) -> None:
    for name in ("Span", "Span.Event", "Span.Link", "Resource", "InstrumentationScope"):
        for message in _messages(request, name.split(".")[-1]):
            _check_kvs(message.attributes, metric=False)
    for name in ("NumberDataPoint", "Exemplar"):
        for message in _messages(request, name):
            kvs = message.filtered_attributes if name == "Exemplar" else message.attributes
            _check_kvs(kvs, metric=True)
    for record in _messages(request, "LogRecord"):
        _check_kvs(record.attributes, metric=False)
        if record.HasField("body"):
            body = _python(record.body)
            if isinstance(body, str):
                assert redact_text(body)[1] == []
        assert record.event_name in POLICY.events or redact_text(record.event_name)[1] == []
        assert redact_text(record.severity_text)[1] == []
    for span in _messages(request, "Span"):
        assert span.trace_state == ""
        assert all(link.trace_state == "" for link in span.links)
        assert redact_text(span.name)[1] == []
        assert redact_text(span.status.message)[1] == []
    for scope in _messages(request, "InstrumentationScope"):
        assert scope.version == "" or POLICY.shapes["semver"].matches(scope.version)
    for metric in _messages(request, "Metric"):
        assert metric.name in POLICY.metrics
        assert metric.unit == POLICY.metrics[metric.name]["unit"]
    for resource in _messages(request, "Resource"):
        for ref in resource.entity_refs:
            assert re.fullmatch(r"[a-z][a-z0-9._]{0,63}", ref.type), ref.type
            assert ref.schema_url == "" or SCHEMA_URL_RE.fullmatch(ref.schema_url)
    text = json_format.MessageToJson(request)
    for url in re.findall(r'"schemaUrl": "([^"]*)"', text):
        assert SCHEMA_URL_RE.fullmatch(url), url
    assert not CONTROL_RE.search(json.loads(json.dumps(text)))


@given(drawn=hostile_lists)
@SETTINGS
def test_every_otlp_string_field_of_every_signal_leaves_shaped(
    drawn: list[tuple[str, Planted | None]],
) -> None:
    values = Values(drawn)
    for request, scrub in _requests(values):
        scrub(request, ENGINE, InMemoryConsentStore(), ScrubReport())
        kept = [*_messages(request, "Span"), *_messages(request, "LogRecord")]
        kept += list(_messages(request, "Metric"))
        assert kept, "the processor must keep the records themselves (not win by deleting)"
        _check_request(request)
        check_no_secret(values, json_format.MessageToJson(request, ensure_ascii=False))


def test_unknown_protobuf_fields_are_discarded() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="s")
    # Field 999 of a Span, as a newer sender might add it: bytes we cannot read.
    data = request.SerializeToString()
    unknown = b"\xba\x3e\x05alice"  # field 999, wire type 2, "alice"
    span_bytes = request.resource_spans[0].scope_spans[0].spans[0].SerializeToString() + unknown
    tampered = ExportTraceServiceRequest()
    tampered.ParseFromString(data)
    tampered.resource_spans[0].scope_spans[0].spans[0].ParseFromString(span_bytes)
    assert b"alice" in tampered.SerializeToString()
    scrub_trace_request(tampered, ENGINE, InMemoryConsentStore(), ScrubReport())
    assert b"alice" not in tampered.SerializeToString()
