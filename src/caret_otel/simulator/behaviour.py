"""How a simulated user behaves day by day: sessions, tasks, model calls, tools, billing.

A user is active on a day with a probability that fades after their engagement
lifetime and dips at weekends. An active day has one to three sessions during local
working hours, more than 30 minutes apart (the analysts' session rule). A session
holds tasks; a task holds conversation turns; each turn makes one to four provider
requests (the agent loop), each followed by tool use. Provider errors happen at the
provider's rate and are retried. Consent is honoured as the client does it: after an
opt-out a few already-queued events still go out (the gateway must drop them), then
nothing until the user opts back in.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.simulator import catalog, churn_drivers
from caret_otel.simulator.catalog import Model
from caret_otel.simulator.experiments import SimulatedExperiment
from caret_otel.simulator.fields import client_info_key, property_key
from caret_otel.simulator.population import User, user_rng, weighted
from caret_otel.simulator.traffic import (
    BillingEvent,
    BillingKind,
    ClientEvent,
    ProviderCall,
    UserTraffic,
)


def _client(spec: events.EventSpec) -> str:
    assert spec.client_event is not None
    return spec.client_event


SESSION_GAP = timedelta(minutes=31)
"""Sessions start more than the analysts' 30-minute inactivity rule apart."""
MAX_RETRIES = 2
QUEUED_AFTER_OPT_OUT = (1, 3)
"""Events a client still flushes after the opt-out (inclusive range)."""
FOCUS_CHAIN_PREFIX = (events.CARET_TASK_FOCUS_CHAIN.client_event or "").removesuffix("*")
_FOCUS_ENABLED, _FOCUS_LIST, _FOCUS_PROGRESS = catalog.FOCUS_CHAIN_ACTIONS
_USER_SOURCE, _ASSISTANT_SOURCE = "user", "assistant"
_ERROR_OUTCOME = "error"
# Metadata keys of the real client (real-clients.md section 3).
_EXTENSION_VERSION, _PLATFORM, _PLATFORM_VERSION = (
    "extension_version",
    "platform",
    "platform_version",
)
_OS_VERSION, _IS_DEV = "os_version", "is_dev"
# Real client event types without a registry constant of their own.
_EXTENSION_MESSAGE = "extension.message"
_TELEMETRY_ENABLED = _client(events.CARET_USER_TELEMETRY_ENABLED)
_CHECKPOINT_USED = _client(events.CARET_TASK_CHECKPOINT)
_TASK_MODE = _client(events.CARET_TASK_MODE_SWITCHED)
_INITIALIZATION = _client(events.CARET_TASK_INITIALIZED)
_MCP_STARTED, _MCP_SUCCESS, _MCP_ERROR = "started", "success", "error"
_MESSAGE, _LEVEL, _ERROR_LEVEL = "message", "level", "error"
_DURATION_MS, _ACTION, _STATUS = "durationMs", "action", "status"


@dataclass
class _Context:
    """State while one user's traffic is generated."""

    user: User
    rng: random.Random
    window_start: datetime
    window_end: datetime
    traffic: UserTraffic
    session_id: str = ""
    version: str = catalog.CLIENT_VERSIONS[0]
    model: Model = field(default=catalog.MODELS[0])
    churn: churn_drivers.ChurnProfile = churn_drivers.STAYS
    """When this user leaves, and the provider errors before (the known churn drivers)."""
    experiment: SimulatedExperiment | None = None
    """An A/B experiment the user takes part in (exposures, a known true effect)."""
    caret_04: bool = True
    """The user's client speaks Caret 0.4.x (tokens on turns), else Cline 2026."""

    def emit(self, at: datetime, spec: events.EventSpec, values: Mapping[str, object]) -> None:
        self.emit_type(at, _client(spec), values)

    def emit_type(
        self,
        at: datetime,
        event_type: str,
        values: Mapping[str, object],
        raw: Mapping[str, object] | None = None,
    ) -> None:
        """``values`` by registry attribute; ``raw`` by the client's own key."""
        event = self.build(at, event_type, values)
        if raw:
            event = replace(event, properties={**event.properties, **raw})
        self.traffic.events.append(event)

    def build(self, at: datetime, event_type: str, values: Mapping[str, object]) -> ClientEvent:
        """A client event of this user's current session, client version and plan."""
        user = self.user
        properties: dict[str, object] = {
            property_key(attrs.CARET_EVENT_ID): str(uuid.UUID(int=self.rng.getrandbits(128))),
            property_key(attrs.CARET_PLAN_NAME): user.plan_at(at),
            property_key(attrs.OS_TYPE): user.os,
        }
        properties.update({property_key(name): value for name, value in values.items()})
        # The metadata every Cline/Caret event carries (host app, OS, versions).
        properties.update(
            {
                _EXTENSION_VERSION: self.version,
                _PLATFORM: catalog.HOST_APP_NAMES.get(user.platform, user.platform),
                _PLATFORM_VERSION: catalog.HOST_APP_VERSION,
                property_key(attrs.OS_TYPE): catalog.NODE_OS_TYPES.get(user.os, user.os),
                _OS_VERSION: catalog.OS_VERSIONS.get(user.os, ""),
                _IS_DEV: False,
            }
        )
        client_info = {
            client_info_key(attrs.CARET_CLIENT_VERSION): self.version,
            client_info_key(attrs.CARET_CLIENT_PLATFORM): user.platform,
            client_info_key(attrs.CARET_CLIENT_LANGUAGE): user.language,
        }
        return ClientEvent(
            at, event_type, user.user_id_hash, self.session_id, properties, client_info
        )


