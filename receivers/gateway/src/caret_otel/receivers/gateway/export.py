"""Bounded export queues and the background sender that delivers OTLP to the Collector.

Why our own queue rather than the SDK's batch processors: the gateway must know, when
it answers a client, that the data will be delivered or say so. Each signal has a
queue of *encoded* OTLP export requests bounded in bytes. Serialised OTLP messages of
one type concatenate into a valid message holding all their resources (protobuf
appends repeated fields), so batching is a ``b"".join`` and the memory bound is exact.

Admission (:meth:`OtlpExporter.admit`) happens before a request is processed: when a
queue is full, or the Collector has refused or been unreachable for longer than the
grace period, the client gets 503 with ``Retry-After`` and keeps its data. Accepted data
is retried with capped exponential backoff until the Collector takes it; only a
permanent rejection by the Collector (a non-retryable 4xx, per the OTLP spec) or a
shutdown that cannot drain loses data, and both are logged and counted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import logging
import random
import time
from dataclasses import dataclass

import httpx
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from caret_otel.receivers.gateway.config import SIGNALS, IngestLimits, OtlpTarget
from caret_otel.receivers.gateway.errors import RequestError
from caret_otel.receivers.gateway.self_metrics import GatewayMetrics

log = logging.getLogger(__name__)

# The OTLP/HTTP spec: only these statuses are retryable; any other non-2xx is permanent.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
INITIAL_BACKOFF_S = 0.25
# Kept short: the Collector is next door, and while it is down new data is refused, so a
# long backoff would only delay recovery.
MAX_BACKOFF_S = 5.0

_RESPONSE_TYPES: dict[str, tuple[type[Message], str]] = {
    "logs": (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
    "traces": (trace_service_pb2.ExportTraceServiceResponse, "rejected_spans"),
    "metrics": (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
}


@dataclass(frozen=True)
class _Entry:
    payload: bytes
    items: int


class SignalQueue:
    """Encoded export requests of one signal; counts bytes until they are delivered."""

    def __init__(self, signal: str, max_bytes: int, metrics: GatewayMetrics) -> None:
        self.signal = signal
        self.max_bytes = max_bytes
        self._entries: collections.deque[_Entry] = collections.deque()
        self._bytes = 0  # queued + in flight: everything not yet delivered
        self._items = 0
        self._ready = asyncio.Event()
        self._bytes_gauge = metrics.queue_bytes.labels(signal)
        self._items_gauge = metrics.queue_items.labels(signal)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def items(self) -> int:
        return self._items

    def has_room(self) -> bool:
        # One request may overshoot by its own size; the bound is max_bytes + one body.
        return self._bytes < self.max_bytes

    def put(self, payload: bytes, items: int) -> None:
        self._entries.append(_Entry(payload, items))
        self._account(len(payload), items)
        self._ready.set()

    async def take(self, max_batch_bytes: int) -> list[_Entry]:
        """Wait for data, then remove up to ``max_batch_bytes`` (at least one entry)."""
        while not self._entries:
            self._ready.clear()
            await self._ready.wait()
        batch = [self._entries.popleft()]
        size = len(batch[0].payload)
        while self._entries and size + len(self._entries[0].payload) <= max_batch_bytes:
            entry = self._entries.popleft()
            size += len(entry.payload)
            batch.append(entry)
        return batch

    def done(self, batch: list[_Entry]) -> None:
        """The batch left our hands (delivered or permanently rejected)."""
        self._account(-sum(len(e.payload) for e in batch), -sum(e.items for e in batch))

    def _account(self, delta_bytes: int, delta_items: int) -> None:
        self._bytes += delta_bytes
        self._items += delta_items
        self._bytes_gauge.set(self._bytes)
        self._items_gauge.set(self._items)


class OtlpExporter:
    """One queue and one sender task per signal, sharing an HTTP client to the Collector."""

    def __init__(
        self,
        target: OtlpTarget,
        limits: IngestLimits,
        metrics: GatewayMetrics,
    ) -> None:
        self._target = target
        self._limits = limits
        self._metrics = metrics
        self._compression = target.compression
        self._queues = {s: SignalQueue(s, limits.queue_max_bytes, metrics) for s in SIGNALS}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self._failing_since: float | None = None
        self._next_attempt_at = 0.0

    # --- admission (request path) ------------------------------------------------------

    def admit(self, *signals: str) -> None:
        """Raise 503 with ``Retry-After`` when data for ``signals`` cannot be taken now."""
        now = time.monotonic()
        if (
            self._failing_since is not None
            and now - self._failing_since > self._limits.export_grace_s
        ):
            raise RequestError.unavailable(
                "the telemetry backend is unreachable; the data was not accepted, retry later",
                max(1.0, self._next_attempt_at - now),
            )
        for signal in signals:
            if not self._queues[signal].has_room():
                raise RequestError.unavailable(
                    "the gateway's export queue is full; the data was not accepted, retry later",
                    2.0,
                )

    def submit(self, signal: str, payload: bytes, items: int) -> None:
        """Queue an encoded ``Export<Signal>ServiceRequest`` (call :meth:`admit` first)."""
        if items:
            self._queues[signal].put(payload, items)

    @property
    def collector_failing_for(self) -> float | None:
        """Seconds since export attempts started failing, or None while they succeed."""
        return None if self._failing_since is None else time.monotonic() - self._failing_since

    def queue(self, signal: str) -> SignalQueue:
        return self._queues[signal]

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        headers = {"Content-Type": "application/x-protobuf", **self._target.headers}
        if self._compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=self._target.timeout_s,
            limits=httpx.Limits(max_connections=len(SIGNALS) + 1),
        )
        self._tasks = [
            asyncio.create_task(self._send_loop(signal), name=f"otlp-export-{signal}")
            for signal in SIGNALS
        ]

    async def stop(self, drain_timeout_s: float) -> int:
        """Deliver what is queued within ``drain_timeout_s``; return the items lost."""
        deadline = time.monotonic() + drain_timeout_s
        while any(q.items for q in self._queues.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lost = 0
        for signal, queue in self._queues.items():
            if queue.items:
                lost += queue.items
                self._metrics.export_lost_items.labels(signal, "shutdown").inc(queue.items)
                log.error(
                    "shutdown: %d %s items could not be delivered to %s within %.1f s",
                    queue.items, signal, self._target.endpoints[signal], drain_timeout_s,
                )  # fmt: skip
        if self._client is not None:
            await self._client.aclose()
        return lost

    async def probe(self, timeout_s: float = 2.0) -> str | None:
        """None when the Collector takes an empty logs export now, else why not."""
        if self._client is None:
            return "the exporter is not running"
        url = self._target.endpoints["logs"]
        try:
            # An empty body is a valid, empty ExportLogsServiceRequest.
            empty = gzip.compress(b"") if self._compression == "gzip" else b""
            response = await self._client.post(url, content=empty, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"{url} unreachable ({type(exc).__name__})"
        if not 200 <= response.status_code < 300:
            return f"{url} answered HTTP {response.status_code}"
        return None

    # --- sending -----------------------------------------------------------------------

    async def _send_loop(self, signal: str) -> None:
        queue = self._queues[signal]
        while True:
            batch = await queue.take(self._limits.export_batch_max_bytes)
            try:
                await self._deliver(signal, batch)
            finally:
                queue.done(batch)

    async def _deliver(self, signal: str, batch: list[_Entry]) -> None:
        """Send one batch; retry retryable failures until it is delivered or refused."""
        assert self._client is not None
        url = self._target.endpoints[signal]
        items = sum(e.items for e in batch)
        body = b"".join(e.payload for e in batch)
        if self._compression == "gzip":
            body = gzip.compress(body, compresslevel=1)
        backoff = INITIAL_BACKOFF_S
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.post(url, content=body)
            except httpx.HTTPError as exc:
                reason = "unreachable"
                log.warning(
                    "export of %d %s items to %s failed: %s", items, signal, url, type(exc).__name__
                )
            except Exception:
                # Not a network problem: keep the sender alive and the data queued, loudly.
                reason = "error"
                log.exception("export of %d %s items to %s failed unexpectedly", items, signal, url)
            else:
                if 200 <= response.status_code < 300:
                    self._succeeded(signal, items, response.content)
                    return
                if response.status_code not in RETRYABLE_STATUSES:
                    self._rejected(signal, items, response)
                    return
                reason = f"http_{response.status_code}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                log.warning("export of %d %s items to %s: Collector answered %d, retrying",
                            items, signal, url, response.status_code)  # fmt: skip
            self._metrics.export_failures.labels(signal, reason).inc()
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
            # Full jitter keeps several gateways from retrying in lockstep.
            delay = retry_after if retry_after is not None else random.uniform(backoff / 2, backoff)
            delay = min(delay, MAX_BACKOFF_S)
            self._next_attempt_at = now + delay
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _succeeded(self, signal: str, items: int, content: bytes) -> None:
        self._failing_since = None
        rejected = _partial_rejections(signal, content)
        if rejected:
            self._metrics.export_lost_items.labels(signal, "partial_success").inc(rejected)
            log.error(
                "the Collector rejected %d of %d %s items (partial success)",
                rejected,
                items,
                signal,
            )
        self._metrics.exported_items.labels(signal).inc(items - rejected)

    def _rejected(self, signal: str, items: int, response: httpx.Response) -> None:
        # The Collector answered, so it is up; this payload will never be accepted.
        self._failing_since = None
        self._metrics.export_failures.labels(signal, "rejected").inc()
        self._metrics.export_lost_items.labels(signal, "rejected").inc(items)
        log.error(
            "the Collector permanently rejected %d %s items with HTTP %d: %s",
            items, signal, response.status_code, response.text[:300],
        )  # fmt: skip


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _partial_rejections(signal: str, content: bytes) -> int:
    if not content:
        return 0
    message_type, field = _RESPONSE_TYPES[signal]
    response = message_type()
    try:
        response.ParseFromString(content)
    except DecodeError:
        return 0  # a 2xx whose body is not OTLP (e.g. a proxy): count it as delivered
    return int(getattr(response.partial_success, field))  # type: ignore[attr-defined]
