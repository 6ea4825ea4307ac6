"""GenAI instrumentation of httpx against a real local server that answers like each
provider API (``caret_otel.devtools.provider_stub``): spans, attributes and metric
points exactly as specified, for sync and async clients, plain and streamed responses,
success, 4xx, 5xx, timeouts and broken streams - and never any message content."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from caret_otel.devtools.provider_stub import RESPONSE_MODEL_SUFFIX, ProviderStub, StubUsage
from caret_otel.sdk.genai import ApiShape, instrument_httpx, uninstrument_httpx
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics as metric_specs

from .conftest import Captured, Instrument, fresh_capture

MODEL = "stub-model-1"
RESPONSE_MODEL = MODEL + RESPONSE_MODEL_SUFFIX
PROMPT_SECRET = "PROMPT-SECRET-1a2b3c"
SYSTEM_SECRET = "SYSTEM-SECRET-4d5e6f"
REPLY_SECRET = "REPLY-SECRET-7a8b9c"
REPLY = f"The answer is {REPLY_SECRET} indeed"
SECRETS = (PROMPT_SECRET, SYSTEM_SECRET, REPLY_SECRET, "rejected")
USAGE = StubUsage(input=11, output=7, cache_read=5, cache_creation=3)
MAX_TOKENS = 256

DURATION = metric_specs.GEN_AI_CLIENT_OPERATION_DURATION
TOKENS = metric_specs.GEN_AI_CLIENT_TOKEN_USAGE


@dataclass(frozen=True)
class ApiCase:
    name: str
    provider: str
    path: str
    shape: ApiShape
    input_tokens: int
    cache_creation: int | None
    finish_reasons: tuple[str, ...]
    response_id_prefix: str
    stream_error: str
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self, *, stream: bool, model: str | None = MODEL) -> dict[str, Any]:
        if self.shape is ApiShape.ANTHROPIC_MESSAGES:
            body: dict[str, Any] = {
                "max_tokens": MAX_TOKENS,
                "system": SYSTEM_SECRET,
                "messages": [{"role": "user", "content": PROMPT_SECRET}],
            }
        elif self.shape is ApiShape.OPENAI_CHAT_COMPLETIONS:
            body = {
                "max_completion_tokens": MAX_TOKENS,
                "messages": [
                    {"role": "system", "content": SYSTEM_SECRET},
                    {"role": "user", "content": PROMPT_SECRET},
                ],
            }
            if stream:
                body["stream_options"] = {"include_usage": True}
        else:
            body = {
                "max_output_tokens": MAX_TOKENS,
                "instructions": SYSTEM_SECRET,
                "input": PROMPT_SECRET,
            }
        if model is not None:
            body["model"] = model
        body["stream"] = stream
        return body


ANTHROPIC = ApiCase(
    name="anthropic-messages",
    provider="anthropic",
    path="/v1/messages",
    shape=ApiShape.ANTHROPIC_MESSAGES,
    # Upstream: Anthropic's input_tokens + cache reads + cache writes.
    input_tokens=USAGE.input + USAGE.cache_read + USAGE.cache_creation,
    cache_creation=USAGE.cache_creation,
    finish_reasons=("end_turn",),
    response_id_prefix="msg_stub_",
    stream_error="overloaded_error",
)
OPENAI_CHAT = ApiCase(
    name="openai-chat-completions",
    provider="openai",
    path="/v1/chat/completions",
    shape=ApiShape.OPENAI_CHAT_COMPLETIONS,
    input_tokens=USAGE.input + USAGE.cache_read,
    cache_creation=None,
    finish_reasons=("stop",),
    response_id_prefix="chatcmpl-stub",
    stream_error="server_error",
)
OPENAI_RESPONSES = replace(
    OPENAI_CHAT,
    name="openai-responses",
    path="/v1/responses",
    shape=ApiShape.OPENAI_RESPONSES,
    response_id_prefix="resp_stub",
)
CASES = [ANTHROPIC, OPENAI_CHAT, OPENAI_RESPONSES]
case_ids = [c.name for c in CASES]


def stub_headers(scenario: str = "ok", **extra: str) -> dict[str, str]:
    return {
        "x-stub-scenario": scenario,
        "x-stub-reply": REPLY,
        "x-stub-usage": USAGE.header(),
        **extra,
    }


# --- calling the stub, sync and async ------------------------------------------------------
@dataclass
class Outcome:
    status: int | None
    text: str
    error: BaseException | None = None


def call_sync(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    stream: bool,
    timeout: float = 10.0,
) -> Outcome:
    with httpx.Client(timeout=timeout) as client:
        try:
            if stream:
                with client.stream("POST", url, json=body, headers=headers) as response:
                    return Outcome(response.status_code, "".join(response.iter_text()))
            response = client.post(url, json=body, headers=headers)
            return Outcome(response.status_code, response.text)
        except httpx.HTTPError as exc:
            return Outcome(None, "", exc)


async def _call_async(
    url: str, body: dict[str, Any], headers: dict[str, str], *, stream: bool, timeout: float
) -> Outcome:
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            if stream:
                async with client.stream("POST", url, json=body, headers=headers) as response:
                    text = "".join([chunk async for chunk in response.aiter_text()])
                    return Outcome(response.status_code, text)
            response = await client.post(url, json=body, headers=headers)
            return Outcome(response.status_code, response.text)
        except httpx.HTTPError as exc:
            return Outcome(None, "", exc)


def call_async(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    *,
    stream: bool,
    timeout: float = 10.0,
) -> Outcome:
    return asyncio.run(_call_async(url, body, headers, stream=stream, timeout=timeout))


CALLERS = {"sync": call_sync, "async": call_async}


def call_stub(
    stub: ProviderStub,
    case: ApiCase,
    scenario: str = "ok",
    *,
    stream: bool,
    caller: str = "sync",
    timeout: float = 10.0,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Outcome:
    """Call ``case``'s API on the stub (``case.body`` unless ``body`` is given) with the
    stub headers of ``scenario`` plus ``headers``."""
    return CALLERS[caller](
        stub.url + case.path,
        case.body(stream=stream) if body is None else body,
        stub_headers(scenario, **(headers or {})),
        stream=stream,
        timeout=timeout,
    )


@contextmanager
def open_stream(
    stub: ProviderStub, case: ApiCase, headers: dict[str, str] | None = None
) -> Iterator[httpx.Response]:
    """A streamed call of ``case``'s API, its response open for the ``with`` block to read."""
    with (
        httpx.Client() as client,
        client.stream(
            "POST",
            stub.url + case.path,
            json=case.body(stream=True),
            headers=stub_headers(**(headers or {})),
        ) as response,
    ):
        yield response