def _new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _active_probability(user: User, day_start: datetime) -> float:
    joined = user.signup_at or day_start - timedelta(days=30)
    age_days = (day_start - joined).total_seconds() / 86_400
    if age_days < -1:
        return 0.0
    engagement = 1.0 if age_days < user.lifetime_days else 0.15
    weekend = 0.45 if day_start.weekday() >= 5 else 1.0
    return user.activity * engagement * weekend


def _session_starts(ctx: _Context, day_start: datetime, forced: datetime | None) -> list[datetime]:
    """Session start times on one UTC day, in the user's local working hours (the caller
    pushes each start past the previous session's end plus :data:`SESSION_GAP`)."""
    rng = ctx.rng
    count = weighted(rng, [(1, 0.55), (2, 0.32), (3, 0.13)])
    offset = timedelta(hours=ctx.user.country.utc_offset_hours)
    starts: list[datetime] = [forced] if forced is not None else []
    for _ in range(count - len(starts)):
        local_hour = weighted(
            rng, [(9.5, 0.25), (11.0, 0.2), (14.5, 0.25), (16.5, 0.15), (21.5, 0.15)]
        )
        local = day_start + timedelta(hours=local_hour + rng.uniform(-1.2, 1.2))
        starts.append(local - offset)
    return sorted(start for start in starts if day_start <= start < day_start + timedelta(days=1))


def _pick_model(ctx: _Context) -> Model:
    user = ctx.user
    if ctx.rng.random() < 0.06:  # trying something new
        return weighted(ctx.rng, [(model, model.popularity) for model in catalog.MODELS])
    return ctx.rng.choices(user.favourite_models, weights=user.model_weights, k=1)[0]


