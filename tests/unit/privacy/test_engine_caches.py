"""The privacy engine's caches change no result: whatever goes in, a warm engine (every
decision cached), a cold one and one that caches nothing give the same output and the
same report; the caches stay bounded and never hold an identifier that gets
pseudonymised. The SDK log processor's last-resource/last-scope shortcut gives every
record its own scrubbed resource and scope.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from unit.privacy.conftest import make_pseudonymizer
from unit.privacy.planted import ALLOWED_LANGUAGES, ALLOWED_MODELS, ALLOWED_PROVIDERS, any_secret
from unit.privacy.test_value_shapes import CONTROL_TEXTS, FREE_TEXT, HANGUL_NAMES, PROMPTS, SHAPED

from caret_otel.processors.privacy import engine as engine_module
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import Limits, PrivacyEngine
from caret_otel.processors.privacy.redaction import is_opaque_id
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.processors.privacy.sdk import PrivacyLogRecordProcessor
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv.policy import ValueShape, load_policy

POLICY = load_policy()
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHAPES: dict[str, ValueShape] = {
    name: rule.shape for name, rule in POLICY.attributes.items() if rule.shape is not None
}
PSEUDONYMOUS = sorted(n for n, r in POLICY.attributes.items() if r.privacy == "pseudonymous")
COARSE = sorted(n for n, r in POLICY.attributes.items() if r.privacy == "coarse")
TYPED = sorted(
    n
    for n, r in POLICY.attributes.items()
    if r.privacy == "public" and r.type in ("int", "double", "boolean", "string[]")
)
SAMPLES = (
    *ALLOWED_MODELS,
    *ALLOWED_PROVIDERS,
    *ALLOWED_LANGUAGES,
    *HANGUL_NAMES,
    *CONTROL_TEXTS,
    *PROMPTS,
    "1.0.3",
    "v2.1",
    "KR",
    "kr",
    "/v1/messages",
    "/home/alice/.ssh/id_rsa",
    "cd2662154e6d76b2b2b92e70c0cac3cc",  # an SDK event id (opaque)
    "0123456789012345",  # digits only: not opaque, a card-like run for the backstop
    "6c29129a-fc4a-4e14-af5d-8b1dd9886185",
    "user-17",
    "",
    " ",
    "x" * 70,
    "x" * 200,
)
texts = st.one_of(
    st.sampled_from(SAMPLES),
    any_secret.map(lambda secret: secret.text),
    any_secret.map(lambda secret: f"claude-sonnet-4 {secret.text}"),
    st.text(max_size=40),
    st.sampled_from(SAMPLES).map(lambda s: s * 30),  # past the text cache's length
)
values = st.one_of(texts, st.integers(-5, 5), st.floats(allow_nan=True), st.booleans())


class _Fresh:
    """An engine that decides everything afresh: each call goes to a new engine, whose
    caches are empty. (Not a patched engine: the privacy engine may be a compiled
    extension, whose instances cannot be patched; see receivers/gateway hot_path.py.)"""

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._pseudonymizer = make_pseudonymizer()

    def __getattr__(self, name: str) -> Any:
        return getattr(PrivacyEngine(POLICY, self._pseudonymizer, self._limits), name)


def uncached_engine(limits: Limits | None = None) -> PrivacyEngine:
    """An engine that decides everything afresh on every call."""
    return _Fresh(limits)  # type: ignore[return-value]


WARM = PrivacyEngine(POLICY, make_pseudonymizer())
"""Shared by every example, so it answers from what earlier examples cached."""
UNCACHED = uncached_engine()
SMALL = Limits(max_attributes=5, max_value_length=12, max_array_length=3)
WARM_SMALL = PrivacyEngine(POLICY, make_pseudonymizer(), SMALL)
UNCACHED_SMALL = uncached_engine(SMALL)


def _scrub(engine: PrivacyEngine, sent: dict[str, object], metric: bool) -> tuple[str, object]:
    report = ScrubReport()
    out = engine.scrub_attributes(sent, report, metric=metric)
    # items in order: the output must keep the input's key order too
    return repr(list(out.items())), report.as_dict()


@given(
    chosen=st.lists(
        st.tuples(st.sampled_from([*SHAPED, *FREE_TEXT, *PSEUDONYMOUS, *COARSE, *TYPED]), values),
        min_size=1,
        max_size=12,
    ),
    unknown=st.lists(st.text(max_size=12), max_size=2),
    metric=st.booleans(),
)
@SETTINGS
def test_cached_attributes_equal_uncached(
    chosen: list[tuple[str, object]], unknown: list[str], metric: bool
) -> None:
    sent: dict[str, object] = dict(chosen)
    for key in unknown:
        sent.setdefault(key, "value")
    for warm, uncached in ((WARM, UNCACHED), (WARM_SMALL, UNCACHED_SMALL)):
        expected = _scrub(uncached, sent, metric)
        cold = PrivacyEngine(POLICY, make_pseudonymizer(), warm.limits)
        assert _scrub(cold, sent, metric) == expected
        assert _scrub(warm, sent, metric) == expected
        assert _scrub(warm, sent, metric) == expected  # now from the cache


@given(text=texts, key=st.sampled_from(["body", attrs.EXCEPTION_MESSAGE]))
@SETTINGS
def test_cached_text_and_bodies_equal_uncached(text: str, key: str) -> None:
    for warm, uncached in ((WARM, UNCACHED), (WARM_SMALL, UNCACHED_SMALL)):
        for _ in range(2):
            got, expected = ScrubReport(), ScrubReport()
            assert warm.scrub_text(text, got, key=key) == uncached.scrub_text(
                text, expected, key=key
            )
            assert got.as_dict() == expected.as_dict()
            body: object = text if key == "body" else {attrs.EXCEPTION_MESSAGE: text, "x": [text]}
            got, expected = ScrubReport(), ScrubReport()
            assert json.dumps(warm.scrub_body(body, got)) == json.dumps(
                uncached.scrub_body(body, expected)
            )
            assert got.as_dict() == expected.as_dict()


@given(value=texts)
@SETTINGS
def test_shape_ok_is_the_same_cached_or_not(value: str) -> None:
    for key, shape in SHAPES.items():
        expected = UNCACHED.shape_ok(key, shape, value)
        assert WARM.shape_ok(key, shape, value) == expected
        assert WARM.shape_ok(key, shape, value) == expected


@given(value=texts)
@SETTINGS
def test_fast_shape_matcher_is_shape_matches(value: str) -> None:
    for shape in SHAPES.values():
        matcher = engine_module._shape_matcher(shape)
        assert matcher(value) == shape.matches(value), (shape, value)
        for allowed in shape.enum or ():
            assert matcher(allowed) == shape.matches(allowed), (shape, allowed)


def test_shape_cache_is_bounded_over_all_keys() -> None:
    engine = PrivacyEngine(POLICY, make_pseudonymizer())
    bound = engine_module._SHAPE_CACHE_SIZE
    for i in range(bound * 2 + 7):
        engine.scrub_attributes(
            {
                attrs.GEN_AI_REQUEST_MODEL: f"model-{i}",
                attrs.CARET_PLAN_NAME: f"plan{i}",
            },
            ScrubReport(),
        )
        held = sum(len(known) for known in engine._shapes.by_key.values())
        assert held <= bound
    assert held > 0  # it does cache


def test_text_cache_is_bounded_and_skips_long_texts() -> None:
    engine = PrivacyEngine(POLICY, make_pseudonymizer())
    bound = engine_module._TEXT_CACHE_SIZE
    for i in range(bound + 10):
        engine.scrub_text(f"credit check failed after {i} retries", ScrubReport())
        assert len(engine._text_cache) <= bound
    long_text = "x" * (engine_module._TEXT_CACHE_MAX_LENGTH + 1)
    engine.scrub_text(long_text, ScrubReport())
    assert long_text not in engine._text_cache


def test_opaque_ids_are_not_cached_and_ids_to_pseudonymise_never() -> None:
    engine = PrivacyEngine(POLICY, make_pseudonymizer())
    sent = {
        attrs.CARET_EVENT_ID: "cd2662154e6d76b2b2b92e70c0cac3cc",
        attrs.ENDUSER_ID: "alice@example.com",
        attrs.USER_ID: "user-4711",
        attrs.GEN_AI_REQUEST_MODEL: "gpt-4o",
    }
    assert is_opaque_id(sent[attrs.CARET_EVENT_ID])
    out = engine.scrub_attributes(sent, ScrubReport())
    assert out[attrs.CARET_EVENT_ID] == sent[attrs.CARET_EVENT_ID]
    cached = {value for known in engine._shapes.by_key.values() for value in known}
    assert cached == {"gpt-4o"}
    assert not set(engine._text_cache) & {"alice@example.com", "user-4711"}


def test_log_processor_gives_each_record_its_own_resource_and_scope() -> None:
    engine = PrivacyEngine(POLICY, make_pseudonymizer())
    processor = PrivacyLogRecordProcessor(engine, InMemoryConsentStore())
    exported = InMemoryLogRecordExporter()
    processor.add_log_record_processor(SimpleLogRecordProcessor(exported))
    services = ("llm-proxy", "billing")
    providers = [
        LoggerProvider(
            resource=Resource.create({attrs.SERVICE_NAME: name, attrs.HOST_NAME: "alice-pc"}),
            multi_log_record_processor=processor,
            shutdown_on_exit=False,
        )
        for name in services
    ]
    loggers = [(p, p.get_logger(scope)) for p in providers for scope in ("caret.a", "caret.b")]
    for round_ in range(3):
        for _, logger in loggers:
            logger.emit(attributes={attrs.GEN_AI_REQUEST_MODEL: "gpt-4o", "n": round_})
    records = exported.get_finished_logs()
    assert len(records) == 3 * len(loggers)
    for i, record in enumerate(records):
        provider, logger = loggers[i % len(loggers)]
        expected_service = services[providers.index(provider)]
        assert record.resource.attributes[attrs.SERVICE_NAME] == expected_service
        assert attrs.HOST_NAME not in record.resource.attributes  # scrubbed, not the original
        assert record.instrumentation_scope is not None
        assert record.instrumentation_scope.name == ("caret.a", "caret.b")[i % 2]
        assert dict(record.log_record.attributes or {}) == {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o"}