# --- expectations --------------------------------------------------------------------------
def base_attributes(case: ApiCase, stub: ProviderStub) -> dict[str, Any]:
    return {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: case.provider,
        attrs.GEN_AI_REQUEST_MODEL: MODEL,
        attrs.SERVER_ADDRESS: stub.host,
        attrs.SERVER_PORT: stub.port,
    }


def assert_no_content(captured: Captured) -> None:
    text = captured.exported_text()
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"content reached the telemetry: {leaked}"


def assert_duration_point(captured: Captured, expected: dict[str, Any]) -> None:
    points = captured.points(DURATION.name)
    assert len(points) == 1
    point = points[0]
    assert dict(point.attributes) == expected
    assert point.count == 1
    assert 0 < point.sum < 10
    assert list(point.explicit_bounds) == list(DURATION.buckets or ())


def assert_failed_call_metrics(
    captured: Captured,
    case: ApiCase,
    stub: ProviderStub,
    error_type: str,
    *,
    response_model: bool = False,
) -> None:
    """One duration point with ``error.type`` (and the response model, when the response
    began), and no token points."""
    expected = dict(base_attributes(case, stub))
    if response_model:
        expected[attrs.GEN_AI_RESPONSE_MODEL] = RESPONSE_MODEL
    expected[attrs.ERROR_TYPE] = error_type
    assert_duration_point(captured, expected)
    assert captured.points(TOKENS.name) == []


def assert_http_child(captured: Captured) -> None:
    genai = captured.only_genai_span()
    http = [s for s in captured.finished_spans() if s is not genai]
    assert len(http) == 1, [s.name for s in http]
    assert http[0].kind is SpanKind.CLIENT
    assert http[0].parent is not None
    assert http[0].parent.span_id == genai.context.span_id


