"""Posting client events to the gateway, as many Caret clients at once.

Requests are spread over ``concurrency`` workers by user, so one user's requests
always go out in order (an opt-out precedes the events it must suppress, a task's
creation precedes its completion) while different users' clients send in parallel.
A 429 or 503 is retried after its ``Retry-After``; a network error after a backoff.
Any other refusal is a configuration problem (wrong token, wrong URL) and stops the
run with the gateway's own message.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from caret_otel.core.errors import ServiceError
from caret_otel.receivers.gateway.config import DEFAULT_COUNTRY_HEADER

EVENTS_PATH = "/telemetry/events"
DELETIONS_PATH = "/telemetry/deletions"
RETRYABLE = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 12


class DeliveryError(ServiceError):
    """The gateway refused a request for a reason retrying cannot fix."""


class Batch(Protocol):
    """One request's worth of one user's client events."""

    @property
    def user_index(self) -> int:
        """Which user's client sends it (requests of one user go out in order)."""

    @property
    def country(self) -> str | None:
        """The edge's trusted country header, if any."""

    @property
    def size(self) -> int:
        """Number of events."""

    def body(self) -> bytes:
        """The JSON body (``{"events": [...]}``)."""

    def unstored_indices(self) -> frozenset[int]:
        """Events that, once accepted, never become a ``raw.events`` row: the registry
        keeps them as logs or metrics only (not business events)."""


@dataclass
class DeliveryStats:
    """What the gateway answered, summed over every request."""

    requests: int = 0
    events_sent: int = 0
    accepted: int = 0
    rejected: int = 0
    opted_out: int = 0
    dropped_attributes: int = 0
    retries: int = 0
    accepted_by_user: Counter[int] = field(default_factory=Counter)
    stored_by_user: Counter[int] = field(default_factory=Counter)
    """Accepted business events per user: the rows ``raw.events`` must end up with."""
    rejected_by_field: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)

    def add(self, request: Batch, answer: dict[str, Any], latency_s: float) -> None:
        self.requests += 1
        self.events_sent += request.size
        accepted = int(answer.get("accepted", 0))
        rejected = answer.get("rejected", [])
        self.accepted += accepted
        self.accepted_by_user[request.user_index] += accepted
        refused = {item.get("index") for item in rejected}
        unstored = len(request.unstored_indices() - refused)
        self.stored_by_user[request.user_index] += accepted - unstored
        self.rejected += len(rejected)
        for item in rejected:
            self.rejected_by_field[str(item.get("field", "?"))] += 1
        self.opted_out += int(answer.get("opted_out", 0))
        self.dropped_attributes += int(answer.get("dropped_attributes", 0))
        self.latencies_s.append(latency_s)


Progress = Callable[[int], None]
"""Called with the number of events of each request once the gateway took it."""


def _retry_delay(response: httpx.Response | None, attempt: int) -> float:
    if response is not None:
        header = response.headers.get("retry-after", "")
        if header.strip().isdigit():
            return min(float(header), 30.0)
    return min(0.2 * 2.0**attempt, 10.0) * random.uniform(0.8, 1.2)  # jittered backoff


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        where = f" ({body['field']})" if body.get("field") else ""
        return f"{body.get('message') or body.get('error') or body}{where}"
    return str(body)[:300]


class GatewayClient:
    """An HTTP client for one gateway: events with the ingest token, deletions with the
    admin token."""

    def __init__(
        self,
        base_url: str,
        ingest_token: str,
        *,
        admin_token: str | None = None,
        country_header: str | None = None,
        timeout_s: float = 30.0,
        concurrency: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._ingest = {"Authorization": f"Bearer {ingest_token}"}
        self._admin = {"Authorization": f"Bearer {admin_token}"} if admin_token else None
        self.country_header = country_header or DEFAULT_COUNTRY_HEADER
        self.concurrency = concurrency
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        # trust_env=False: a proxy from the environment must not capture a local gateway.
        self._client = httpx.AsyncClient(timeout=timeout_s, limits=limits, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post_events(self, request: Batch) -> tuple[dict[str, Any], int]:
        """POST one request; returns the gateway's answer and the retries it took."""
        headers = {**self._ingest, "Content-Type": "application/json"}
        if request.country:
            headers[self.country_header] = request.country
        body = request.body()
        url = self.base_url + EVENTS_PATH
        for attempt in range(MAX_ATTEMPTS):
            response: httpx.Response | None = None
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise DeliveryError(f"{url}: {type(exc).__name__}: {exc}") from exc
            else:
                if response.status_code in (202, 422):
                    # 422: every event of the request was rejected; the body says why.
                    answer: dict[str, Any] = orjson.loads(response.content)
                    return answer, attempt
                if response.status_code not in RETRYABLE:
                    raise DeliveryError(
                        f"POST {url} answered {response.status_code}: {_error_text(response)}"
                    )
            await asyncio.sleep(_retry_delay(response, attempt))
        raise DeliveryError(f"POST {url}: still refused after {MAX_ATTEMPTS} attempts")

    async def delete_user(self, user_id_hash: str) -> dict[str, Any]:
        """``POST /telemetry/deletions`` (the id in the body) with the admin token; the
        gateway's answer. One Idempotency-Key for every attempt: a retry is safe."""
        if self._admin is None:
            raise DeliveryError("deletion needs the admin token (none was given)")
        url = self.base_url + DELETIONS_PATH
        headers = {**self._admin, "Idempotency-Key": f"simulator-{uuid.uuid4()}"}
        for attempt in range(MAX_ATTEMPTS):
            response = await self._client.post(
                url, json={"user_id_hash": user_id_hash}, headers=headers
            )
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code not in RETRYABLE or attempt == MAX_ATTEMPTS - 1:
                raise DeliveryError(
                    f"POST {url} answered {response.status_code}: {_error_text(response)}"
                )
            await asyncio.sleep(_retry_delay(response, attempt))
        raise AssertionError("unreachable")

    async def send_all(
        self, requests: Sequence[Batch], progress: Progress | None = None, *, pace_s: float = 0.0
    ) -> DeliveryStats:
        """Send every request; each user's in order, users in parallel.

        ``pace_s`` > 0 spreads the requests evenly over at least that many seconds
        (traffic that flows rather than one burst: rates over a minute see it).
        """
        stats = DeliveryStats()
        shards: list[list[tuple[float, Batch]]] = [[] for _ in range(self.concurrency)]
        for number, request in enumerate(requests):
            slot = pace_s * number / max(len(requests), 1)
            shards[request.user_index % self.concurrency].append((slot, request))
        begin = time.monotonic()

        async def worker(shard: list[tuple[float, Batch]]) -> None:
            for slot, request in shard:
                await asyncio.sleep(max(begin + slot - time.monotonic(), 0.0))
                started = time.perf_counter()
                answer, retries = await self.post_events(request)
                stats.retries += retries
                stats.add(request, answer, time.perf_counter() - started)
                if progress is not None:
                    progress(request.size)

        try:
            async with asyncio.TaskGroup() as group:
                for shard in shards:
                    if shard:
                        group.create_task(worker(shard))
        except* DeliveryError as failures:
            raise failures.exceptions[0] from None
        return stats
