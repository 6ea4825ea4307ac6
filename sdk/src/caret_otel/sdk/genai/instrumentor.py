"""Install the GenAI layer on httpx, on top of ``opentelemetry-instrumentation-httpx``.

Two layers, one per kind of span the upstream conventions define:

- ``HTTPXClientInstrumentor`` (upstream) traces every *physical* HTTP request at the
  transport: an HTTP CLIENT span that ends when the response headers arrive.
- This module wraps ``httpx.Client.send`` / ``httpx.AsyncClient.send`` - the *logical*
  request, redirects and auth round-trips included - and, for provider API calls,
  opens the GenAI CLIENT span around it. The HTTP spans become its children, and the
  GenAI span stays open until the body has been read, because upstream defines a GenAI
  span as the whole operation "until the response is fully received".

Enriching the instrumentor's HTTP span instead (through its request/response hooks)
cannot meet that definition: the hooks run, and the span ends, before the body is read,
so usage, finish reasons and streamed durations would be lost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from caret_otel.core.environment_variables import OTEL_SEMCONV_STABILITY_OPT_IN
from caret_otel.sdk.genai.body import observer_for
from caret_otel.sdk.genai.decoding import (
    ChunkDecoder,
    IdentityDecoder,
    UnsupportedEncodingError,
    decoder_for,
)
from caret_otel.sdk.genai.operation import GenAIOperation, GenAITelemetry, failure_site
from caret_otel.sdk.genai.providers import ProviderRouter
from caret_otel.sdk.genai.request import facts_from_request
from caret_otel.sdk.genai.response import reader_for
from caret_otel.sdk.genai.streams import BodyWatch, ObservedAsyncStream, ObservedSyncStream

_log = logging.getLogger(__name__)

SEMCONV_OPT_IN_ENV = OTEL_SEMCONV_STABILITY_OPT_IN

SyncSend = Callable[..., httpx.Response]
AsyncSend = Callable[..., Awaitable[httpx.Response]]
S = TypeVar("S", httpx.SyncByteStream, httpx.AsyncByteStream)


@dataclass(frozen=True)
class _Settings:
    router: ProviderRouter
    telemetry: GenAITelemetry


@dataclass
class _Installation:
    original_send: SyncSend
    original_async_send: AsyncSend
    owns_http_instrumentation: bool
    settings: _Settings


_lock = threading.Lock()
_installed: _Installation | None = None


def instrument_httpx(
    provider_hosts: Mapping[str, str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> None:
    """Trace and measure GenAI provider calls made with any httpx client, sync or async.

    Args:
        provider_hosts: extra ``host`` / ``host:port`` / ``*.domain`` -> provider entries,
            merged over :data:`~caret_otel.sdk.genai.providers.DEFAULT_PROVIDER_HOSTS`
            and ``$CARET_OTEL_GENAI_PROVIDER_HOSTS``; e.g. ``{"llm-proxy:8080": "openai"}``.
        tracer_provider, meter_provider: default to the global providers.

    Calling it again replaces the settings (idempotent); :func:`uninstrument_httpx`
    restores httpx. Raises :class:`~caret_otel.sdk.genai.providers.ProviderHostError`
    for a malformed map entry.
    """
    global _installed
    settings = _Settings(
        router=ProviderRouter(provider_hosts),
        telemetry=GenAITelemetry(tracer_provider, meter_provider),
    )
    with _lock:
        if _installed is not None:
            _installed.settings = settings
            if _installed.owns_http_instrumentation:  # HTTP spans follow the new providers
                HTTPXClientInstrumentor().uninstrument()
                HTTPXClientInstrumentor().instrument(
                    tracer_provider=tracer_provider, meter_provider=meter_provider
                )
            return
        http_instrumentor = HTTPXClientInstrumentor()
        owns_http = not http_instrumentor.is_instrumented_by_opentelemetry
        if owns_http:
            # The registry allows the stable HTTP names (http.request.method, ...), not the
            # legacy ones the instrumentation emits by default; an explicit choice wins.
            os.environ.setdefault(SEMCONV_OPT_IN_ENV, "http")
            http_instrumentor.instrument(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            )
        installation = _Installation(
            original_send=httpx.Client.send,
            original_async_send=httpx.AsyncClient.send,
            owns_http_instrumentation=owns_http,
            settings=settings,
        )
        setattr(httpx.Client, "send", _sync_send(installation))  # noqa: B010
        setattr(httpx.AsyncClient, "send", _async_send(installation))  # noqa: B010
        _installed = installation


def uninstrument_httpx() -> None:
    """Remove the GenAI layer (and the HTTP instrumentation, if we installed it)."""
    global _installed
    with _lock:
        installation, _installed = _installed, None
        if installation is None:
            return
        setattr(httpx.Client, "send", installation.original_send)  # noqa: B010
        setattr(httpx.AsyncClient, "send", installation.original_async_send)  # noqa: B010
        if installation.owns_http_instrumentation:
            HTTPXClientInstrumentor().uninstrument()


def is_instrumented() -> bool:
    return _installed is not None


def _start(installation: _Installation, request: httpx.Request) -> GenAIOperation | None:
    if not is_instrumentation_enabled():
        return None
    settings = installation.settings
    try:
        route = settings.router.resolve(request)
        if route is None:
            return None
        return settings.telemetry.start(route, facts_from_request(route.shape, request))
    except Exception as exc:  # telemetry must never break the caller's request
        _log.error("starting GenAI telemetry failed: %s; request sent untraced", failure_site(exc))
        return None


def _error_type(response: httpx.Response) -> str | None:
    """An HTTP error status is the operation's error type (``429``, ``500``, ...)."""
    return str(response.status_code) if response.status_code >= 400 else None


