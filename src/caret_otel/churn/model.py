"""Training and out-of-time evaluation of the churn model.

Three scorers are compared on the same out-of-time snapshot:

- ``gradient_boosting``: scikit-learn's histogram gradient-boosted trees (the model);
- ``logistic``: a standardised logistic regression on the same features (the baseline;
  a missing rate becomes the training median plus a "was missing" flag);
- ``recency_rule``: the churn rate of the training rows with the same number of days
  since the last activity (what one would do without a model).

The split is by time: the test snapshot is the last day whose 14-day label window is
over; the training snapshots are every 7 days before it whose label windows end on or
before the test day, so no training label looks into the test period.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from caret_otel.churn import features as f
from caret_otel.core.errors import InputError

SNAPSHOT_STEP_DAYS: Final = 7
THREADS: Final = 1
"""OpenMP threads for fitting and predicting: more only oversubscribe a shared machine
(permutation importance was ten times slower with every core)."""
CALIBRATION_BINS: Final = 10
MIN_ROWS: Final = 50
"""Fewer labelled rows (or no churner / no stayer) and there is nothing to learn."""
GRADIENT_BOOSTING, LOGISTIC, RECENCY_RULE = "gradient_boosting", "logistic", "recency_rule"


class NotEnoughData(InputError):
    """The stored aggregates do not cover enough days or users to train or evaluate."""


class Scorer(Protocol):
    def predict_proba(self, x: f.FloatArray) -> f.FloatArray: ...


class RecencyRule:
    """P(churn) = the training churn rate of users with the same days since last activity."""

    def __init__(self) -> None:
        self.rates = np.zeros(f.OBSERVATION_DAYS, dtype=np.float64)

    def fit(self, x: f.FloatArray, y: f.IntArray) -> RecencyRule:
        column = x[:, f.FEATURES.index(f.RECENCY_FEATURE)].astype(np.int64)
        prior = float(y.mean())
        for days in range(f.OBSERVATION_DAYS):
            mask = column == days
            # a few pseudo-rows of the overall rate keep sparse days from 0 or 1
            self.rates[days] = (y[mask].sum() + 5 * prior) / (mask.sum() + 5)
        return self

    def predict_proba(self, x: f.FloatArray) -> f.FloatArray:
        column = np.clip(x[:, f.FEATURES.index(f.RECENCY_FEATURE)].astype(np.int64), 0, 27)
        p = self.rates[column]
        return np.column_stack([1.0 - p, p])


def gradient_boosting(seed: int = 0) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def _fit(name: str, x: f.FloatArray, y: f.IntArray, seed: int) -> Any:
    if name == GRADIENT_BOOSTING:
        return gradient_boosting(seed).fit(x, y)
    if name == LOGISTIC:
        # rates without a denominator are missing (NaN): the median, and a flag
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True),
            StandardScaler(),
            LogisticRegression(max_iter=2000),
        ).fit(x, y)
    return RecencyRule().fit(x, y)


def expected_calibration_error(
    y: f.IntArray, p: f.FloatArray, bins: int = CALIBRATION_BINS
) -> float:
    """Sum over 10 equal-width probability bins of (share of rows) * |mean p - churn rate|."""
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total


def calibration_table(
    y: f.IntArray, p: f.FloatArray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append(
                {
                    "bin_low": b / bins,
                    "rows": int(mask.sum()),
                    "mean_predicted": round(float(p[mask].mean()), 4),
                    "churn_rate": round(float(y[mask].mean()), 4),
                }
            )
    return rows


def top_decile_lift(y: f.IntArray, p: f.FloatArray) -> float:
    """Churn rate among the 10 % highest scores over the overall churn rate."""
    top = np.argsort(-p, kind="stable")[: max(1, math.ceil(len(p) / 10))]
    return float(y[top].mean() / y.mean())


@dataclass(frozen=True)
class ScorerMetrics:
    name: str
    roc_auc: float
    pr_auc: float
    brier: float
    ece: float
    top_decile_lift: float


@dataclass(frozen=True)
class Evaluation:
    """Out-of-time results of the three scorers and the model's top drivers."""

    train_days: list[str]
    test_day: str
    train_rows: int
    test_rows: int
    test_churn_rate: float
    scorers: list[ScorerMetrics]
    importance: list[tuple[str, float, float]]
    """(feature, mean ROC AUC drop when permuted, its standard deviation), largest first."""
    calibration: list[dict[str, float]] = field(default_factory=list)
    driver_importance: list[tuple[str, float, float]] = field(default_factory=list)
    """(driver: a group of :data:`~caret_otel.churn.features.DRIVER_GROUPS`, mean ROC AUC
    drop when its features are permuted together, standard deviation), largest first."""

    def scorer(self, name: str) -> ScorerMetrics:
        return next(s for s in self.scorers if s.name == name)

    def top_drivers(self, count: int = 5) -> list[str]:
        """The ``count`` drivers (feature groups) whose shuffling costs the most ROC AUC."""
        return [name for name, _, _ in self.driver_importance[:count]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stack(data: f.DailyAggregates, days: list[int]) -> tuple[f.FloatArray, f.IntArray]:
    snaps = [f.snapshot(data, t, require_label=True) for t in days]
    x = np.vstack([s.x for s in snaps])
    y = np.concatenate([s.y for s in snaps if s.y is not None])
    return x, y


def _check(x: f.FloatArray, y: f.IntArray, what: str) -> None:
    if len(y) < MIN_ROWS or y.min() == y.max():
        raise NotEnoughData(
            f"{what}: {len(y)} labelled user snapshots ({int(y.sum())} churned); at least "
            f"{MIN_ROWS} with both churners and stayers are needed - the aggregates must cover "
            f"at least {f.OBSERVATION_DAYS + 2 * f.LABEL_DAYS} days"
        )


def split(data: f.DailyAggregates) -> tuple[list[int], int]:
    """(training snapshot days, test snapshot day) as day indexes."""
    test = data.days - f.LABEL_DAYS
    last_train = test - f.LABEL_DAYS
    if last_train < f.OBSERVATION_DAYS:
        raise NotEnoughData(
            f"the aggregates cover {data.days} days; an out-of-time evaluation needs at least "
            f"{f.OBSERVATION_DAYS + 2 * f.LABEL_DAYS}"
        )
    return list(range(last_train, f.OBSERVATION_DAYS - 1, -SNAPSHOT_STEP_DAYS))[::-1], test


def evaluate(data: f.DailyAggregates, *, seed: int = 0, importance_repeats: int = 5) -> Evaluation:
    """Train on the earlier snapshots, judge every scorer on the last labelled one."""
    with threadpool_limits(THREADS):
        return _evaluate(data, seed, importance_repeats)


def driver_importance(
    model: Any, x: f.FloatArray, y: f.IntArray, *, repeats: int, seed: int
) -> list[tuple[str, float, float]]:
    """Permutation importance of each driver group: the features of a group are shuffled
    together (the same row permutation), ``repeats`` times; ROC AUC lost, largest first."""
    rng = np.random.default_rng(seed)
    base = float(roc_auc_score(y, model.predict_proba(x)[:, 1]))
    rows = []
    for group, names in f.DRIVER_GROUPS.items():
        columns = [f.FEATURES.index(name) for name in names]
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, columns] = x[rng.permutation(len(x))][:, columns]
            drops.append(base - float(roc_auc_score(y, model.predict_proba(shuffled)[:, 1])))
        rows.append((group, round(float(np.mean(drops)), 4), round(float(np.std(drops)), 4)))
    return sorted(rows, key=lambda row: -row[1])


