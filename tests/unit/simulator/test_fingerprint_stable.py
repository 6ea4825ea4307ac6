"""The simulator's fingerprint names the traffic, not the moment it was generated:
``simulate`` prints it, and two runs of the same settings must print the same one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caret_otel.simulator.scenario import ScenarioSettings, build_scenario

END = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_the_same_settings_give_the_same_fingerprint_at_any_time() -> None:
    settings = ScenarioSettings(users=12, days=3, seed=5)
    first = build_scenario(settings, END)
    later = build_scenario(settings, END + timedelta(hours=9, minutes=7, microseconds=3))
    assert first.window_end != later.window_end
    assert first.fingerprint() == later.fingerprint()
    other_seed = build_scenario(ScenarioSettings(users=12, days=3, seed=6), END)
    assert other_seed.fingerprint() != first.fingerprint()
