"""A dashboard under construction: datasource variables, query variables, rows of panels.

:class:`Board` wraps the SDK's dashboard builder so every Caret dashboard gets the same
frame: the datasource variables of the datasources it uses, unique panel ids, links to
the other Caret dashboards, and stable JSON (sorted keys) for the freshness check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from caret_otel.dashboards.datasources import Datasource

TAG: Final = "caret"
"""Every Caret dashboard carries this tag; the dashboard links menu lists them by it."""

ALL_VALUE: Final = ".*"
"""What "All" means in a PromQL regex matcher: also matches series without the label."""


def query_variable(
    name: str, label: str, datasource: Datasource, query: str, description: str
) -> dash.QueryVariable:
    """A multi-select variable filled by a query, with "All" = ``.*``."""
    return (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(datasource.ref)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
        .current(model.VariableOption(text="All", value="$__all", selected=True))
    )


def custom_variable(
    name: str, label: str, values: Sequence[str], description: str
) -> dash.CustomVariable:
    """A single-select variable with fixed values; the first is the default."""
    options = [model.VariableOption(text=v, value=v, selected=i == 0) for i, v in enumerate(values)]
    return (
        dash.CustomVariable(name)
        .label(label)
        .description(description)
        .values(",".join(values))
        .options(options)
        .current(options[0])
        .multi(False)
        .include_all(False)
    )


class Board:
    """One dashboard: ``Board(...).row("Latency", panel, panel).build()``."""

    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        datasources: Sequence[Datasource],
        variables: Sequence[cogbuilder.Builder[model.VariableModel]] = (),
        time_from: str = "now-6h",
    ) -> None:
        self.uid = uid
        self._next_id = 1
        self._builder = (
            dash.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags([TAG])
            .editable()
            .timezone("browser")
            .refresh("30s")
            .time(time_from, "now")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .link(
                dash.DashboardLink("Caret dashboards")
                .type(model.DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .include_vars(False)
                .keep_time(True)
            )
        )
        for datasource in datasources:
            self._builder = self._builder.with_variable(datasource.variable_builder())
        for variable in variables:
            self._builder = self._builder.with_variable(variable)

    def row(self, title: str, *panels: cogbuilder.Builder[model.Panel]) -> Board:
        """A (non-collapsed) row followed by its panels, laid out left to right."""
        self._builder = self._builder.with_row(dash.Row(title).id(self._take_id()))
        for panel in panels:
            built = panel.build()
            built.id_val = self._take_id()
            self._builder = self._builder.with_panel(_Built(built))
        return self

    def build(self) -> dict[str, Any]:
        """The dashboard as Grafana's JSON model (plain dicts and lists)."""
        encoded: dict[str, Any] = json.loads(json.dumps(self._builder.build(), cls=JSONEncoder))
        return encoded

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


class _Built(cogbuilder.Builder[model.Panel]):
    """An already-built panel, handed to the SDK's layout (which places it on the grid)."""

    def __init__(self, panel: model.Panel) -> None:
        self._panel = panel

    def build(self) -> model.Panel:
        return self._panel


def to_json(dashboard: dict[str, Any]) -> str:
    """Stable text for the checked-in file: sorted keys, two-space indent, final newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