def _request(ctx: _Context, at: datetime, task_id: str, turn: int) -> tuple[datetime, bool]:
    """One provider request with its retries; returns (time after it, succeeded)."""
    rng, model = ctx.rng, ctx.model
    reliability = catalog.RELIABILITY[model.provider]
    input_tokens = int(_lognormal(rng, 9_000 + 4_000 * turn, 0.5))
    output_tokens = int(_lognormal(rng, 450, 0.8)) + 5
    for attempt in range(MAX_RETRIES + 1):
        latency = min(_lognormal(rng, model.median_latency_s, 0.45), 120.0)
        if rng.random() < churn_drivers.error_rate(reliability.error_rate, ctx.churn, at):
            status = weighted(rng, reliability.statuses)
            failed_after = min(latency, rng.uniform(0.2, 3.0))
            at += timedelta(seconds=failed_after)
            if ctx.caret_04:
                # Caret 0.4.x: the first-chunk provider error goes to error tracking.
                ctx.emit_type(
                    at,
                    _EXTENSION_MESSAGE,
                    {},
                    raw={_MESSAGE: f"{status} {reliability.message(status)}", _LEVEL: _ERROR_LEVEL},
                )
            else:
                ctx.emit(
                    at,
                    events.CARET_TASK_PROVIDER_API_ERROR,
                    {
                        attrs.CARET_TASK_ID: task_id,
                        attrs.GEN_AI_PROVIDER_NAME: model.provider,
                        attrs.GEN_AI_REQUEST_MODEL: model.name,
                        attrs.ERROR_TYPE: str(status),
                        attrs.HTTP_RESPONSE_STATUS_CODE: status,
                        attrs.CARET_API_RETRY_ATTEMPT: attempt,
                        attrs.CARET_ERROR_MESSAGE: f"{status} {reliability.message(status)}",
                    },
                )
            ctx.traffic.provider_calls.append(
                ProviderCall(at, model.provider, model.name, input_tokens, 0, 0, 0, status)
            )
            if status == 400:  # a bad request is not retried
                return at, False
            at += timedelta(seconds=2**attempt + rng.uniform(0, 1))
            continue
        cache_read = int(input_tokens * rng.uniform(0.55, 0.9)) if turn > 1 else 0
        cache_write = int(input_tokens * rng.uniform(0.05, 0.2))
        fresh = max(input_tokens - cache_read, 1)
        cost = (
            fresh * model.usd_per_mtok_in
            + cache_read * model.usd_per_mtok_in * 0.1
            + cache_write * model.usd_per_mtok_in * 1.25
            + output_tokens * model.usd_per_mtok_out
        ) / 1_000_000
        at += timedelta(seconds=latency)
        usage = {
            attrs.CARET_TASK_ID: task_id,
            attrs.GEN_AI_PROVIDER_NAME: model.provider,
            attrs.GEN_AI_REQUEST_MODEL: model.name,
            attrs.GEN_AI_USAGE_INPUT_TOKENS: fresh,  # uncached: the gateway adds the cache
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read,
            attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_write,
            attrs.CARET_API_COST: round(cost, 6),
        }
        if ctx.caret_04:
            # Caret 0.4.x: each request's usage rides on its assistant turn.
            ctx.emit(
                at,
                events.CARET_TASK_CONVERSATION_TURN,
                {**usage, attrs.CARET_TASK_TURN_INDEX: turn,
                 attrs.CARET_TASK_TURN_SOURCE: _ASSISTANT_SOURCE},
            )  # fmt: skip
        else:
            ctx.emit(
                at,
                events.CARET_TASK_TOKENS,
                {
                    **usage,
                    attrs.CARET_CREDITS_AMOUNT: round(cost * catalog.CREDITS_PER_USD, 2),
                    attrs.CARET_API_DURATION: round(latency, 3),
                },
            )
        ctx.traffic.provider_calls.append(
            ProviderCall(
                at, model.provider, model.name, fresh, output_tokens, cache_read, cache_write, None
            )
        )
        return at, True
    return at, False


def _tools(ctx: _Context, at: datetime, task_id: str) -> datetime:
    rng, user = ctx.rng, ctx.user
    for _ in range(weighted(rng, [(0, 0.25), (1, 0.45), (2, 0.3)])):
        at += timedelta(seconds=rng.uniform(0.5, 12))
        ctx.emit(
            at,
            events.CARET_TASK_TOOL_USED,
            {
                attrs.CARET_TASK_ID: task_id,
                attrs.GEN_AI_TOOL_NAME: weighted(rng, catalog.BUILT_IN_TOOLS),
                attrs.CARET_TOOL_AUTO_APPROVED: rng.random() < user.auto_approve,
                attrs.CARET_TOOL_SUCCESS: rng.random() < 0.95,
            },
        )
    if user.uses_mcp and rng.random() < 0.2:
        # Cline reports an MCP call twice: started, then success or error (one use).
        mcp, task = _client(events.CARET_TASK_MCP_TOOL_CALLED), {attrs.CARET_TASK_ID: task_id}
        ctx.emit_type(at, mcp, task, raw={_STATUS: _MCP_STARTED})
        at += timedelta(seconds=rng.uniform(0.5, 8))
        ctx.emit_type(
            at, mcp, task, raw={_STATUS: _MCP_SUCCESS if rng.random() < 0.92 else _MCP_ERROR}
        )
    return at


