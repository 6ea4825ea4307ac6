"""Running a scenario against a gateway (and a Collector): the order of things and the tally.

1. The simulated server starts (SDK configured, provider stand-ins up) and records the
   billing events (sign-ups, plan changes, credit purchases).
2. The clients' requests go to ``POST /telemetry/events`` while the server makes the
   tasks' provider calls, in parallel.
3. Deletion requests go to ``POST /telemetry/deletions`` (admin token, id in the body).
4. The server flushes its telemetry and stops.

The :class:`SimulationSummary` says what was sent, what the gateway answered, and how
many rows ``raw.events`` must end up with: every accepted client event and every
billing event, except those of users whose data was deleted.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation

from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.simulator.planting import PLANTED_SECRETS
from caret_otel.simulator.scenario import Scenario
from caret_otel.simulator.sender import DeliveryStats, GatewayClient
from caret_otel.simulator.server_side import (
    SIMULATED_PROMPT,
    SIMULATED_REPLY,
    ServerSide,
    ServerStats,
)
from caret_otel.simulator.traffic import ProviderCall


@dataclass(frozen=True)
class Target:
    """Where the traffic goes."""

    gateway_url: str
    ingest_token: str
    admin_token: str | None = None
    otlp_endpoint: str | None = None
    """The Collector's OTLP/HTTP base URL for the simulated server; None: no server side."""
    pseudonymizer: Pseudonymizer | None = None
    """The deployment's pseudonym keys (needed by the server side's privacy layer)."""
    country_header: str | None = None


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 8
    server_side: bool = True
    deletions: bool = True
    provider_call_share: float = 1.0
    """Share of the tasks' provider requests the server actually makes (sampled)."""
    pace_s: float = 0.0
    """Spread the client requests and provider calls over at least this many seconds."""


@dataclass
class SimulationSummary:
    """Counts of one run (``to_json`` for scripts and tests)."""

    seed: int
    users: int
    days: int
    window_start: str
    window_end: str
    fingerprint: str
    planted_secrets: bool
    events_generated: int
    requests: int = 0
    events_sent: int = 0
    accepted: int = 0
    rejected: int = 0
    opted_out: int = 0
    dropped_attributes: int = 0
    retries: int = 0
    expected_opted_out: int = 0
    """Events the client sent after an opt-out (the gateway must drop exactly these)."""
    expected_rejected: int = 0
    """Deliberately malformed events (planted-secrets runs)."""
    rejected_by_field: dict[str, int] = field(default_factory=dict)
    billing_events: int = 0
    provider_calls: int = 0
    provider_errors: int = 0
    deletion_requests: int = 0
    deleted_rows: int = 0
    deleted_user_ids: list[str] = field(default_factory=list)
    expected_stored_events: int = 0
    """Rows ``raw.events`` must hold once the pipeline has caught up."""
    client_seconds: float = 0.0
    client_finished_unix: float = 0.0
    """When the gateway took the last client event (epoch seconds): the start of the
    pipeline lag."""
    total_seconds: float = 0.0
    request_p50_ms: float = 0.0
    request_p99_ms: float = 0.0
    needles: list[str] = field(default_factory=list)
    """Distinctive parts of the planted secrets (empty unless planted)."""

    @property
    def events_per_second(self) -> float:
        return self.events_sent / self.client_seconds if self.client_seconds else 0.0

    @property
    def as_expected(self) -> bool:
        """The gateway dropped exactly the opted-out events and rejected exactly the
        malformed ones."""
        return self.opted_out == self.expected_opted_out and self.rejected == self.expected_rejected

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["events_per_second"] = round(self.events_per_second, 1)
        data["as_expected"] = self.as_expected
        return data


class Progress:
    """Receives progress; the CLI shows it as bars (:mod:`.progress`)."""

    def events_sent(self, count: int) -> None:
        """``count`` more client events were taken by the gateway."""

    def provider_call_done(self, count: int) -> None:
        """``count`` more provider calls finished."""

    def phase(self, text: str) -> None:
        """A new phase began (billing, deletions, flushing)."""


def provider_calls_to_replay(scenario: Scenario, share: float) -> list[ProviderCall]:
    """The tasks' provider requests the server makes: all, or a deterministic sample."""
    calls = [call for user in scenario.traffic for call in user.provider_calls]
    if share >= 1.0:
        return sorted(calls, key=lambda call: call.at)
    rng = random.Random(f"caret-sim:{scenario.settings.seed}:call-sample")
    return sorted((c for c in calls if rng.random() < share), key=lambda call: call.at)


def _percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


