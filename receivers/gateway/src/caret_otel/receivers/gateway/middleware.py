"""ASGI middleware: the in-flight request limit (429) and per-route request metrics; the
body reader with its deadline (408) and quiet client disconnects.

Written as plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs a
task and a stream copy per request. The in-flight limit bounds memory: at most
``max_inflight`` bodies are being read or processed at once. Probes and ``/metrics``
bypass it, so an overloaded gateway can still say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caret_otel.otlp import body
from caret_otel.receivers.gateway.config import IngestLimits
from caret_otel.receivers.gateway.errors import RequestError, error_response
from caret_otel.receivers.gateway.self_metrics import GatewayMetrics

UNMATCHED_ROUTE = "unmatched"
_RETRY_AFTER_OVERLOAD_S = 1.0


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: GatewayMetrics,
        max_inflight: int,
        exempt_paths: frozenset[str],
        known_paths: frozenset[str],
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._max_inflight = max_inflight
        self._exempt = exempt_paths
        self._known = known_paths
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before sending a response

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path: str = scope["path"]
        if path not in self._exempt and self.inflight >= self._max_inflight:
            refusal = RequestError.too_many_requests(
                f"the gateway is handling {self.inflight} requests, its limit; retry later",
                _RETRY_AFTER_OVERLOAD_S,
            )
            await error_response(refusal)(scope, receive, send_and_watch)
            route = path if path in self._known else UNMATCHED_ROUTE
        else:
            self.inflight += 1
            try:
                await self.app(scope, receive, send_and_watch)
            finally:
                self.inflight -= 1
            route = _route_template(scope)
            if route == UNMATCHED_ROUTE and path in self._known:
                route = path  # framework routes (/openapi.json, /docs) do not record a template
        self._metrics.requests.labels(route, str(status)).inc()
        self._metrics.request_duration.labels(route).observe(time.perf_counter() - started)


class TemplateRoute(Route):
    """A plain Starlette route that names itself in the scope, as FastAPI's routes do,
    so the request metrics and the body reader label by its template too."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/telemetry/users/{user_id_hash}``), never the path."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


BodyReader = Callable[[Request], Awaitable[bytes]]
CLIENT_CLOSED_STATUS = 499
"""Status recorded (never sent: nobody listens) for a request whose client went away."""


def body_reader(limits: IngestLimits, metrics: GatewayMetrics) -> BodyReader:
    """Reads a request body within the size limits and within ``body_read_timeout_s``.

    A body that does not arrive in time is answered 408 (its in-flight slot is freed);
    a client that disconnects mid-body is counted (``client_disconnects``) and its
    request ends without a traceback.
    """
    deadline = limits.body_read_timeout_s

    async def read(request: Request) -> bytes:
        route = _route_template(request.scope)
        coding = body.content_coding(request.headers.get("content-encoding"))
        body.check_declared_length(request.headers.get("content-length"), limits.max_body_bytes)
        try:
            async with asyncio.timeout(deadline):
                raw = await body.read_limited(request.stream(), limits.max_body_bytes)
        except TimeoutError:
            metrics.body_timeouts.labels(route).inc()
            raise RequestError(
                408,
                "body_timeout",
                f"the request body did not arrive within {deadline:g} s",
                field="body",
                headers={"Connection": "close"},
            ) from None
        except ClientDisconnect:
            metrics.client_disconnects.labels(route).inc()
            raise RequestError(
                CLIENT_CLOSED_STATUS,
                "client_disconnected",
                "the client closed the connection before sending the whole body",
                field="body",
            ) from None
        if coding == body.IDENTITY:
            return raw
        # Inflating (up to max_decompressed_bytes) takes milliseconds: off the event loop
        # (zlib and zstd let other threads run meanwhile).
        return await run_in_threadpool(
            body.inflate, raw, coding, max_bytes=limits.max_decompressed_bytes
        )

    return read
