"""The dashboard lint passes on our dashboards and catches each kind of mistake."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from caret_otel.dashboards import generate, lint
from caret_otel.dashboards import panel_queries as pq
from caret_otel.dashboards.paths import repo_root

ROOT = repo_root()
Dashboard = dict[str, Any]


@pytest.fixture(scope="module")
def dashboards() -> dict[str, Dashboard]:
    return generate.build_dashboards()


def first_panel(dashboard: Dashboard, kind: str = "prometheus") -> dict[str, Any]:
    return next(p for p in pq.iter_panels(dashboard) if p["datasource"]["type"] == kind)


def test_our_dashboards_are_clean(dashboards: dict[str, Dashboard]) -> None:
    assert lint.lint_all(list(dashboards.values()), ROOT) == []


def test_provisioning_has_the_four_fixed_uids() -> None:
    provisioned = lint.provisioned_datasources(ROOT)
    assert provisioned == {
        "prometheus": "prometheus",
        "tempo": "tempo",
        "loki": "loki",
        "postgres": "grafana-postgresql-datasource",
    }


def test_every_dashboard_has_the_issue_panels(dashboards: dict[str, Dashboard]) -> None:
    assert set(dashboards) >= {
        "caret-llm-api",
        "caret-product-usage",
        "caret-business",
        "caret-pipeline-health",
        "caret-slo",
    }
    for dashboard in dashboards.values():
        assert len(list(pq.iter_panels(dashboard))) >= 8, dashboard["uid"]


def remove_unit(d: Dashboard) -> None:
    first_panel(d)["fieldConfig"]["defaults"].pop("unit")


def blank_description(d: Dashboard) -> None:
    first_panel(d)["description"] = " "


def hard_code_uid(d: Dashboard) -> None:
    first_panel(d)["targets"][0]["datasource"]["uid"] = "prometheus"


def unknown_variable(d: Dashboard) -> None:
    first_panel(d)["datasource"]["uid"] = "${nope}"


def unprovisioned_default(d: Dashboard) -> None:
    variable = next(v for v in d["templating"]["list"] if v["type"] == "datasource")
    variable["current"] = {"text": "other", "value": "other"}


def duplicate_title(d: Dashboard) -> None:
    panels = list(pq.iter_panels(d))
    panels[1]["title"] = panels[0]["title"]


def duplicate_id(d: Dashboard) -> None:
    panels = list(pq.iter_panels(d))
    panels[1]["id"] = panels[0]["id"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (remove_unit, "has no unit"),
        (blank_description, "has no description"),
        (hard_code_uid, "hard-coded datasource uid 'prometheus'"),
        (unknown_variable, "${nope} is not a datasource variable"),
        (unprovisioned_default, "default 'other' is not a provisioned uid"),
        (duplicate_title, "title is used twice"),
        (duplicate_id, "is used twice"),
    ],
)
def test_structural_mistakes_are_named(
    dashboards: dict[str, Dashboard], mutate: Callable[[Dashboard], None], message: str
) -> None:
    broken = copy.deepcopy(dashboards["caret-llm-api"])
    mutate(broken)
    problems = lint.lint_dashboard(broken, lint.provisioned_datasources(ROOT))
    assert any(message in str(p) for p in problems), problems


def test_sql_outside_the_analyst_views_is_refused(dashboards: dict[str, Dashboard]) -> None:
    broken = copy.deepcopy(dashboards["caret-business"])
    first_panel(broken, "grafana-postgresql-datasource")["targets"][0]["rawSql"] = (
        "SELECT * FROM raw.events"
    )
    problems = lint.lint_dashboard(broken, lint.provisioned_datasources(ROOT))
    assert any("reads raw.*" in str(p) for p in problems), problems


def test_sql_macro_the_tests_cannot_expand_is_refused(dashboards: dict[str, Dashboard]) -> None:
    broken = copy.deepcopy(dashboards["caret-business"])
    target = first_panel(broken, "grafana-postgresql-datasource")["targets"][0]
    target["rawSql"] = "SELECT $__timeGroup(day, '1d') FROM analytics.active_users"
    problems = lint.lint_dashboard(broken, lint.provisioned_datasources(ROOT))
    assert any("$__timeGroup is not one of" in str(p) for p in problems), problems


def test_promql_that_does_not_parse_is_named(dashboards: dict[str, Dashboard]) -> None:
    broken = copy.deepcopy(dashboards["caret-llm-api"])
    panel = first_panel(broken)
    panel["targets"][0]["expr"] = "sum(rate(x[5m]) by"
    problems = lint.check_promql(lint.promql_to_check([broken]))
    assert len(problems) == 1
    assert f"caret-llm-api / {panel['title']!r} / A" in str(problems[0])
    assert "does not parse" in str(problems[0])


def test_variable_selectors_are_parsed_too(dashboards: dict[str, Dashboard]) -> None:
    checked = [where for where, _ in lint.promql_to_check([dashboards["caret-llm-api"]])]
    assert "caret-llm-api variable provider" in checked
