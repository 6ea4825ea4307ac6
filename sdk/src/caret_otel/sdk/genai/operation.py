"""One GenAI operation: its CLIENT span and its two upstream metrics.

The span starts before the first byte is sent and ends when the response is fully
received (a streamed body included), failed or was closed by the caller - the upstream
definition of a GenAI span as the *logical* operation. The HTTP client spans of the
httpx instrumentation are its children, one per physical request.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from timeit import default_timer

import httpx
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from caret_otel.core.version import __version__
from caret_otel.sdk.genai.providers import GenAIRoute
from caret_otel.sdk.genai.request import RequestFacts
from caret_otel.sdk.genai.response import ResponseFacts
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics as metric_specs
from caret_otel.semconv.metrics import MetricSpec

SCOPE_NAME = "caret_otel.sdk.genai"
TIMEOUT_ERROR = "timeout"


class TokenType(enum.Enum):
    """Upstream's values of the token-type attribute of the token-usage histogram."""

    INPUT = "input"
    OUTPUT = "output"


_log = logging.getLogger(__name__)


def _histogram(meter: metrics.Meter, spec: MetricSpec) -> metrics.Histogram:
    return meter.create_histogram(
        spec.name,
        unit=spec.unit,
        description=spec.brief,
        explicit_bucket_boundaries_advisory=list(spec.buckets) if spec.buckets else None,
    )


def _only(spec: MetricSpec, attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """The attributes the registry allows on ``spec`` (low cardinality by construction)."""
    return {key: attributes[key] for key in spec.attributes if key in attributes}


def failure_site(exc: BaseException) -> str:
    """``ValueError at response.py:123``: enough to find a bug, while the exception's
    message and the frames' values (which may hold message content) stay out of logs."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return type(exc).__name__ + where


def error_type_of(exc: BaseException) -> str:
    """``timeout`` for every httpx timeout, otherwise the exception's class name."""
    if isinstance(exc, httpx.TimeoutException):
        return TIMEOUT_ERROR
    return type(exc).__qualname__


class GenAITelemetry:
    """The tracer and the two histograms every operation records into."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE_NAME, __version__, meter_provider)
        self.duration = _histogram(meter, metric_specs.GEN_AI_CLIENT_OPERATION_DURATION)
        self.token_usage = _histogram(meter, metric_specs.GEN_AI_CLIENT_TOKEN_USAGE)

    def start(self, route: GenAIRoute, request: RequestFacts) -> GenAIOperation:
        return GenAIOperation(self, route, request)


def span_name(operation: str, model: str | None) -> str:
    """``{operation} {model}``, or just the operation when the model is unknown."""
    return f"{operation} {model}" if model else operation


class GenAIOperation:
    def __init__(self, telemetry: GenAITelemetry, route: GenAIRoute, request: RequestFacts) -> None:
        self._telemetry = telemetry
        self.route = route
        self._attributes: dict[str, AttributeValue] = {
            attrs.GEN_AI_OPERATION_NAME: route.operation,
            attrs.GEN_AI_PROVIDER_NAME: route.provider,
            attrs.SERVER_ADDRESS: route.server_address,
            attrs.SERVER_PORT: route.server_port,
        }
        if request.model:
            self._attributes[attrs.GEN_AI_REQUEST_MODEL] = request.model
        start_attributes = dict(self._attributes)
        if request.max_tokens is not None:
            start_attributes[attrs.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
        self.span = telemetry.tracer.start_span(
            span_name(route.operation, request.model),
            kind=SpanKind.CLIENT,
            attributes=start_attributes,
        )
        self._started = default_timer()
        self._lock = threading.Lock()
        self._ended = False

    @contextmanager
    def activated(self) -> Iterator[None]:
        """Make the GenAI span current, so the HTTP spans under it become its children."""
        with trace.use_span(self.span, end_on_exit=False, record_exception=False):
            yield

    def fail(self, exc: BaseException) -> None:
        self.end(None, error_type_of(exc))

    def end(self, facts: ResponseFacts | None, error_type: str | None) -> None:
        """Record the span and the metrics once; later calls are ignored."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._record(facts, error_type)
        except Exception as exc:  # telemetry must never break the caller's request
            _log.error(
                "recording GenAI telemetry failed: %s (provider=%s, operation=%s)",
                failure_site(exc),
                self.route.provider,
                self.route.operation,
            )
            if self.span.is_recording():
                self.span.end()

    def _record(self, facts: ResponseFacts | None, error_type: str | None) -> None:
        duration = max(default_timer() - self._started, 0.0)
        attributes = self._attributes
        if facts is not None:
            error_type = error_type or facts.provider_error
            if facts.response_model:
                attributes[attrs.GEN_AI_RESPONSE_MODEL] = facts.response_model
        if error_type:
            attributes[attrs.ERROR_TYPE] = error_type
        # Token counts are reported only from a finished, successful response: the
        # partial counts of a broken or abandoned stream would misstate the usage.
        usage_final = facts is not None and facts.complete and not error_type
        span = self.span
        if span.is_recording():
            span.set_attributes(attributes)
            if facts is not None:
                span.set_attributes(_response_attributes(facts, usage=usage_final))
            if error_type:
                span.set_status(StatusCode.ERROR)
        span.end()
        telemetry = self._telemetry
        telemetry.duration.record(
            duration, _only(metric_specs.GEN_AI_CLIENT_OPERATION_DURATION, attributes)
        )
        if facts is None or not usage_final:
            return
        spec = metric_specs.GEN_AI_CLIENT_TOKEN_USAGE
        for token_type, count in (
            (TokenType.INPUT, facts.input_tokens),
            (TokenType.OUTPUT, facts.output_tokens),
        ):
            if count is not None:
                telemetry.token_usage.record(
                    count, _only(spec, {**attributes, attrs.GEN_AI_TOKEN_TYPE: token_type.value})
                )


def _response_attributes(facts: ResponseFacts, *, usage: bool) -> dict[str, AttributeValue]:
    values: dict[str, AttributeValue | None] = {
        attrs.GEN_AI_RESPONSE_ID: facts.response_id,
        attrs.GEN_AI_RESPONSE_FINISH_REASONS: tuple(facts.finish_reasons) or None,
    }
    if usage:
        values |= {
            attrs.GEN_AI_USAGE_INPUT_TOKENS: facts.input_tokens,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: facts.output_tokens,
            attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: facts.cache_read_tokens,
            attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: facts.cache_creation_tokens,
        }
    return {key: value for key, value in values.items() if value is not None}
