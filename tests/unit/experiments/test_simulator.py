"""The simulator's experiment: production assignment, an exposure before each task, and the
known true effect on task success - and nothing else changed."""

from __future__ import annotations

from datetime import UTC, datetime

from scipy.stats import binomtest

from caret_otel.sdk.experiments import UserContext, assign
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.simulator.experiments import DEMO_EXPERIMENT, SUCCESS, TRUE_LIFTS, simulated
from caret_otel.simulator.fields import property_key
from caret_otel.simulator.scenario import ScenarioSettings, build_scenario

END = datetime(2026, 11, 20, tzinfo=UTC)
EXPOSURE = events.CARET_EXPERIMENT_EXPOSURE.client_event
COMPLETED = events.CARET_TASK_COMPLETED.client_event


def test_exposures_follow_the_production_assignment_and_only_outcomes_change() -> None:
    settings = ScenarioSettings(users=150, days=10, seed=11)
    assert settings.experiment == DEMO_EXPERIMENT
    with_experiment = build_scenario(settings, end=END)
    without = build_scenario(ScenarioSettings(users=150, days=10, seed=11, experiment=None), END)
    served = simulated().served
    variant_key = property_key(attrs.CARET_EXPERIMENT_VARIANT)
    outcome_key = property_key(attrs.CARET_TASK_OUTCOME)
    flipped = {"control": 0, "hint": 0}
    candidates = {"control": 0, "hint": 0}
    exposures = 0
    for a, b in zip(with_experiment.traffic, without.traffic, strict=True):
        variant = assign(served, UserContext(user_id=a.user.user_id_hash))
        assert variant is not None
        mine = [e for e in a.events if e.event_type == EXPOSURE]
        exposures += len(mine)
        assert {e.properties[variant_key] for e in mine} <= {variant}
        if a.user.opt_out_at is not None:
            # after an opt-out the client flushes a few queued events, exposures included:
            # which ones go out differs, so the comparison stops here
            continue
        rest = [e for e in a.events if e.event_type != EXPOSURE]
        assert len(rest) == len(b.events)
        for event, before in zip(rest, b.events, strict=True):
            if event.event_type == COMPLETED and before.properties[outcome_key] != SUCCESS:
                if before.properties[outcome_key] != "error":
                    candidates[variant] += 1
                    flipped[variant] += event.properties[outcome_key] == SUCCESS
                continue
            assert event == before
        tasks = sum(e.event_type == events.CARET_TASK_CREATED.client_event for e in rest)
        assert len(mine) == tasks  # one exposure before each task
    assert exposures > 500
    assert flipped["control"] == 0
    lift = TRUE_LIFTS[DEMO_EXPERIMENT]["hint"]
    expected = 0.78 * lift / 0.22
    # the flips follow the known effect (a binomial test; seeded, so deterministic)
    assert binomtest(flipped["hint"], candidates["hint"], expected).pvalue > 0.01
