"""SLO rules, their timing knob and the SLO dashboard (promtool proves the alerts
themselves in ``prometheus/tests/slo_test.yml``)."""

from __future__ import annotations

import re

import pytest
import yaml

from caret_otel.dashboards import panel_queries as pq
from caret_otel.dashboards import rules, slo


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (259200, "3d"), (300, "5m"), (90, "90s"), (0.2, "1s"), (86400 * 2, "2d")],
)
def test_prometheus_duration(seconds: float, text: str) -> None:
    assert rules.prometheus_duration(seconds) == text


def test_speedup_shortens_windows_and_pending_but_keeps_every_name() -> None:
    fast = rules.RuleTiming(speedup=60, evaluation_interval="1s")
    assert (fast.window("1h"), fast.window("5m"), fast.window("3d")) == ("1m", "5s", "72m")
    normal = yaml.safe_load(rules.slo_file())
    quick = yaml.safe_load(rules.slo_file(fast))

    def names(doc: dict[str, object]) -> list[str]:
        groups = doc["groups"]
        assert isinstance(groups, list)
        return [r.get("record") or r["alert"] for g in groups for r in g["rules"]]

    assert names(normal) == names(quick)
    assert [g["interval"] for g in quick["groups"]] == ["1s"]
    pending = {r["alert"]: r["for"] for r in quick["groups"][0]["rules"] if "alert" in r}
    assert set(pending.values()) == {"2s", "15s"}  # 2m and 15m, 60x faster
    one_hour = next(
        r["expr"]
        for r in quick["groups"][0]["rules"]
        if r["record"] == "caret:slo_collection_success:error_ratio_rate1h"
    )
    assert "[1m]" in one_hour
    assert "[1h]" not in one_hour


def test_speedup_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speedup"):
        rules.RuleTiming(speedup=0)


def test_every_slo_has_every_window_and_two_burn_alerts() -> None:
    records = {r["record"] for r in rules.slo_recording_rules()}
    alerts = rules.slo_alerts()
    for objective in rules.slos():
        assert {objective.record(w) for w in rules.SLO_WINDOWS} <= records
        mine = [a for a in alerts if a.labels[rules.SLO_LABEL] == objective.name]
        assert [(a.labels[rules.BURN_LABEL], a.severity) for a in mine] == [
            ("fast", "critical"),
            ("slow", "warning"),
        ]


def test_burn_thresholds_follow_the_sre_workbook() -> None:
    collection = rules.slos()[0]
    fast = next(
        a for a in rules.slo_alerts() if a.name == collection.alert_name(rules.BURN_ALERTS[0])
    )
    # 14.4x and 6x of a 1 % budget.
    assert "error_ratio_rate1h > 0.144 and" in fast.expr
    assert "error_ratio_rate5m > 0.144)" in fast.expr
    assert "error_ratio_rate6h > 0.06 and" in fast.expr
    assert "error_ratio_rate30m > 0.06)" in fast.expr
    factors = [w.factor for b in rules.BURN_ALERTS for w in b.windows]
    assert factors == [14.4, 6, 3, 1]


def test_ingestion_stopped_inhibits_only_collection_alerts() -> None:
    caused = rules.caused_by_ingestion_stopped()
    known = {a.name for a in [*rules.alerts(), *rules.slo_alerts()]}
    assert set(caused) <= known
    assert rules.INGESTION_STOPPED in known
    assert all("Collection" in name for name in caused)


def test_slo_dashboard_reads_only_recorded_slo_series() -> None:
    board = slo.build()
    records = {r["record"] for r in rules.slo_recording_rules()}
    queries = [q for q in pq.panel_queries(board) if q.is_promql]
    assert len(queries) >= 4 * (2 + 4 + 3)  # budget left, exhaustion, 4 burn rates, 3 ratios
    for query in queries:
        used = set(re.findall(r"[a-z_]+:slo_[a-z_]+:[a-z_0-9]+", query.text))
        assert used, query.text
        assert used <= records, query.text
    titles = [p["title"] for p in pq.iter_panels(board)]
    assert any("budget gone in" in t for t in titles)
    assert any("burn rate" in t for t in titles)
