"""Every dashboard panel shows data on the local stack with simulated traffic.

Each panel query of the four dashboards, with its variables set to the first value the
real Prometheus offers (as when a user opens the dashboard) and each dashboard's own
default time range, runs against the stack's real Prometheus (PromQL: ``query_range``
or ``query`` as Grafana would) and real PostgreSQL (SQL, logged in as the read-only
``caret_analyst`` role Grafana's datasource uses). A query that errors or returns no
series / no rows is a bug in the dashboard or in the pipeline.

Metrics reach Prometheus on their own schedule (the gateway and SDK push every 15 s,
Prometheus scrapes every 5 s, and rate() needs two samples), so panels are re-queried
until they all show data or :data:`SETTLE_TIMEOUT_S` has passed.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from e2e.conftest import RunningStack

from caret_otel.dashboards import generate
from caret_otel.dashboards import panel_queries as pq
from caret_otel.dashboards.verify import PanelResult, PrometheusApi, verify

pytestmark = pytest.mark.e2e

DASHBOARDS = generate.build_dashboards()
SETTLE_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def results(running_stack: RunningStack) -> dict[str, list[PanelResult]]:
    prometheus = PrometheusApi(running_stack.prometheus_url)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    with psycopg.connect(running_stack.analyst_dsn, autocommit=True) as analyst:
        while True:
            found = verify(DASHBOARDS.values(), prometheus, analyst, role=None)
            if all(r.ok for r in found) or time.monotonic() > deadline:
                break
            time.sleep(5)
    by_dashboard: dict[str, list[PanelResult]] = {}
    for result in found:
        by_dashboard.setdefault(result.query.dashboard, []).append(result)
    return by_dashboard


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_panel_query_returns_data(results: dict[str, list[PanelResult]], uid: str) -> None:
    checked = results[uid]
    assert len(checked) == len(pq.panel_queries(DASHBOARDS[uid]))
    failures = [f"{r}\n    {r.expanded}" for r in checked if not r.ok]
    assert failures == [], "\n".join(failures)


def test_both_datasources_were_exercised(results: dict[str, list[PanelResult]]) -> None:
    every = [r for checked in results.values() for r in checked]
    assert sum(r.query.is_sql for r in every) >= 15
    assert sum(r.query.is_promql for r in every) >= 60
