"""The simulator's experiment: production assignment, an exposure before each task, and the
known true effect on task success - and nothing else changed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from scipy.stats import binomtest

from caret_otel.cli.stack import simulate
from caret_otel.sdk.experiments import UserContext, assign
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.simulator.experiments import (
    DEMO_EXPERIMENT,
    SUCCESS,
    TRUE_LIFTS,
    SimulatedExperimentError,
    simulated,
)
from caret_otel.simulator.fields import property_key
from caret_otel.simulator.scenario import Scenario, ScenarioSettings, build_scenario

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


def _outcomes(scenario: Scenario, variant: str) -> tuple[int, int]:
    """(successes, completed tasks) of the users assigned to ``variant``."""
    served = simulated().served
    outcome_key = property_key(attrs.CARET_TASK_OUTCOME)
    success = total = 0
    for traffic in scenario.traffic:
        if assign(served, UserContext(user_id=traffic.user.user_id_hash)) != variant:
            continue
        for e in traffic.events:
            if e.event_type == COMPLETED and e.properties[outcome_key] != "error":
                total += 1
                success += e.properties[outcome_key] == SUCCESS
    return success, total


def test_a_chosen_true_effect_replaces_the_default_and_may_be_negative_or_none() -> None:
    def run(lifts: tuple[tuple[str, float], ...] | None) -> Scenario:
        return build_scenario(ScenarioSettings(users=80, days=7, seed=5, true_lifts=lifts), END)

    default, aa, worse = run(None), run(()), run((("hint", -0.5),))
    # the control never changes; with no lift the hint's tasks are those of no experiment
    assert _outcomes(default, "control") == _outcomes(aa, "control") == _outcomes(worse, "control")
    hint_default, hint_aa, hint_worse = (_outcomes(s, "hint") for s in (default, aa, worse))
    assert hint_default[1] == hint_aa[1] == hint_worse[1]  # the same tasks, other outcomes
    assert hint_worse[0] < hint_aa[0] < hint_default[0]
    # half of the successes are lost (binomial, seeded: deterministic)
    assert binomtest(hint_worse[0], hint_aa[0], 0.5).pvalue > 0.01


def test_an_impossible_true_effect_is_refused_naming_the_setting() -> None:
    with pytest.raises(SimulatedExperimentError, match="true_lift: the experiment"):
        simulated(DEMO_EXPERIMENT, {"nope": 0.1})
    with pytest.raises(SimulatedExperimentError, match="true_lift: the lift of variant hint"):
        simulated(DEMO_EXPERIMENT, {"hint": 0.5})  # 78 % * 1.5 > 100 %


def test_simulate_takes_the_experiment_and_true_lift_from_the_command_line(
    tmp_path: Path,
) -> None:
    out = tmp_path / "events.jsonl"
    base = ["--dry-run", "--users", "40", "--days", "3", "--data-dir", str(tmp_path)]
    args = [*base, "--experiment", DEMO_EXPERIMENT, "--true-lift", "hint=-1", "--dump-events"]
    result = CliRunner().invoke(simulate, [*args, str(out)])
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    variant_key = property_key(attrs.CARET_EXPERIMENT_VARIANT)
    outcome_key = property_key(attrs.CARET_TASK_OUTCOME)
    hint_users = {
        e["user_id_hash"] for e in events
        if e["event_type"] == EXPOSURE and e["properties"][variant_key] == "hint"
    }  # fmt: skip
    hint_outcomes = [
        e["properties"][outcome_key] for e in events
        if e["event_type"] == COMPLETED and e["user_id_hash"] in hint_users
    ]  # fmt: skip
    assert hint_outcomes
    assert SUCCESS not in hint_outcomes  # a lift of -100 %: no hint task succeeds
    without = CliRunner().invoke(simulate, [*base, "--no-experiment", "--dump-events", str(out)])
    assert without.exit_code == 0, without.output
    assert EXPOSURE.encode() not in out.read_bytes()
    bad = CliRunner().invoke(simulate, [*base, "--true-lift", "hint"])
    assert bad.exit_code == 2
    assert "--true-lift" in bad.output
