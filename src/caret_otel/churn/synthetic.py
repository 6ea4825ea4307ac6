"""An in-process population of daily aggregates with the simulator's known churn drivers.

It draws what the simulator's users do, directly as the daily aggregates the rollups
would store (activity, requests, provider errors, tokens, sessions, tasks created and
completed, thumbs up and down, feature uses, plan), so the churn model can be trained
and judged in seconds. The reasons to leave come from
:mod:`caret_otel.simulator.churn_drivers`, the same definitions the simulator's traffic
uses: each adopted feature lowers the daily hazard of leaving, and provider errors,
unfinished tasks and thumbs-down answers pile up in the days before a user leaves.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import numpy as np

from caret_otel.churn import features as f
from caret_otel.simulator import catalog
from caret_otel.simulator import churn_drivers as drivers

BASE_ERROR_RATE = 0.02
"""Provider error rate outside the frustration days (the catalog's providers: 1.5-2.5 %)."""
EXISTING_USER_SHARE = 0.35
PAID_SHARE = 0.2


def generate(
    users: int = 2000, days: int = 112, seed: int = 7, first_day: date = date(2026, 1, 5)
) -> f.DailyAggregates:
    """``users`` users over ``days`` days, deterministic for a seed."""
    rng = random.Random(f"caret-churn-synthetic:{seed}")
    nprng = np.random.default_rng(seed)
    values = f.empty_values(users, days)
    first_seen = np.zeros(users, dtype=np.int64)
    origin = datetime(first_day.year, first_day.month, first_day.day)
    feature_columns = {name: len(f.METRICS) + i for i, name in enumerate(drivers.ADOPTION_FEATURES)}
    for user in range(users):
        if rng.random() < EXISTING_USER_SHARE:
            joined_day = -rng.randint(1, 300)
            # an existing user is still a user on the first day: leaving is drawn from then
            leaving_from = 0
        else:
            joined_day = int(days * rng.random() ** 0.7)
            leaving_from = joined_day
        first_seen[user] = joined_day
        adopted = [name for name, share in drivers.FEATURE_ADOPTION_SHARES if rng.random() < share]
        profile = drivers.draw_profile(
            rng, len(adopted), origin + timedelta(days=leaving_from, hours=rng.uniform(0, 12))
        )
        heavy = rng.random() < 0.25
        activity = rng.uniform(0.6, 0.9) if heavy else rng.uniform(0.15, 0.5)
        paid = rng.random() < PAID_SHARE
        for day in range(max(joined_day, 0), days):
            moment = origin + timedelta(days=day, hours=12)
            weekend = 0.45 if (first_day + timedelta(days=day)).weekday() >= 5 else 1.0
            forced = day == joined_day
            if not forced and rng.random() >= activity * weekend * profile.engagement(moment):
                continue
            if profile.engagement(moment) == 0.0:
                continue
            sessions = rng.choices((1, 2, 3), weights=(0.55, 0.32, 0.13))[0]
            requests = int(nprng.poisson(9 * sessions)) + 1
            rate = drivers.error_rate(BASE_ERROR_RATE, profile, moment)
            errors = int(nprng.binomial(requests, rate))
            row = values[user, day]
            row[f.ACTIVE] = 1
            row[f.SESSIONS] = sessions
            row[f.REQUESTS] = requests
            row[f.ERRORS] = errors
            row[f.TOKENS] = float(nprng.lognormal(np.log(12_000), 0.5, requests).sum())
            row[f.EVENTS] = requests * 3 + sessions * 2
            row[f.PAID] = 1 if paid else 0
            tasks = int(nprng.poisson(1.9 * sessions)) + 1
            # a task whose provider requests keep failing ends in an error; the others end
            # as the outcomes say and may be rated
            ended = int(nprng.binomial(tasks, (1.0 - rate) ** 3))
            outcomes = drivers.task_outcomes(catalog.TASK_OUTCOMES, profile, moment)
            success = dict(outcomes)[drivers.SUCCESS_OUTCOME] / sum(w for _, w in outcomes)
            completed = int(nprng.binomial(ended, success))
            share = drivers.feedback_share(catalog.FEEDBACK_SHARE, profile, moment)
            rated = int(nprng.binomial(ended, share))
            up_rate = drivers.thumbs_up_rate(catalog.THUMBS_UP_RATE, profile, moment)
            thumbs_up = int(nprng.binomial(rated, up_rate))
            row[f.TASKS], row[f.COMPLETED] = tasks, completed
            row[f.THUMBS_UP], row[f.THUMBS_DOWN] = thumbs_up, rated - thumbs_up
            for name in adopted:
                if rng.random() < 0.5:
                    row[feature_columns[name]] = 1 + int(nprng.poisson(1.5))
    return f.DailyAggregates(
        users=tuple(f"synthetic-{i}" for i in range(users)),
        first_day=first_day,
        values=values,
        first_seen=first_seen,
    )