def _watch(operation: GenAIOperation, response: httpx.Response, body_read: bool) -> BodyWatch:
    error_type = _error_type(response)
    reader = reader_for(operation.route.shape)
    observer = observer_for(reader, response.headers.get("content-type"))
    decoder: ChunkDecoder | None
    if body_read:
        decoder = IdentityDecoder()  # response.content is already decoded
    else:
        try:
            decoder = decoder_for(response.headers.get("content-encoding"))
        except UnsupportedEncodingError:
            decoder = None
    return BodyWatch(operation, observer, decoder, error_type=error_type)


@contextlib.contextmanager
def _sending(operation: GenAIOperation) -> Iterator[None]:
    """Around the original ``send``: the GenAI span is current, and an error ends it."""
    with operation.activated():
        try:
            yield
        except BaseException as exc:  # cancellation ends the operation too
            operation.fail(exc)
            raise


def _observe(
    operation: GenAIOperation,
    response: httpx.Response,
    streamed: bool,
    stream_type: type[S],
    observed: Callable[[S, BodyWatch], httpx.SyncByteStream | httpx.AsyncByteStream],
) -> None:
    """After ``send``: end the operation once the body is read (now, or as it streams)."""
    if not streamed:
        watch = _watch(operation, response, True)
        watch.feed(response.content)
        watch.end()
        return
    inner = response.stream
    if isinstance(inner, stream_type):
        response.stream = observed(inner, _watch(operation, response, False))
    else:  # not an httpx byte stream: nothing to observe, end at the headers
        operation.end(None, _error_type(response))


# The sync and async wrappers differ only in the ``await`` and the stream types.


def _sync_send(installation: _Installation) -> SyncSend:
    original = installation.original_send

    @functools.wraps(original)
    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        operation = _start(installation, request)
        if operation is None:
            return original(self, request, **kwargs)
        with _sending(operation):
            response = original(self, request, **kwargs)
        streamed = kwargs.get("stream", False)
        _observe(operation, response, streamed, httpx.SyncByteStream, ObservedSyncStream)
        return response

    return send


def _async_send(installation: _Installation) -> AsyncSend:
    original = installation.original_async_send

    @functools.wraps(original)
    async def send(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        operation = _start(installation, request)
        if operation is None:
            return await original(self, request, **kwargs)
        with _sending(operation):
            response = await original(self, request, **kwargs)
        streamed = kwargs.get("stream", False)
        _observe(operation, response, streamed, httpx.AsyncByteStream, ObservedAsyncStream)
        return response

    return send
