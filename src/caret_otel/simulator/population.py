"""Who the simulated users are: one :class:`User` per person, drawn from the catalog.

Every draw comes from a random generator seeded with ``(seed, user index)``, so a user
is the same whatever the number of users in the run, and the same seed always gives
the same population.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from caret_otel.simulator import catalog
from caret_otel.simulator.catalog import Country, Model

T = TypeVar("T")

EXISTING_USER_SHARE = 0.35
"""Users who signed up before the simulated window (they send no sign-up)."""
OPT_OUT_SHARE = 0.04
"""Users who turn telemetry off during the window."""
OPT_BACK_IN_SHARE = 0.3
"""Of those, the share who turn it back on a few days later."""
DELETION_SHARE = 0.015
"""Users who ask for their data to be deleted (at least one when there are 20 users)."""


def weighted(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    """One item of ``(item, weight)`` pairs, with probability proportional to its weight."""
    items = [item for item, _ in choices]
    weights = [weight for _, weight in choices]
    return rng.choices(items, weights=weights, k=1)[0]


def user_rng(seed: int, index: int, purpose: str) -> random.Random:
    """A generator for one user and one purpose: independent of every other draw."""
    return random.Random(f"caret-sim:{seed}:{index}:{purpose}")


@dataclass(frozen=True)
class User:
    """One simulated Caret user and the traits that shape their traffic."""

    index: int
    user_id_hash: str
    """What the client sends as ``user_id_hash`` (a SHA-256 of the account id)."""
    country: Country
    language: str
    platform: str
    os: str
    signup_at: datetime | None
    """None for users who signed up before the window."""
    channel: str
    initial_plan: str
    paid_at: datetime | None
    """When a free user converts (or None); may lie after the window."""
    paid_plan: str
    favourite_models: tuple[Model, ...]
    model_weights: tuple[float, ...]
    activity: float
    """Probability of being active on a day while engaged."""
    lifetime_days: float
    """Engagement fades after this many days of being a user."""
    first_version: int
    """Index into :data:`catalog.CLIENT_VERSIONS` at the window start."""
    uses_focus_chain: bool
    uses_mcp: bool
    uses_browser: bool
    auto_approve: float
    opt_out_at: datetime | None
    opt_in_at: datetime | None
    requests_deletion: bool

    def plan_at(self, moment: datetime) -> str:
        if self.paid_at is not None and moment >= self.paid_at:
            return self.paid_plan
        return self.initial_plan


def _user_id_hash(seed: int, index: int) -> str:
    return hashlib.sha256(f"caret-account:{seed}:{index}".encode()).hexdigest()


def _country(rng: random.Random) -> Country:
    return weighted(rng, [(country, country.share) for country in catalog.COUNTRIES])


def _favourite_models(rng: random.Random) -> tuple[tuple[Model, ...], tuple[float, ...]]:
    pool = [(model, model.popularity) for model in catalog.MODELS]
    count = weighted(rng, [(1, 0.45), (2, 0.4), (3, 0.15)])
    chosen: list[Model] = []
    while len(chosen) < count:
        model = weighted(rng, pool)
        if model not in chosen:
            chosen.append(model)
    # The first favourite dominates; the others are for some tasks.
    weights = tuple([1.0, 0.35, 0.15][: len(chosen)])
    return tuple(chosen), weights


def build_user(seed: int, index: int, window_start: datetime, days: int) -> User:
    """User ``index`` of the population for ``seed`` in a window of ``days`` days."""
    rng = user_rng(seed, index, "traits")
    window = timedelta(days=days)
    country = _country(rng)
    language = weighted(rng, country.languages)
    existing = rng.random() < EXISTING_USER_SHARE
    # Sign-ups grow over the window (a product gaining traction): density ~ t.
    signup_at = None if existing else window_start + window * (rng.random() ** 0.7)
    initial_plan = catalog.FREE_PLAN
    paid_at: datetime | None = None
    if existing:
        # Established users: a fifth already pay.
        if rng.random() < 0.2:
            initial_plan = weighted(rng, catalog.PAID_PLAN_SHARES)
    elif rng.random() < 0.14:
        # Conversion within days (most within two weeks of signing up).
        assert signup_at is not None
        paid_at = signup_at + timedelta(days=rng.expovariate(1 / 6.0))
    paid_plan = weighted(rng, catalog.PAID_PLAN_SHARES)
    models, weights = _favourite_models(rng)
    heavy = rng.random() < 0.25
    activity = rng.uniform(0.6, 0.9) if heavy else rng.uniform(0.15, 0.5)
    opt_out_at: datetime | None = None
    opt_in_at: datetime | None = None
    if rng.random() < OPT_OUT_SHARE:
        begin = signup_at or window_start
        opt_out_at = begin + (window_start + window - begin) * rng.uniform(0.2, 0.8)
        if rng.random() < OPT_BACK_IN_SHARE:
            opt_in_at = opt_out_at + timedelta(days=rng.uniform(1.0, 4.0))
    return User(
        index=index,
        user_id_hash=_user_id_hash(seed, index),
        country=country,
        language=language,
        platform=weighted(rng, catalog.PLATFORMS),
        os=weighted(rng, catalog.OPERATING_SYSTEMS),
        signup_at=signup_at,
        channel=weighted(rng, catalog.SIGNUP_CHANNELS),
        initial_plan=initial_plan,
        paid_at=paid_at,
        paid_plan=paid_plan,
        favourite_models=models,
        model_weights=weights,
        activity=activity,
        lifetime_days=rng.expovariate(1 / 25.0) + 3.0,
        first_version=rng.randrange(len(catalog.CLIENT_VERSIONS) - 1),
        uses_focus_chain=rng.random() < 0.35,
        uses_mcp=rng.random() < 0.3,
        uses_browser=rng.random() < 0.2,
        auto_approve=rng.uniform(0.2, 0.95),
        opt_out_at=opt_out_at,
        opt_in_at=opt_in_at,
        requests_deletion=False,
    )


def build_population(seed: int, users: int, window_start: datetime, days: int) -> list[User]:
    """``users`` users; a deterministic few of them request deletion at the end."""
    population = [build_user(seed, index, window_start, days) for index in range(users)]
    wanted = max(1, round(users * DELETION_SHARE)) if users >= 20 else 0
    picker = random.Random(f"caret-sim:{seed}:deletions")
    # Never an opted-out user: their deletion would hide whether opt-out worked.
    candidates = [user.index for user in population if user.opt_out_at is None]
    for index in picker.sample(candidates, min(wanted, len(candidates))):
        population[index] = replace(population[index], requests_deletion=True)
    return population