def _task(ctx: _Context, at: datetime) -> datetime:
    rng, user = ctx.rng, ctx.user
    if rng.random() < 0.12:
        ctx.model = _pick_model(ctx)
        mode = weighted(rng, catalog.TASK_MODES)
        ctx.emit(
            at,
            events.CARET_UI_MODEL_SELECTED,
            {
                attrs.GEN_AI_PROVIDER_NAME: ctx.model.provider,
                attrs.GEN_AI_REQUEST_MODEL: ctx.model.name,
                attrs.CARET_TASK_MODE: mode,
            },
        )
        at += timedelta(seconds=rng.uniform(2, 20))
    model, mode = ctx.model, weighted(rng, catalog.TASK_MODES)
    task_id, started = _new_id(rng), at
    base = {
        attrs.CARET_TASK_ID: task_id,
        attrs.GEN_AI_PROVIDER_NAME: model.provider,
        attrs.GEN_AI_REQUEST_MODEL: model.name,
    }
    ctx.emit(
        at,
        events.CARET_TASK_CREATED,
        {
            **base,
            attrs.CARET_TASK_MODE: mode,
            attrs.CARET_CONTEXT_WINDOW_SIZE: model.context_window,
        },
    )
    at += timedelta(seconds=rng.uniform(0.2, 1.5))
    ctx.emit_type(
        at, _INITIALIZATION, {attrs.CARET_TASK_ID: task_id},
        raw={_DURATION_MS: int(rng.uniform(150, 900))},
    )  # fmt: skip
    if rng.random() < 0.2:  # a plan/act switch during the task
        mode = weighted(rng, catalog.TASK_MODES)
        ctx.emit_type(at, _TASK_MODE, {attrs.CARET_TASK_ID: task_id, attrs.CARET_TASK_MODE: mode})
    experiment = ctx.experiment
    variant = experiment.variant(user, ctx.version, user.plan_at(at)) if experiment else None
    if experiment is not None and variant is not None:
        exposure = experiment.exposure(user, variant, at, ctx.session_id, ctx.version, task_id)
        ctx.traffic.events.append(exposure)
    focus = user.uses_focus_chain and rng.random() < 0.6
    if focus:
        at += timedelta(seconds=rng.uniform(1, 5))
        ctx.emit_type(at, FOCUS_CHAIN_PREFIX + _FOCUS_ENABLED, {attrs.CARET_TASK_ID: task_id})
    browser = user.uses_browser and rng.random() < 0.25
    turns = 1 + min(int(rng.expovariate(1 / 3.0)), 11)
    ok = True
    for turn in range(1, turns + 1):
        at += timedelta(seconds=rng.uniform(15, 150) if turn > 1 else rng.uniform(1, 4))
        ctx.emit(
            at,
            events.CARET_TASK_CONVERSATION_TURN,
            {**base, attrs.CARET_TASK_TURN_INDEX: turn, attrs.CARET_TASK_TURN_SOURCE: _USER_SOURCE},
        )
        for _ in range(weighted(rng, [(1, 0.35), (2, 0.35), (3, 0.2), (4, 0.1)])):
            at, ok = _request(ctx, at, task_id, turn)
            if not ok:
                break
            at = _tools(ctx, at, task_id)
            if rng.random() < 0.3:  # a checkpoint commit after the edits
                ctx.emit_type(
                    at, _CHECKPOINT_USED, {attrs.CARET_TASK_ID: task_id},
                    raw={_ACTION: weighted(rng, catalog.CHECKPOINT_ACTIONS),
                         _DURATION_MS: int(rng.uniform(20, 400))},
                )  # fmt: skip
        if not ok:
            break
        if focus and turn == 1:
            ctx.emit_type(at, FOCUS_CHAIN_PREFIX + _FOCUS_LIST, {attrs.CARET_TASK_ID: task_id})
        elif focus and rng.random() < 0.5:
            ctx.emit_type(at, FOCUS_CHAIN_PREFIX + _FOCUS_PROGRESS, {attrs.CARET_TASK_ID: task_id})
        if browser and turn == 1:
            at += timedelta(seconds=rng.uniform(1, 5))
            ctx.emit(at, events.CARET_TASK_BROWSER_TOOL_START, {attrs.CARET_TASK_ID: task_id})
            at += timedelta(seconds=rng.uniform(10, 120))
            ctx.emit(
                at,
                events.CARET_TASK_BROWSER_TOOL_END,
                {attrs.CARET_TASK_ID: task_id, attrs.CARET_TOOL_SUCCESS: rng.random() < 0.9},
            )
        if not ctx.caret_04:  # Caret 0.4.x sent one assistant turn per request already
            ctx.emit(
                at,
                events.CARET_TASK_CONVERSATION_TURN,
                {
                    **base,
                    attrs.CARET_TASK_TURN_INDEX: turn,
                    attrs.CARET_TASK_TURN_SOURCE: _ASSISTANT_SOURCE,
                },
            )
    outcomes = churn_drivers.task_outcomes(catalog.TASK_OUTCOMES, ctx.churn, at)
    outcome = weighted(rng, outcomes) if ok else _ERROR_OUTCOME
    if ok and experiment is not None:
        outcome = experiment.outcome(variant, outcome, task_id)
    at += timedelta(seconds=rng.uniform(1, 30))
    ctx.emit(
        at,
        events.CARET_TASK_COMPLETED,
        {
            **base,
            attrs.CARET_TASK_MODE: mode,
            attrs.CARET_TASK_OUTCOME: outcome,
            attrs.CARET_TASK_DURATION: round((at - started).total_seconds(), 3),
        },
    )
    if rng.random() < catalog.EXTRA_EVENT_SHARE:
        event_type, properties, with_task, _ = weighted(
            rng, [(extra, extra[3]) for extra in catalog.REAL_CLIENT_EXTRAS]
        )
        at += timedelta(seconds=rng.uniform(1, 20))
        ctx.emit_type(
            at,
            event_type,
            {attrs.CARET_TASK_ID: task_id} if with_task else {},
            raw=dict(properties),
        )
    if ok and rng.random() < churn_drivers.feedback_share(catalog.FEEDBACK_SHARE, ctx.churn, at):
        up_rate = churn_drivers.thumbs_up_rate(catalog.THUMBS_UP_RATE, ctx.churn, at)
        thumbs = "thumbs_up" if rng.random() < up_rate else "thumbs_down"
        at += timedelta(seconds=rng.uniform(2, 40))
        ctx.emit(
            at,
            events.CARET_TASK_FEEDBACK,
            {attrs.CARET_TASK_ID: task_id, attrs.CARET_FEEDBACK_TYPE: thumbs},
        )
    return at