# --- success -------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_successful_call_is_one_genai_span_with_usage_and_metrics(
    instrument: Instrument, provider_stub: ProviderStub, case: ApiCase, stream: bool, caller: str
) -> None:
    captured = instrument(case.provider)
    outcome = call_stub(provider_stub, case, stream=stream, caller=caller)
    assert outcome.status == 200
    assert REPLY_SECRET in outcome.text  # the caller got the content, untouched

    span = captured.only_genai_span()
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    span_attributes = dict(span.attributes or {})
    response_id = span_attributes.pop(attrs.GEN_AI_RESPONSE_ID)
    assert isinstance(response_id, str)
    assert response_id.startswith(case.response_id_prefix)
    expected = {
        **base_attributes(case, provider_stub),
        attrs.GEN_AI_REQUEST_MAX_TOKENS: MAX_TOKENS,
        attrs.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
        attrs.GEN_AI_RESPONSE_FINISH_REASONS: case.finish_reasons,
        attrs.GEN_AI_USAGE_INPUT_TOKENS: case.input_tokens,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: USAGE.output,
        attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: USAGE.cache_read,
    }
    if case.cache_creation is not None:
        expected[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = case.cache_creation
    assert span_attributes == expected
    assert_http_child(captured)

    metric_attributes = {
        **base_attributes(case, provider_stub),
        attrs.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
    }
    assert_duration_point(captured, metric_attributes)
    token_points = {p.attributes[attrs.GEN_AI_TOKEN_TYPE]: p for p in captured.points(TOKENS.name)}
    assert set(token_points) == {"input", "output"}
    for token_type, count in (("input", case.input_tokens), ("output", USAGE.output)):
        point = token_points[token_type]
        expected_point = {
            key: value for key, value in metric_attributes.items() if key != attrs.SERVER_PORT
        }
        assert dict(point.attributes) == {**expected_point, attrs.GEN_AI_TOKEN_TYPE: token_type}
        assert (point.count, point.sum) == (1, count)
        assert list(point.explicit_bounds) == list(TOKENS.buckets or ())
    assert_no_content(captured)


# --- provider errors -----------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 429, 500])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_http_error_status_is_the_error_type(
    instrument: Instrument, provider_stub: ProviderStub, case: ApiCase, stream: bool, status: int
) -> None:
    captured = instrument(case.provider)
    outcome = call_stub(provider_stub, case, f"error-{status}", stream=stream)
    assert outcome.status == status
    assert "rejected" in outcome.text  # the provider's message reached the caller only

    span = captured.only_genai_span()
    assert span.name == f"chat {MODEL}"
    assert span.status.status_code is StatusCode.ERROR
    expected = {
        **base_attributes(case, provider_stub),
        attrs.GEN_AI_REQUEST_MAX_TOKENS: MAX_TOKENS,
        attrs.ERROR_TYPE: str(status),
    }
    assert dict(span.attributes or {}) == expected
    assert_failed_call_metrics(captured, case, provider_stub, str(status))
    assert_no_content(captured)


