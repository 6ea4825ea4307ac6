"""A whole simulation: the population, everyone's traffic, and the requests to send.

:func:`build_scenario` is pure and deterministic: the same settings (seed, users,
days, end of the window, planting) give the same events, byte for byte; another end
gives the same traffic shifted in time (:meth:`Scenario.fingerprint` takes times
relative to the end, so it is the same for every run of the same settings). The window ends at ``end`` (normally "now") and
starts ``days`` days earlier, inside the gateway's 30-day raw-event window.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson

from caret_otel.core.errors import InputError
from caret_otel.semconv.policy import load_policy
from caret_otel.simulator import planting
from caret_otel.simulator.behaviour import generate_user_traffic
from caret_otel.simulator.experiments import DEMO_EXPERIMENT, simulated
from caret_otel.simulator.population import build_population
from caret_otel.simulator.traffic import ClientEvent, UserTraffic, stored_as_row

MAX_DAYS = load_policy().retention["raw_events_days"] - 1
"""Back-dated history stays a day inside the raw retention, or the gateway refuses it."""
DEFAULT_BATCH_SIZE = 50


class ScenarioError(InputError):
    """Settings the simulator cannot honour; the message names the setting."""


@dataclass(frozen=True)
class ScenarioSettings:
    users: int = 150
    days: int = 14
    seed: int = 7
    plant_secrets: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    experiment: str | None = DEMO_EXPERIMENT
    """Key of an experiment under experiments/ to run, with its known true effect
    (None: no experiment)."""
    true_lifts: tuple[tuple[str, float], ...] | None = None
    """(variant, relative lift of the task success rate) pairs; None: the experiment's
    default (simulator/experiments.py TRUE_LIFTS), () : none (an A/A test)."""

    def check(self) -> None:
        if self.users < 1:
            raise ScenarioError(f"users: must be at least 1, got {self.users}")
        if not 1 <= self.days <= MAX_DAYS:
            raise ScenarioError(
                f"days: must be between 1 and {MAX_DAYS} (the raw-event retention keeps "
                f"{MAX_DAYS + 1} days), got {self.days}"
            )
        if self.batch_size < 1:
            raise ScenarioError(f"batch_size: must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class ClientRequest:
    """One ``POST /telemetry/events`` of one user's client."""

    user_index: int
    country: str | None
    """The value of the edge's trusted country header."""
    events: tuple[ClientEvent, ...]

    @property
    def size(self) -> int:
        return len(self.events)

    def body(self) -> bytes:
        return orjson.dumps({"events": [event.to_json() for event in self.events]})

    def unstored_indices(self) -> frozenset[int]:
        """Log- or metrics-only events the gateway will accept (opted-out ones it drops)."""
        return frozenset(
            i
            for i, event in enumerate(self.events)
            if not event.expect_opted_out and not stored_as_row(event.event_type)
        )


@dataclass(frozen=True)
class Scenario:
    settings: ScenarioSettings
    window_start: datetime
    window_end: datetime
    traffic: tuple[UserTraffic, ...]

    @property
    def event_count(self) -> int:
        return sum(len(user.events) for user in self.traffic)

    @property
    def provider_call_count(self) -> int:
        return sum(len(user.provider_calls) for user in self.traffic)

    @property
    def billing_count(self) -> int:
        return sum(len(user.billing) for user in self.traffic)

    def requests(self) -> list[ClientRequest]:
        """Every client request, ordered by the time of its first event.

        A request holds one user's consecutive events of one session, at most
        ``batch_size`` of them - the client flushes its queue at the end of a session
        and whenever it fills up.
        """
        per_user = [self._user_requests(user) for user in self.traffic]
        return list(heapq.merge(*per_user, key=lambda request: request.events[0].at))

    def _user_requests(self, traffic: UserTraffic) -> Iterator[ClientRequest]:
        user = traffic.user
        country = user.country.code
        if self.settings.plant_secrets:
            country = planting.poisoned_country(user.index) or country
        batch: list[ClientEvent] = []
        for event in traffic.events:
            if batch and (
                len(batch) >= self.settings.batch_size or event.session_id != batch[-1].session_id
            ):
                yield ClientRequest(user.index, country, tuple(batch))
                batch = []
            batch.append(event)
        if batch:
            yield ClientRequest(user.index, country, tuple(batch))

    def fingerprint(self) -> str:
        """SHA-256 over every client event, provider call and billing event, with their
        times taken relative to the window's end: the same seed, users and days give the
        same fingerprint whenever the simulation runs (the traffic is the same, shifted)."""
        digest = hashlib.sha256()

        def relative(at: datetime) -> bytes:
            return str((at - self.window_end).total_seconds()).encode()

        for user in self.traffic:
            for event in user.events:
                digest.update(relative(event.at))
                shifted = replace(event, at=_FINGERPRINT_EPOCH).to_json()
                digest.update(orjson.dumps(shifted, option=orjson.OPT_SORT_KEYS))
            for call in user.provider_calls:
                digest.update(relative(call.at))
                digest.update(repr(replace(call, at=_FINGERPRINT_EPOCH)).encode())
            for billing in user.billing:
                digest.update(relative(billing.at))
                digest.update(repr(replace(billing, at=_FINGERPRINT_EPOCH)).encode())
        return digest.hexdigest()


_FINGERPRINT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def build_scenario(settings: ScenarioSettings, end: datetime | None = None) -> Scenario:
    """Generate every user's traffic for the window ending at ``end`` (default: now)."""
    settings.check()
    window_end = (end or datetime.now(UTC)).astimezone(UTC)
    window_start = window_end - timedelta(days=settings.days)
    population = build_population(settings.seed, settings.users, window_start, settings.days)
    lifts = None if settings.true_lifts is None else dict(settings.true_lifts)
    experiment = simulated(settings.experiment, lifts) if settings.experiment else None
    traffic: list[UserTraffic] = []
    for user in population:
        if settings.plant_secrets:
            raw_id = planting.poisoned_user_id(user.index)
            if raw_id is not None:
                user = replace(user, user_id_hash=raw_id)
        generated = generate_user_traffic(settings.seed, user, window_start, window_end, experiment)
        if settings.plant_secrets:
            generated.events = planting.plant_secrets(generated.events, user.index, settings.seed)
        traffic.append(generated)
    return Scenario(settings, window_start, window_end, tuple(traffic))
