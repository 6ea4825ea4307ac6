"""The simulator's users have the known reasons to leave (caret_otel.simulator.churn_drivers):
provider errors, unfinished tasks and thumbs-down answers pile up before they leave, and
they send nothing afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.simulator import churn_drivers
from caret_otel.simulator.behaviour import generate_user_traffic
from caret_otel.simulator.fields import property_key
from caret_otel.simulator.population import build_population

END = datetime(2026, 12, 1, tzinfo=UTC)
START = END - timedelta(days=28)


def test_errors_rise_before_leaving_and_nothing_follows() -> None:
    population = build_population(5, 120, START, 28)
    before, otherwise = [0, 0], [0, 0]
    leavers = 0
    for user in population:
        profile = churn_drivers.simulated_profile(5, user, START)
        traffic = generate_user_traffic(5, user, START, END)
        for call in traffic.provider_calls:
            bucket = before if profile.error_multiplier(call.at) > 1 else otherwise
            bucket[0] += 1
            bucket[1] += call.status is not None
        if profile.leaves_at is not None and profile.leaves_at < END:
            leavers += 1
            # the day they leave may still hold that day's sessions; nothing after it
            last_day = profile.leaves_at.replace(hour=0, minute=0, second=0, microsecond=0)
            assert all(e.at < last_day + timedelta(days=1) for e in traffic.events)
    assert leavers >= 10
    assert before[0] > 200
    assert before[1] / before[0] > 3 * otherwise[1] / otherwise[0]


def test_adopters_leave_less_often() -> None:
    population = build_population(9, 600, START, 28)

    def left(adopted: bool) -> float:
        group = [
            u for u in population if (u.uses_focus_chain or u.uses_mcp or u.uses_browser) is adopted
        ]
        gone = [
            p.leaves_at is not None and p.leaves_at < END
            for p in (churn_drivers.simulated_profile(9, u, START) for u in group)
        ]
        return sum(gone) / len(gone)

    assert left(False) > 1.5 * left(True)


def test_failed_tasks_and_thumbs_down_rise_before_leaving() -> None:
    population = build_population(5, 300, START, 28)
    outcome_key = property_key(attrs.CARET_TASK_OUTCOME)
    feedback_key = property_key(attrs.CARET_FEEDBACK_TYPE)
    completed_type = events.CARET_TASK_COMPLETED.client_event
    feedback_type = events.CARET_TASK_FEEDBACK.client_event
    # [tasks, successful, ratings, thumbs down] while frustrated / otherwise
    counts = {True: [0, 0, 0, 0], False: [0, 0, 0, 0]}
    for user in population:
        profile = churn_drivers.simulated_profile(5, user, START)
        for e in generate_user_traffic(5, user, START, END).events:
            cell = counts[profile.frustrated(e.at)]
            if e.event_type == completed_type:
                cell[0] += 1
                cell[1] += e.properties[outcome_key] == churn_drivers.SUCCESS_OUTCOME
            elif e.event_type == feedback_type:
                cell[2] += 1
                cell[3] += e.properties[feedback_key] == "thumbs_down"
    frustrated, otherwise = counts[True], counts[False]
    assert frustrated[0] > 200
    assert frustrated[1] / frustrated[0] < 0.75 * otherwise[1] / otherwise[0]
    assert frustrated[2] > 20
    assert frustrated[3] / frustrated[2] > 2 * otherwise[3] / otherwise[2]