def _session(ctx: _Context, start: datetime) -> datetime:
    rng = ctx.rng
    ctx.session_id = _new_id(rng)
    ctx.emit(start, events.CARET_SESSION_STARTED, {})
    ctx.emit_type(start, _TELEMETRY_ENABLED, {})  # Cline sends it at every start
    at = start
    for _ in range(weighted(rng, [(1, 0.4), (2, 0.35), (3, 0.17), (4, 0.08)])):
        at += timedelta(seconds=rng.uniform(20, 600))
        at = _task(ctx, at)
    at += timedelta(seconds=rng.uniform(30, 900))
    ctx.emit(
        at,
        events.CARET_SESSION_ENDED,
        {attrs.CARET_SESSION_DURATION: round((at - start).total_seconds(), 3)},
    )
    return at


def _billing(ctx: _Context, consent: _Consent) -> None:
    """Sign-up, conversion and credit purchases, as the billing service records them."""
    user, rng, traffic = ctx.user, ctx.rng, ctx.traffic

    def within(moment: datetime | None) -> bool:
        return moment is not None and ctx.window_start <= moment < ctx.window_end

    if within(user.signup_at):
        assert user.signup_at is not None
        traffic.billing.append(
            BillingEvent(
                user.signup_at,
                BillingKind.SIGNUP,
                user.user_id_hash,
                user.initial_plan,
                channel=user.channel,
                country=user.country.code,
            )
        )
    if within(user.paid_at):
        assert user.paid_at is not None
        traffic.billing.append(
            BillingEvent(
                user.paid_at,
                BillingKind.PLAN_CHANGE,
                user.user_id_hash,
                user.paid_plan,
                previous_plan=user.initial_plan,
            )
        )
    paying_since = user.paid_at
    if user.initial_plan != catalog.FREE_PLAN:
        paying_since = ctx.window_start
    if paying_since is not None:
        moment = max(paying_since, ctx.window_start) + timedelta(hours=rng.uniform(0.1, 48))
        while within(moment):
            traffic.billing.append(
                BillingEvent(
                    moment,
                    BillingKind.CREDITS_PURCHASED,
                    user.user_id_hash,
                    user.plan_at(moment),
                    credits=rng.choice(catalog.CREDIT_PACKS),
                )
            )
            moment += timedelta(days=rng.uniform(6, 16))
    # The billing service honours the telemetry setting the client reported.
    traffic.billing = [b for b in traffic.billing if not consent.opted_out(b.at)]
    traffic.billing.sort(key=lambda b: b.at)