def _evaluate(data: f.DailyAggregates, seed: int, importance_repeats: int) -> Evaluation:
    train_days, test_day = split(data)
    x_train, y_train = _stack(data, train_days)
    x_test, y_test = _stack(data, [test_day])
    _check(x_train, y_train, "training")
    _check(x_test, y_test, "out-of-time test")
    results = []
    fitted: dict[str, Any] = {}
    for name in (GRADIENT_BOOSTING, LOGISTIC, RECENCY_RULE):
        model = fitted[name] = _fit(name, x_train, y_train, seed)
        p = np.asarray(model.predict_proba(x_test)[:, 1], dtype=np.float64)
        results.append(
            ScorerMetrics(
                name=name,
                roc_auc=round(float(roc_auc_score(y_test, p)), 4),
                pr_auc=round(float(average_precision_score(y_test, p)), 4),
                brier=round(float(brier_score_loss(y_test, p)), 4),
                ece=round(float(expected_calibration_error(y_test, p)), 4),
                top_decile_lift=round(top_decile_lift(y_test, p), 3),
            )
        )
    gbm = fitted[GRADIENT_BOOSTING]
    perm = permutation_importance(
        gbm, x_test, y_test, scoring="roc_auc", n_repeats=importance_repeats, random_state=seed
    )
    order = np.argsort(-perm.importances_mean)
    importance = [
        (
            f.FEATURES[i],
            round(float(perm.importances_mean[i]), 4),
            round(float(perm.importances_std[i]), 4),
        )
        for i in order
    ]
    drivers = driver_importance(gbm, x_test, y_test, repeats=importance_repeats, seed=seed)
    p_gbm = np.asarray(gbm.predict_proba(x_test)[:, 1], dtype=np.float64)
    return Evaluation(
        train_days=[data.day_at(t).isoformat() for t in train_days],
        test_day=data.day_at(test_day).isoformat(),
        train_rows=len(y_train),
        test_rows=len(y_test),
        test_churn_rate=round(float(y_test.mean()), 4),
        scorers=results,
        importance=importance,
        calibration=calibration_table(y_test, p_gbm),
        driver_importance=drivers,
    )


def train_for_scoring(data: f.DailyAggregates, *, seed: int = 0) -> HistGradientBoostingClassifier:
    """The gradient-boosted model fitted on every labelled snapshot (for daily scoring)."""
    last = data.days - f.LABEL_DAYS
    days = list(range(last, f.OBSERVATION_DAYS - 1, -SNAPSHOT_STEP_DAYS))
    if not days:
        raise NotEnoughData(
            f"the aggregates cover {data.days} days; training needs at least "
            f"{f.OBSERVATION_DAYS + f.LABEL_DAYS}"
        )
    x, y = _stack(data, days)
    _check(x, y, "training")
    with threadpool_limits(THREADS):
        return gradient_boosting(seed).fit(x, y)