async def _simulate(
    scenario: Scenario, target: Target, options: RunOptions, progress: Progress
) -> SimulationSummary:
    settings = scenario.settings
    summary = SimulationSummary(
        seed=settings.seed,
        users=settings.users,
        days=settings.days,
        window_start=scenario.window_start.isoformat(),
        window_end=scenario.window_end.isoformat(),
        fingerprint=scenario.fingerprint(),
        planted_secrets=settings.plant_secrets,
        events_generated=scenario.event_count,
        needles=[s.needle for s in PLANTED_SECRETS] if settings.plant_secrets else [],
    )
    for user in scenario.traffic:
        summary.expected_opted_out += sum(e.expect_opted_out for e in user.events)
        summary.expected_rejected += sum(e.expect_rejected for e in user.events)
    started = time.perf_counter()
    server: ServerSide | None = None
    if options.server_side and target.otlp_endpoint and target.pseudonymizer:
        progress.phase("starting the simulated Caret server")
        server = ServerSide(
            target.otlp_endpoint,
            target.pseudonymizer,
            seed=settings.seed,
            prompt=_planted(SIMULATED_PROMPT, settings.plant_secrets),
            # The stub takes the reply in a header: one line.
            reply=_planted(SIMULATED_REPLY, settings.plant_secrets).replace("\n", " "),
        ).start()
    gateway = GatewayClient(
        target.gateway_url,
        target.ingest_token,
        admin_token=target.admin_token,
        concurrency=options.concurrency,
        country_header=target.country_header,
    )
    try:
        if server is not None:
            progress.phase("recording billing events")
            billing = sorted(
                (item for user in scenario.traffic for item in user.billing), key=lambda b: b.at
            )
            server.record_billing(billing)
        progress.phase("sending client events")
        client_started = time.perf_counter()
        with suppress_instrumentation():  # the clients' HTTP is not the server's telemetry
            sending = asyncio.create_task(
                gateway.send_all(scenario.requests(), progress.events_sent, pace_s=options.pace_s)
            )
        calls = (
            server.replay_calls(
                provider_calls_to_replay(scenario, options.provider_call_share),
                progress.provider_call_done,
                pace_s=options.pace_s,
            )
            if server is not None
            else asyncio.sleep(0)
        )
        stats, _ = await asyncio.gather(sending, calls)
        summary.client_seconds = time.perf_counter() - client_started
        summary.client_finished_unix = time.time()
        _tally_delivery(summary, stats)
        if server is not None:
            progress.phase("flushing the server's telemetry")
            server.handle.force_flush()
        deleted = await _delete(scenario, gateway, options, progress, summary)
        _tally_expected(summary, scenario, stats, server.stats if server else None, deleted)
    finally:
        await gateway.aclose()
        if server is not None:
            server.stop()
            summary.billing_events = server.stats.billing_events
            summary.provider_calls = server.stats.provider_calls
            summary.provider_errors = server.stats.provider_errors
    summary.total_seconds = time.perf_counter() - started
    return summary


def _planted(text: str, plant_secrets: bool) -> str:
    """Message content with every planted secret in it: it must never be recorded."""
    if not plant_secrets:
        return text
    return text + ": " + " ".join(secret.value for secret in PLANTED_SECRETS)


async def _delete(
    scenario: Scenario,
    gateway: GatewayClient,
    options: RunOptions,
    progress: Progress,
    summary: SimulationSummary,
) -> set[int]:
    deleted: set[int] = set()
    if not options.deletions:
        return deleted
    doomed = [user.user for user in scenario.traffic if user.user.requests_deletion]
    if doomed:
        progress.phase(f"requesting deletion of {len(doomed)} user(s)")
    with suppress_instrumentation():
        for user in doomed:
            answer = await gateway.delete_user(user.user_id_hash)
            summary.deletion_requests += 1
            summary.deleted_rows += int(answer.get("deleted_rows", 0))
            summary.deleted_user_ids.append(user.user_id_hash)
            deleted.add(user.index)
    return deleted


def _tally_delivery(summary: SimulationSummary, stats: DeliveryStats) -> None:
    summary.requests = stats.requests
    summary.events_sent = stats.events_sent
    summary.accepted = stats.accepted
    summary.rejected = stats.rejected
    summary.opted_out = stats.opted_out
    summary.dropped_attributes = stats.dropped_attributes
    summary.retries = stats.retries
    summary.rejected_by_field = dict(stats.rejected_by_field)
    summary.request_p50_ms = round(_percentile_ms(stats.latencies_s, 50), 2)
    summary.request_p99_ms = round(_percentile_ms(stats.latencies_s, 99), 2)


def _tally_expected(
    summary: SimulationSummary,
    scenario: Scenario,
    stats: DeliveryStats,
    server: ServerStats | None,
    deleted: set[int],
) -> None:
    expected = 0
    for user in scenario.traffic:
        if user.user.index in deleted:
            continue
        expected += stats.stored_by_user[user.user.index]
        if server is not None:
            expected += server.billing_by_user[user.user.user_id_hash]
    summary.expected_stored_events = expected


def run_simulation(
    scenario: Scenario,
    target: Target,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
) -> SimulationSummary:
    """Send the scenario's traffic to ``target``; block until done."""
    return asyncio.run(_simulate(scenario, target, options, progress or Progress()))