@dataclass(frozen=True)
class _Consent:
    """When the client actually reported the opt-out and opt-in (None: never)."""

    opted_out_at: datetime | None = None
    opted_in_at: datetime | None = None

    def opted_out(self, moment: datetime) -> bool:
        if self.opted_out_at is None or moment < self.opted_out_at:
            return False
        return self.opted_in_at is None or moment < self.opted_in_at


def _apply_consent(ctx: _Context) -> _Consent:
    """Insert the opt-out/opt-in events and drop what a consenting client would not send.

    The client reports a settings change with its next event, so the change takes
    effect at the user's first activity after it (and not at all without one).
    """
    user, rng = ctx.user, ctx.rng
    if user.opt_out_at is None:
        return _Consent()
    kept: list[ClientEvent] = []
    queued_left = 0
    out_at: datetime | None = None
    in_at: datetime | None = None
    for event in ctx.traffic.events:
        if out_at is None and event.at >= user.opt_out_at:
            kept.append(_consent_event(ctx, event, events.CARET_USER_OPT_OUT, enabled=False))
            out_at = kept[-1].at
            queued_left = rng.randint(*QUEUED_AFTER_OPT_OUT)
        opted_out = out_at is not None and in_at is None
        if opted_out and user.opt_in_at is not None and event.at >= user.opt_in_at:
            kept.append(_consent_event(ctx, event, events.CARET_USER_OPT_IN, enabled=True))
            in_at, opted_out = kept[-1].at, False
        if not opted_out:
            kept.append(event)
        elif queued_left > 0:
            queued_left -= 1
            kept.append(replace(event, expect_opted_out=True))
    ctx.traffic.events = kept
    return _Consent(out_at, in_at)


def _consent_event(
    ctx: _Context, before: ClientEvent, spec: events.EventSpec, *, enabled: bool
) -> ClientEvent:
    """The consent change, reported just before the event that follows it."""
    ctx.session_id = before.session_id
    at = before.at - timedelta(milliseconds=500)
    return ctx.build(at, _client(spec), {attrs.CARET_CONSENT_TELEMETRY_ENABLED: enabled})


def generate_user_traffic(
    seed: int,
    user: User,
    window_start: datetime,
    window_end: datetime,
    experiment: SimulatedExperiment | None = None,
) -> UserTraffic:
    """The whole window of one user: client events, provider calls and billing events.

    Deterministic for a given ``(seed, user, window)``; every timestamp lies in
    ``[window_start, window_end)``.
    """
    rng = user_rng(seed, user.index, "behaviour")
    traffic = UserTraffic(user)
    ctx = _Context(user, rng, window_start, window_end, traffic)
    ctx.model = user.favourite_models[0]
    ctx.churn = churn_drivers.simulated_profile(seed, user, window_start)
    ctx.experiment = experiment
    ctx.caret_04 = user.index % 10 < round(catalog.CARET_04_SHARE * 10)
    days = math.ceil((window_end - window_start).total_seconds() / 86_400)
    upgrade_every = rng.uniform(5, 12)
    last_end = window_start - SESSION_GAP
    for day in range(days):
        day_start = window_start + timedelta(days=day)
        version = min(
            user.first_version + int(day / upgrade_every), len(catalog.CLIENT_VERSIONS) - 1
        )
        ctx.version = catalog.CLIENT_VERSIONS[version]
        day_end = day_start + timedelta(days=1)
        forced: datetime | None = None
        if user.signup_at is not None:
            if user.signup_at >= day_end:
                continue  # not a user yet
            if user.signup_at >= day_start:  # the first session follows the sign-up
                forced = user.signup_at + timedelta(minutes=rng.uniform(2, 40))
        active = _active_probability(user, day_start) * ctx.churn.engagement(day_start)
        if forced is None and rng.random() >= active:
            continue
        for start in _session_starts(ctx, day_start, forced):
            if user.signup_at is not None and start < user.signup_at:
                continue
            start = max(start, last_end + SESSION_GAP)
            last_end = _session(ctx, start)
    traffic.events = [event for event in traffic.events if event.at < window_end]
    traffic.provider_calls = [call for call in traffic.provider_calls if call.at < window_end]
    _billing(ctx, _apply_consent(ctx))
    return traffic