def test_async_error_status_is_the_error_type(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument(ANTHROPIC.provider)
    outcome = call_stub(provider_stub, ANTHROPIC, "error-500", stream=True, caller="async")
    assert outcome.status == 500
    span = captured.only_genai_span()
    assert span.attributes is not None
    assert span.attributes[attrs.ERROR_TYPE] == "500"
    assert captured.points(TOKENS.name) == []


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_provider_error_event_mid_stream_is_the_error_type(
    instrument: Instrument, provider_stub: ProviderStub, case: ApiCase, caller: str
) -> None:
    captured = instrument(case.provider)
    outcome = call_stub(provider_stub, case, "stream-error", stream=True, caller=caller)
    assert outcome.status == 200
    span = captured.only_genai_span()
    assert span.status.status_code is StatusCode.ERROR
    span_attributes = dict(span.attributes or {})
    assert span_attributes[attrs.ERROR_TYPE] == case.stream_error
    assert not {
        attrs.GEN_AI_USAGE_INPUT_TOKENS,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
    } & set(span_attributes)
    assert_failed_call_metrics(
        captured, case, provider_stub, case.stream_error, response_model=True
    )
    assert_no_content(captured)


# --- timeouts and transport failures -------------------------------------------------------
def call_that_times_out(stub: ProviderStub, case: ApiCase, caller: str, *, stream: bool) -> None:
    """A call whose response (``stream=False``) or stream (``True``) stalls for a second,
    past the client's read timeout."""
    outcome = call_stub(
        stub,
        case,
        "stream-stall" if stream else "slow",
        stream=stream,
        caller=caller,
        timeout=0.3 if stream else 0.2,
        headers={"x-stub-delay": "1.0"},
    )
    assert isinstance(outcome.error, httpx.ReadTimeout)


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_timeout_before_the_response_is_error_type_timeout(
    instrument: Instrument, provider_stub: ProviderStub, case: ApiCase, caller: str
) -> None:
    captured = instrument(case.provider)
    call_that_times_out(provider_stub, case, caller, stream=False)
    span = captured.only_genai_span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {}) == {
        **base_attributes(case, provider_stub),
        attrs.GEN_AI_REQUEST_MAX_TOKENS: MAX_TOKENS,
        attrs.ERROR_TYPE: "timeout",
    }
    assert_failed_call_metrics(captured, case, provider_stub, "timeout")


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_stream_that_stalls_ends_with_timeout_and_no_token_counts(
    instrument: Instrument, provider_stub: ProviderStub, case: ApiCase, caller: str
) -> None:
    captured = instrument(case.provider)
    call_that_times_out(provider_stub, case, caller, stream=True)
    span = captured.only_genai_span()
    assert span.status.status_code is StatusCode.ERROR
    span_attributes = dict(span.attributes or {})
    assert span_attributes[attrs.ERROR_TYPE] == "timeout"
    assert span_attributes[attrs.GEN_AI_RESPONSE_MODEL] == RESPONSE_MODEL
    assert attrs.GEN_AI_USAGE_INPUT_TOKENS not in span_attributes
    assert_failed_call_metrics(captured, case, provider_stub, "timeout", response_model=True)
    assert_no_content(captured)


def test_connection_refused_is_the_exception_class(instrument: Instrument) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    captured = instrument(None, hosts={f"127.0.0.1:{closed_port}": "anthropic"})
    with pytest.raises(httpx.ConnectError), httpx.Client() as client:
        client.post(
            f"http://127.0.0.1:{closed_port}/v1/messages", json=ANTHROPIC.body(stream=False)
        )
    span = captured.only_genai_span()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {}) == {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_REQUEST_MODEL: MODEL,
        attrs.GEN_AI_REQUEST_MAX_TOKENS: MAX_TOKENS,
        attrs.SERVER_ADDRESS: "127.0.0.1",
        attrs.SERVER_PORT: closed_port,
        attrs.ERROR_TYPE: "ConnectError",
    }
    assert captured.points(DURATION.name)[0].attributes[attrs.ERROR_TYPE] == "ConnectError"


