"""Panel factories: every panel gets a title, a description, a unit and a datasource
*variable*, so no dashboard module can forget one (the lint test checks the JSON too).

Queries are passed as :class:`Prom` / :class:`caret_otel.dashboards.sql.Sql` builders;
their refIds are assigned here in order (A, B, ...).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import piechart as piechart_model
from grafana_foundation_sdk.models import prometheus as prom_model

from caret_otel.dashboards.datasources import POSTGRES, PROMETHEUS, Datasource
from caret_otel.dashboards.sql import Sql

FULL_WIDTH = 24


@dataclass(frozen=True)
class Prom:
    """One PromQL query of a panel; ``instant`` for stat/table panels."""

    expr: str
    legend: str = ""
    instant: bool = False

    def builder(self, ref_id: str) -> prometheus.Dataquery:
        query = (
            prometheus.Dataquery()
            .expr(self.expr)
            .ref_id(ref_id)
            .editor_mode(prom_model.QueryEditorMode.CODE)
            .datasource(PROMETHEUS.ref)
        )
        if self.legend:
            query = query.legend_format(self.legend)
        if self.instant:
            query = query.instant().format(prom_model.PromQueryFormat.TABLE)
        else:
            query = query.range()
        return query


Query = Prom | Sql


class _PanelBuilder(Protocol):
    """The builder methods every SDK panel type shares."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def datasource(self, datasource: model.DataSourceRef) -> Self: ...
    def height(self, h: int) -> Self: ...
    def span(self, w: int) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[cogvariants.Dataquery]) -> Self: ...
    def build(self) -> model.Panel: ...


def _datasource_of(queries: Sequence[Query]) -> Datasource:
    kinds = {PROMETHEUS if isinstance(q, Prom) else POSTGRES for q in queries}
    if len(kinds) != 1:
        raise ValueError("a panel's queries must all use one datasource")
    return kinds.pop()


P = TypeVar("P", bound=_PanelBuilder)


def _finish(
    panel: P,
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    width: int,
    height: int,
) -> P:
    if not (title and description and unit and queries):
        raise ValueError(f"panel {title!r}: title, description, unit and a query are required")
    panel = (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(_datasource_of(queries).ref)
        .span(width)
        .height(height)
    )
    for ref_id, query in zip(string.ascii_uppercase, queries, strict=False):
        panel = panel.with_target(
            query.builder(ref_id) if isinstance(query, Prom) else query.ref_id(ref_id)
        )
    return panel


def _legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["mean", "max", "lastNotNull"])
    )


def graph(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    bars: bool = False,
) -> timeseries.Panel:
    """A time series panel (lines; ``bars`` for daily SQL data; ``stacked`` for shares)."""
    panel = timeseries.Panel().legend(_legend()).fill_opacity(10).span_nulls(True)
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return _finish(panel, title, description, unit, queries, width, height)


def single(
    title: str, description: str, unit: str, query: Query, *, width: int = 6, height: int = 4
) -> stat.Panel:
    """A stat panel: one big number with a sparkline."""
    panel = (
        stat.Panel()
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    return _finish(panel, title, description, unit, [query], width, height)


def grid(
    title: str, description: str, unit: str, *queries: Query, width: int = 12, height: int = 8
) -> table.Panel:
    """A table panel (instant PromQL or SQL rows)."""
    return _finish(table.Panel(), title, description, unit, queries, width, height)


def pie(
    title: str, description: str, unit: str, query: Query, *, width: int = 8, height: int = 8
) -> piechart.Panel:
    """A pie (donut) chart of shares."""
    panel = (
        piechart.Panel()
        .pie_type(piechart_model.PieChartType.DONUT)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    return _finish(panel, title, description, unit, [query], width, height)
