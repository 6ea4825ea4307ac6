"""Caret's server side, simulated with the SDK helper: GenAI calls and billing events.

Caret's servers call the model providers for the users' tasks and run accounts and
billing. Here they are played by this process, with the real telemetry code:

* :func:`caret_otel.sdk.configure` sets up tracing, metrics and logs with the
  in-process privacy layer and OTLP export (to the Collector, as a service inside the
  cluster would);
* every provider request of the simulated tasks is made with httpx against a local
  stand-in of the provider's API (:class:`~caret_otel.devtools.provider_stub.ProviderStub`,
  real wire formats, JSON and SSE), so the GenAI instrumentation produces the
  ``chat {model}`` CLIENT spans and the upstream ``gen_ai.client.*`` metrics exactly as
  in production; the provider's error rate shows up as 4xx/5xx answers;
* sign-ups, plan changes and credit purchases go through the SDK's business-event
  helpers with their simulated (back-dated) timestamps.

Provider calls happen in real time (their spans are "now"); only events carry the
simulated history.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from caret_otel import sdk
from caret_otel.devtools.provider_stub import ProviderStub
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.semconv.policy import load_policy
from caret_otel.simulator import catalog
from caret_otel.simulator.traffic import BillingEvent, BillingKind, ProviderCall

SERVICE_NAME = "caret-server"
ANTHROPIC = "anthropic"
ANTHROPIC_PATH = "/v1/messages"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
STREAMING_SHARE = 0.4
TRANSPORT_ATTEMPTS = 3
SIMULATED_PROMPT = "Refactor the invoice module and add tests"
SIMULATED_REPLY = "Done: the invoice module is refactored"


@dataclass
class ServerStats:
    billing_events: int = 0
    billing_by_user: Counter[str] = field(default_factory=Counter)
    provider_calls: int = 0
    provider_errors: int = 0
    calls_by_provider: Counter[str] = field(default_factory=Counter)
    transport_retries: int = 0


def _request_body(call: ProviderCall, path: str, stream: bool, prompt: str) -> dict[str, Any]:
    if path == ANTHROPIC_PATH:
        return {
            "model": call.model,
            "max_tokens": 4096,
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        }
    if path == RESPONSES_PATH:
        return {"model": call.model, "stream": stream, "input": prompt}
    body: dict[str, Any] = {
        "model": call.model,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


class ServerSide:
    """The simulated Caret server: start, record billing, replay provider calls, stop.

    Args:
        otlp_endpoint: OTLP/HTTP base URL to export to (the Collector's).
        pseudonymizer: the deployment's pseudonym keys (the in-process privacy layer
            turns user ids into the same pseudonyms the gateway gives client events).
        prompt: text sent as the prompt (the planted-secrets run puts secrets here:
            message content must never be recorded).
        seed: for the choice of API shape and streaming per call.
        set_global: install the SDK as this process's global OpenTelemetry providers.
    """

    def __init__(
        self,
        otlp_endpoint: str,
        pseudonymizer: Pseudonymizer,
        *,
        prompt: str = SIMULATED_PROMPT,
        reply: str = SIMULATED_REPLY,
        seed: int = 7,
        concurrency: int = 4,
        set_global: bool = True,
        metric_export_interval_s: float = 5.0,
    ) -> None:
        self.otlp_endpoint = otlp_endpoint
        self._pseudonymizer = pseudonymizer
        self._prompt = prompt
        self._reply = reply
        self._rng = random.Random(f"caret-sim:{seed}:server")
        self._concurrency = concurrency
        self._set_global = set_global
        self._interval = metric_export_interval_s
        self._stubs: dict[str, ProviderStub] = {}
        self._handle: sdk.SdkHandle | None = None
        self.stats = ServerStats()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ServerSide:
        providers = sorted(catalog.RELIABILITY)
        try:
            for provider in providers:
                self._stubs[provider] = ProviderStub().start()
            self._handle = sdk.configure(
                SERVICE_NAME,
                endpoint=self.otlp_endpoint,
                engine=PrivacyEngine(load_policy(), self._pseudonymizer),
                provider_hosts={stub.authority: name for name, stub in self._stubs.items()},
                metric_export_interval_s=self._interval,
                set_global=self._set_global,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Flush every span, metric point and log record, then stop the stubs."""
        if self._handle is not None:
            self._handle.shutdown()
            self._handle = None
        for stub in self._stubs.values():
            stub.stop()
        self._stubs.clear()

    def __enter__(self) -> ServerSide:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def handle(self) -> sdk.SdkHandle:
        if self._handle is None:
            raise RuntimeError("ServerSide.start() has not been called")
        return self._handle

    # --- billing ---------------------------------------------------------------------------
    def record_billing(self, billing: Sequence[BillingEvent]) -> int:
        """Emit each event with its simulated timestamp; returns how many were emitted."""
        events = self.handle.events
        for item in billing:
            if item.kind is BillingKind.SIGNUP:
                assert item.channel is not None
                events.signup(item.user_id_hash, item.plan, item.channel, item.country, at=item.at)
            elif item.kind is BillingKind.PLAN_CHANGE:
                assert item.previous_plan is not None
                events.plan_change(item.user_id_hash, item.previous_plan, item.plan, at=item.at)
            else:
                assert item.credits is not None
                events.credits_purchased(item.user_id_hash, item.credits, item.plan, at=item.at)
            self.stats.billing_events += 1
            self.stats.billing_by_user[item.user_id_hash] += 1
        return len(billing)

    # --- provider calls --------------------------------------------------------------------
    async def replay_calls(
        self,
        calls: Sequence[ProviderCall],
        progress: Callable[[int], None] | None = None,
        *,
        pace_s: float = 0.0,
    ) -> None:
        """Make every provider call through the instrumented httpx client; ``pace_s`` > 0
        spreads them evenly over at least that many seconds."""
        queue: asyncio.Queue[tuple[float, ProviderCall, str, bool]] = asyncio.Queue()
        for number, call in enumerate(calls):
            slot = pace_s * number / max(len(calls), 1)
            queue.put_nowait((slot, *self._plan(call)))
        begin = time.monotonic()
        # Idle connections are dropped well before the stub's 5 s keep-alive ends, so a
        # request never goes out on a connection the server is closing.
        limits = httpx.Limits(max_connections=self._concurrency * 2, keepalive_expiry=1.0)
        async with httpx.AsyncClient(timeout=30.0, limits=limits, trust_env=False) as client:

            async def worker() -> None:
                while not queue.empty():
                    slot, call, path, stream = queue.get_nowait()
                    await asyncio.sleep(max(begin + slot - time.monotonic(), 0.0))
                    await self._call(client, call, path, stream)
                    if progress is not None:
                        progress(1)

            async with asyncio.TaskGroup() as group:
                for _ in range(self._concurrency):
                    group.create_task(worker())

    def _plan(self, call: ProviderCall) -> tuple[ProviderCall, str, bool]:
        if call.provider == ANTHROPIC:
            path = ANTHROPIC_PATH
        elif call.provider == "openai" and self._rng.random() < 0.5:
            path = RESPONSES_PATH
        else:
            path = CHAT_COMPLETIONS_PATH
        return call, path, self._rng.random() < STREAMING_SHARE

    async def _call(
        self, client: httpx.AsyncClient, call: ProviderCall, path: str, stream: bool
    ) -> None:
        stub = self._stubs[call.provider]
        headers = {
            "x-stub-usage": (
                f"{call.input_tokens},{call.output_tokens},"
                f"{call.cache_read_tokens},{call.cache_write_tokens}"
            ),
            # Headers are ASCII; the planted reply may not be (the stub unquotes it).
            "x-stub-reply": quote(self._reply, safe=" "),
        }
        if call.status is not None:
            headers["x-stub-scenario"] = f"error-{call.status}"
        body = _request_body(call, path, stream, self._prompt)
        for attempt in range(1, TRANSPORT_ATTEMPTS + 1):
            request = client.build_request("POST", stub.url + path, json=body, headers=headers)
            try:
                response = await client.send(request, stream=stream)
                try:
                    async for _ in response.aiter_bytes():
                        pass  # read to the end, as a real proxy relays the stream
                finally:
                    await response.aclose()
            except httpx.TransportError:
                # As a real proxy does; the failed attempt keeps its own error span.
                self.stats.transport_retries += 1
                if attempt == TRANSPORT_ATTEMPTS:
                    raise
                continue
            break
        self.stats.provider_calls += 1
        self.stats.calls_by_provider[call.provider] += 1
        if response.status_code >= 400:
            self.stats.provider_errors += 1