# --- what is (not) a GenAI call ------------------------------------------------------------
def test_other_requests_to_the_provider_get_no_genai_span(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument("openai")
    with httpx.Client() as client:
        assert client.get(provider_stub.url + "/v1/models").status_code == 200
    assert captured.genai_spans() == []
    assert captured.points(DURATION.name) == []
    assert len(captured.finished_spans()) == 1  # only the plain HTTP span


def test_unmapped_host_gets_no_genai_span(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument(None)  # the stub's host:port is not in the provider map
    outcome = call_stub(provider_stub, OPENAI_CHAT, stream=False)
    assert outcome.status == 200
    assert captured.genai_spans() == []
    assert captured.points(DURATION.name) == []


def test_request_without_model_is_named_by_the_operation_alone(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument("anthropic")
    outcome = call_stub(
        provider_stub, ANTHROPIC, stream=False, body=ANTHROPIC.body(stream=False, model=None)
    )
    assert outcome.status == 200
    span = captured.only_genai_span()
    assert span.name == "chat"
    assert span.attributes is not None
    assert attrs.GEN_AI_REQUEST_MODEL not in span.attributes
    assert span.attributes[attrs.GEN_AI_RESPONSE_MODEL] == "unknown-model" + RESPONSE_MODEL_SUFFIX


def test_chat_stream_without_usage_option_records_no_token_counts(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument("openai")
    body = OPENAI_CHAT.body(stream=True)
    del body["stream_options"]
    outcome = call_stub(provider_stub, OPENAI_CHAT, stream=True, body=body)
    assert outcome.status == 200
    span = captured.only_genai_span()
    span_attributes = dict(span.attributes or {})
    assert span_attributes[attrs.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs.GEN_AI_USAGE_INPUT_TOKENS not in span_attributes
    assert captured.points(TOKENS.name) == []
    assert len(captured.points(DURATION.name)) == 1


# --- the body reaches the caller unchanged -------------------------------------------------
_PER_RESPONSE = re.compile(rb"(msg_stub_|chatcmpl-stub|resp_stub)[0-9]{6}|\"created(_at)?\":[0-9]+")


@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
@pytest.mark.parametrize("case", CASES, ids=case_ids)
def test_streamed_body_reaches_the_caller_unchanged(
    instrument: Instrument, provider_stub: ProviderStub, case: ApiCase, gzip: bool
) -> None:
    headers = {"x-stub-gzip": "1"} if gzip else {}

    def streamed_body() -> bytes:
        with open_stream(provider_stub, case, headers) as response:
            body = b"".join(response.iter_bytes())
        # Ids and timestamps are unique per response; everything else must match.
        return _PER_RESPONSE.sub(b"<per-response>", body)

    captured = instrument(case.provider)
    observed = streamed_body()
    uninstrument_httpx()
    assert observed == streamed_body()
    assert REPLY_SECRET.encode() in observed
    span = captured.only_genai_span()
    assert span.attributes is not None
    assert span.attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] == USAGE.output


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gzip_bodies_are_read(
    instrument: Instrument, provider_stub: ProviderStub, stream: bool
) -> None:
    captured = instrument("anthropic")
    outcome = call_stub(provider_stub, ANTHROPIC, stream=stream, headers={"x-stub-gzip": "1"})
    assert outcome.status == 200
    span = captured.only_genai_span()
    assert span.attributes is not None
    assert span.attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == ANTHROPIC.input_tokens
    assert span.attributes[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == USAGE.cache_creation


def test_stream_closed_early_ends_the_span_without_token_counts(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument("anthropic")
    with open_stream(provider_stub, ANTHROPIC) as response:
        first = next(response.iter_raw())
        assert first
        assert captured.genai_spans() == []  # still open while the caller reads
    span = captured.only_genai_span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert attrs.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes
    assert len(captured.points(DURATION.name)) == 1
    assert captured.points(TOKENS.name) == []


def test_span_stays_open_until_the_stream_is_read(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    captured = instrument("openai")
    with open_stream(provider_stub, OPENAI_RESPONSES) as response:
        assert captured.genai_spans() == []
        http_spans = captured.finished_spans()
        assert len(http_spans) == 1  # the HTTP span ended with the headers
        response.read()
    span = captured.only_genai_span()
    assert span.end_time is not None
    assert span.end_time >= http_spans[0].end_time  # type: ignore[operator]


def test_instrumenting_again_moves_both_layers_to_the_new_providers(
    instrument: Instrument, provider_stub: ProviderStub
) -> None:
    first = instrument("anthropic")
    second = fresh_capture()
    # No uninstrument in between: the second call replaces the settings in place.
    instrument_httpx(
        {provider_stub.authority: "anthropic"}, second.tracer_provider, second.meter_provider
    )
    outcome = call_stub(provider_stub, ANTHROPIC, stream=False)
    assert outcome.status == 200
    assert first.finished_spans() == []
    assert len(second.genai_spans()) == 1
    assert len(second.finished_spans()) == 2  # the HTTP span moved too


def test_a_body_that_cannot_be_decoded_fails_only_for_the_caller(
    instrument: Instrument, provider_stub: ProviderStub, caplog: pytest.LogCaptureFixture
) -> None:
    captured = instrument("anthropic")
    with caplog.at_level(logging.WARNING, logger="caret_otel.sdk.genai"):
        outcome = call_stub(provider_stub, ANTHROPIC, "bad-gzip", stream=True)
    assert isinstance(outcome.error, httpx.DecodingError)  # httpx's own error, not ours
    span = captured.only_genai_span()
    assert span.attributes is not None
    assert span.attributes[attrs.ERROR_TYPE] == "DecodingError"
    [warning] = [r for r in caplog.records if "GenAI response decoding failed" in r.getMessage()]
    assert "error at " in warning.getMessage()  # the failure's class and site ...
    assert REPLY_SECRET not in caplog.text  # ... never the body
    assert_no_content(captured)
