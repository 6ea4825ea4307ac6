"""Run every panel query against the real Prometheus and PostgreSQL and report which
return data: the check behind "every panel shows something" (end-to-end test and
``caret-otel dashboards verify``).

Variables are resolved the way a user opening the dashboard gets them (first value of
each ``label_values`` query, asked of the same Prometheus); PromQL runs as Grafana runs
it (``query_range`` for graphs, ``query`` for instant panels); SQL runs as the read-only
analyst role Grafana's datasource uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import psycopg
from psycopg import sql

from caret_otel.core.errors import ServiceError
from caret_otel.dashboards import panel_queries as pq

ANALYST_ROLE: Final = "caret_analyst"


class QueryFailedError(ServiceError):
    """The datasource answered with an error (bad query, missing column, no permission)."""


@dataclass(frozen=True)
class PanelResult:
    query: pq.PanelQuery
    expanded: str
    results: int
    """Series (PromQL) or rows (SQL) returned."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.results > 0

    def __str__(self) -> str:
        state = "ok" if self.ok else (f"error: {self.error}" if self.error else "no data")
        return f"{self.query}: {state} ({self.results})"


class PrometheusApi:
    """The two query endpoints and the label-values endpoint of one Prometheus."""

    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.Client(timeout=30.0)

    def _get(self, path: str, params: Mapping[str, str | list[str]]) -> Any:
        response = self._client.get(f"{self.base_url}{path}", params=params)
        try:
            body = response.json()
        except ValueError:
            raise QueryFailedError(f"HTTP {response.status_code}: {response.text[:200]}") from None
        if response.status_code != 200 or body.get("status") != "success":
            raise QueryFailedError(
                f"{body.get('errorType', response.status_code)}: {body.get('error', body)}"
            )
        return body["data"]

    def series_count(self, expr: str, time_range: pq.TimeRange, *, instant: bool) -> int:
        end = f"{time_range.end.timestamp():.3f}"
        if instant:
            data = self._get("/api/v1/query", {"query": expr, "time": end})
        else:
            # Grafana's step: with it, consecutive $__rate_interval windows cover the range.
            step = pq.grafana_step(time_range)
            # Points are start, start + step, ...: count back from the end, so the last
            # point is the end itself and a series that began minutes ago is seen (with a
            # 7-day range the step is 10 minutes, longer than Prometheus' 5-minute lookback).
            span = time_range.end.timestamp() - time_range.start.timestamp()
            start = time_range.end.timestamp() - math.ceil(span / step) * step
            params = {
                "query": expr,
                "start": f"{start:.3f}",
                "end": end,
                "step": f"{step}s",
            }
            data = self._get("/api/v1/query_range", params)
        if data.get("resultType") == "scalar":
            return 1
        return len(data.get("result", []))

    def label_values(self, time_range: pq.TimeRange) -> Callable[[str | None, str], list[str]]:
        """A resolver for :func:`panel_queries.variable_values` over ``time_range``.

        Values come busiest first (largest sum of the selector's series), so a variable
        is set the way a user looking at the dashboard would set it: to the provider or
        model with the most traffic, not to whichever sorts first.
        """

        def resolve(selector: str | None, label: str) -> list[str]:
            if selector is None:
                params: dict[str, str | list[str]] = {
                    "start": f"{time_range.start.timestamp():.3f}",
                    "end": f"{time_range.end.timestamp():.3f}",
                }
                return sorted(
                    str(v) for v in self._get(f"/api/v1/label/{label}/values", params) if v
                )
            busiest = f"sort_desc(sum by ({label}) ({selector}))"
            data = self._get(
                "/api/v1/query", {"query": busiest, "time": f"{time_range.end.timestamp():.3f}"}
            )
            values = (str(series["metric"].get(label, "")) for series in data.get("result", []))
            return [value for value in values if value]

        return resolve


def count_rows(conn: psycopg.Connection[tuple[Any, ...]], query: str, role: str | None) -> int:
    """Rows ``query`` returns, run read-only (as ``role`` when given), rolled back."""
    with conn.transaction(force_rollback=True), conn.cursor() as cursor:
        cursor.execute("SET TRANSACTION READ ONLY")
        if role:
            cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        cursor.execute(query.encode())
        return len(cursor.fetchall())


def verify(
    dashboards: Iterable[Mapping[str, Any]],
    prometheus: PrometheusApi,
    database: psycopg.Connection[tuple[Any, ...]] | None,
    time_range: pq.TimeRange | None = None,
    *,
    role: str | None = ANALYST_ROLE,
    progress: Callable[[PanelResult], None] | None = None,
) -> list[PanelResult]:
    """Every panel query of ``dashboards``, expanded and run; one result per query.

    ``time_range`` None means each dashboard's own default range (what a user sees first).
    """
    results: list[PanelResult] = []
    for dashboard in dashboards:
        window = time_range or pq.TimeRange.of_dashboard(dashboard)
        values = pq.variable_values(dashboard, prometheus.label_values(window))
        for query, expanded in pq.expanded_queries(dashboard, values, window):
            results.append(_run(query, expanded, prometheus, database, window, role))
            if progress is not None:
                progress(results[-1])
    return results


def _run(
    query: pq.PanelQuery,
    expanded: str,
    prometheus: PrometheusApi,
    database: psycopg.Connection[tuple[Any, ...]] | None,
    time_range: pq.TimeRange,
    role: str | None,
) -> PanelResult:
    try:
        if query.is_promql:
            count = prometheus.series_count(expanded, time_range, instant=query.instant)
        elif database is None:
            return PanelResult(query, expanded, 0, "no database given for an SQL panel")
        else:
            count = count_rows(database, expanded, role)
    except (QueryFailedError, httpx.HTTPError, psycopg.Error) as exc:
        return PanelResult(query, expanded, 0, f"{type(exc).__name__}: {exc}".strip())
    return PanelResult(query, expanded, count)
