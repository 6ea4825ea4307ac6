"""The churn model on an in-process population with the simulator's known drivers.

Done when (issue 19): out-of-time ROC AUC >= 0.75 and >= 0.05 above the recency-only rule,
expected calibration error (10 bins) <= 0.05, and the top drivers by permutation
importance include the injected ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from caret_otel.churn import features as f
from caret_otel.churn import model, synthetic
from caret_otel.simulator import catalog, churn_drivers


@pytest.fixture(scope="module")
def population() -> f.DailyAggregates:
    return synthetic.generate(users=2000, days=112, seed=7)


@pytest.fixture(scope="module")
def evaluation(population: f.DailyAggregates) -> model.Evaluation:
    return model.evaluate(population)


def test_the_model_beats_the_recency_rule_out_of_time(evaluation: model.Evaluation) -> None:
    gbm = evaluation.scorer(model.GRADIENT_BOOSTING)
    recency = evaluation.scorer(model.RECENCY_RULE)
    assert gbm.roc_auc >= 0.75
    assert gbm.roc_auc >= recency.roc_auc + 0.05
    assert gbm.top_decile_lift > 1.5
    assert 0.0 < gbm.brier < recency.brier


def test_the_model_is_calibrated(evaluation: model.Evaluation) -> None:
    assert evaluation.scorer(model.GRADIENT_BOOSTING).ece <= 0.05


def test_the_top_drivers_include_every_injected_one(evaluation: model.Evaluation) -> None:
    top = set(evaluation.top_drivers(5))
    for driver, shown_in in churn_drivers.DRIVERS.items():
        assert set(shown_in) <= set(f.DRIVER_GROUPS), driver
        assert top & set(shown_in), f"{driver} ({shown_in}) not among the top drivers {top}"
    # the new task-outcome features carry the frustration signal on their own too
    by_feature = [name for name, _, _ in evaluation.importance]
    assert by_feature.index("task_completion_rate_7d") < 5


def test_driver_groups_cover_every_feature_once() -> None:
    grouped = [name for names in f.DRIVER_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(f.FEATURES)


def test_the_split_is_by_time(evaluation: model.Evaluation) -> None:
    # every training label window ends on or before the test snapshot
    test_day = datetime.fromisoformat(evaluation.test_day)
    for day in evaluation.train_days:
        assert datetime.fromisoformat(day) + timedelta(days=f.LABEL_DAYS) <= test_day


def test_the_baseline_without_drivers_finds_nothing_to_add() -> None:
    # Guard against a test that cannot fail: with no driver signal the model must not
    # beat recency by the margin (the drivers, not the model's capacity, carry the gain).
    data = synthetic.generate(users=2000, days=112, seed=7)
    values = data.values.copy()
    values[:, :, f.ERRORS] = np.round(values[:, :, f.REQUESTS] * synthetic.BASE_ERROR_RATE)
    values[:, :, f.COMPLETED] = np.round(values[:, :, f.TASKS] * 0.8)
    rated = values[:, :, f.THUMBS_UP] + values[:, :, f.THUMBS_DOWN]
    values[:, :, f.THUMBS_DOWN] = np.round(rated * (1 - catalog.THUMBS_UP_RATE))
    values[:, :, f.THUMBS_UP] = rated - values[:, :, f.THUMBS_DOWN]
    values[:, :, len(f.METRICS) :] = 0
    blind = f.DailyAggregates(data.users, data.first_day, values, data.first_seen)
    result = model.evaluate(blind, importance_repeats=1)
    gbm, recency = result.scorer(model.GRADIENT_BOOSTING), result.scorer(model.RECENCY_RULE)
    assert gbm.roc_auc < recency.roc_auc + 0.05


def test_features_follow_their_definitions() -> None:
    data = f.DailyAggregates(
        users=("a", "b", "c"),
        first_day=datetime(2026, 1, 1).date(),
        values=f.empty_values(3, 50),
        first_seen=np.array([0, 0, 40], dtype=np.int64),
    )
    v = data.values
    v[0, 30, f.ACTIVE] = 1  # user a: active 5 days before the snapshot at 35
    v[0, 30, f.REQUESTS], v[0, 30, f.ERRORS] = 10, 2
    v[0, 30, len(f.METRICS)] = 3  # one adopted feature
    v[0, 30, [f.TASKS, f.COMPLETED, f.THUMBS_UP, f.THUMBS_DOWN]] = 4, 3, 1, 3
    v[0, 20, [f.TASKS, f.COMPLETED]] = 4, 0  # outside the last 7 days
    v[1, 10, f.ACTIVE] = 1  # user b: active 25 days before, then back within the label window
    v[1, 40, f.ACTIVE] = 1
    v[2, 41, f.ACTIVE] = 1  # user c: not a user yet at the snapshot
    snap = f.snapshot(data, 35, require_label=True)
    assert snap.user_index.tolist() == [0, 1]
    col = {name: i for i, name in enumerate(f.FEATURES)}
    assert snap.x[:, col["days_since_active"]].tolist() == [4, 24]
    assert snap.x[0, col["error_rate_7d"]] == pytest.approx(0.2)
    assert snap.x[:, col["features_adopted_28d"]].tolist() == [1, 0]
    assert snap.x[:, col["tenure_days"]].tolist() == [35, 35]
    assert snap.x[0, col["tasks_28d"]] == 8
    assert snap.x[0, col["task_completion_rate_7d"]] == pytest.approx(0.75)
    assert snap.x[0, col["task_completion_rate_28d"]] == pytest.approx(3 / 8)
    assert snap.x[0, col["thumbs_down_share_28d"]] == pytest.approx(0.75)
    # no task, no rating: missing, not zero
    assert np.isnan(snap.x[1, col["task_completion_rate_28d"]])
    assert np.isnan(snap.x[1, col["task_completion_rate_7d"]])
    assert np.isnan(snap.x[1, col["thumbs_down_share_28d"]])
    assert snap.y is not None
    assert snap.y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="label window"):
        f.snapshot(data, 40, require_label=True)


def test_too_little_history_is_refused_with_the_reason() -> None:
    data = synthetic.generate(users=50, days=40, seed=1)
    with pytest.raises(model.NotEnoughData, match="at least 56"):
        model.evaluate(data)


def test_profiles_follow_the_drivers() -> None:
    import random

    joined = datetime(2026, 1, 1)
    rng = random.Random(3)
    stay = [churn_drivers.draw_profile(rng, 3, joined) for _ in range(2000)]
    leave = [churn_drivers.draw_profile(rng, 0, joined) for _ in range(2000)]

    def gone_by_day_30(profiles: list[churn_drivers.ChurnProfile]) -> float:
        end = joined + timedelta(days=30)
        return sum(p.leaves_at is not None and p.leaves_at < end for p in profiles) / len(profiles)

    assert gone_by_day_30(leave) > 2 * gone_by_day_30(stay)
    profile = churn_drivers.ChurnProfile(joined + timedelta(days=10))
    assert profile.error_multiplier(joined + timedelta(days=9)) > 1
    assert profile.error_multiplier(joined + timedelta(days=1)) == 1
    assert profile.engagement(joined + timedelta(days=11)) == 0
