"""Every query of a dashboard, with Grafana's variables and macros expanded.

What Grafana does when it renders a panel, reduced to what our dashboards use, so the
lint (does the PromQL parse?) and the end-to-end test (does every panel return data
from the real Prometheus and PostgreSQL?) run exactly the queries Grafana would:

* dashboard variables ``$name`` / ``${name}`` / ``[[name]]``, values regex-escaped for
  multi-value and include-all variables (as Grafana's Prometheus datasource does);
* ``$__rate_interval``, ``$__interval``, ``$__range`` in PromQL;
* ``$__timeFilter(column)``, ``$__timeFrom()``, ``$__timeTo()`` in SQL (the PostgreSQL
  datasource's expansion). Any other ``$__`` macro is an error, so a panel cannot use one
  the tests do not understand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from caret_otel.core.errors import InputError
from caret_otel.dashboards.datasources import POSTGRES, PROMETHEUS

_VARIABLE: Final = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LABEL_VALUES: Final = re.compile(
    r"^\s*label_values\((?:(?P<selector>.+),)?\s*(?P<label>\w+)\s*\)\s*$", re.S
)
_REGEX_SPECIAL: Final = re.compile(r"[\\^$*+?.()|{}\[\]]")
_RELATIVE: Final = re.compile(r"^now-(\d+)([smhdw])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SQL_MACROS: Final = ("$__timeFilter", "$__timeFrom", "$__timeTo")


class ExpansionError(InputError):
    """A variable without a value, or a macro the expansion does not know."""


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, as stored in the dashboard JSON (not expanded)."""

    dashboard: str
    panel: str
    ref_id: str
    datasource_type: str
    text: str
    instant: bool

    @property
    def is_promql(self) -> bool:
        return self.datasource_type == PROMETHEUS.type

    @property
    def is_sql(self) -> bool:
        return self.datasource_type == POSTGRES.type

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref_id}"


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time range the queries are expanded for."""

    start: datetime
    end: datetime

    @classmethod
    def last(cls, duration: timedelta, end: datetime | None = None) -> TimeRange:
        stop = end or datetime.now(UTC)
        return cls(stop - duration, stop)

    @classmethod
    def of_dashboard(cls, dashboard: Mapping[str, Any], end: datetime | None = None) -> TimeRange:
        """The dashboard's default range (``"time": {"from": "now-6h", "to": "now"}``)."""
        time = dashboard.get("time") or {}
        start, stop = str(time.get("from", "")), str(time.get("to", ""))
        found = _RELATIVE.match(start)
        if stop != "now" or not found:
            raise ExpansionError(
                f"{dashboard.get('uid')}: time range {start!r}..{stop!r} is not now-<n><unit>..now"
            )
        return cls.last(timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)]), end)

    @property
    def seconds(self) -> int:
        return max(1, int((self.end - self.start).total_seconds()))


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every target of every panel, in dashboard order."""
    found = []
    for panel in iter_panels(dashboard):
        panel_type = (panel.get("datasource") or {}).get("type", "")
        for target in panel.get("targets", []):
            kind = (target.get("datasource") or {}).get("type", panel_type)
            text = target.get("expr") if kind == PROMETHEUS.type else target.get("rawSql")
            found.append(
                PanelQuery(
                    dashboard=str(dashboard.get("uid", "")),
                    panel=str(panel.get("title", "")),
                    ref_id=str(target.get("refId", "")),
                    datasource_type=kind,
                    text=str(text or ""),
                    instant=bool(target.get("instant")) and not target.get("range"),
                )
            )
    return found


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    templating = dashboard.get("templating") or {}
    return list(templating.get("list", []))


def escape_regex(value: str) -> str:
    """Grafana's escaping of a variable value placed inside a PromQL regex matcher."""
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace dashboard variables; unknown ``$name`` raises (``$1`` etc. are left alone)."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2) or found.group(3)
        if name.startswith("__") or name.isdigit():
            return found.group(0)  # a macro (expanded separately) or a regex back-reference
        if name not in values:
            raise ExpansionError(f"variable ${name} has no value")
        return values[name]

    return _VARIABLE.sub(replace, text)


def _duration(seconds: int) -> str:
    return f"{seconds}s"


def grafana_step(time_range: TimeRange, scrape_interval_s: int = 15) -> int:
    """``$__interval`` in seconds: the range over ~1000 points, at least one scrape."""
    return max(scrape_interval_s, time_range.seconds // 1000)


def expand_promql(
    text: str, values: Mapping[str, str], time_range: TimeRange, scrape_interval_s: int = 15
) -> str:
    """PromQL with variables and Grafana's interval macros replaced."""
    # $__rate_interval: max(4 x scrape interval, $__interval + scrape interval), so the
    # windows of consecutive points overlap and no sample falls between them.
    step = grafana_step(time_range, scrape_interval_s)
    macros = {
        "$__rate_interval": _duration(max(4 * scrape_interval_s, step + scrape_interval_s)),
        "$__interval": _duration(step),
        "$__range": _duration(time_range.seconds),
    }
    expanded = text
    for macro, value in macros.items():
        expanded = re.sub(re.escape(macro) + r"(?!\w)", value, expanded)
    expanded = substitute(expanded, values)
    if "$__" in expanded:
        raise ExpansionError(f"unknown Grafana macro in PromQL: {expanded!r}")
    return expanded


def _sql_time(moment: datetime) -> str:
    return "'" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def expand_sql(text: str, values: Mapping[str, str], time_range: TimeRange) -> str:
    """SQL with variables and the PostgreSQL datasource's time macros replaced."""
    start, end = _sql_time(time_range.start), _sql_time(time_range.end)
    expanded = re.sub(
        r"\$__timeFilter\(\s*([^)]+?)\s*\)",
        lambda m: f"{m.group(1)} BETWEEN {start} AND {end}",
        text,
    )
    expanded = expanded.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    expanded = substitute(expanded, values)
    if "$__" in expanded:
        raise ExpansionError(
            f"unknown Grafana macro in SQL (only {', '.join(SQL_MACROS)}): {expanded!r}"
        )
    return expanded


def label_values_query(query: str) -> tuple[str | None, str]:
    """``label_values(selector, label)`` -> (selector or None, label)."""
    found = _LABEL_VALUES.match(query)
    if not found:
        raise ExpansionError(f"variable query {query!r} is not label_values(selector, label)")
    return found.group("selector"), found.group("label")


def variable_values(
    dashboard: Mapping[str, Any],
    resolve_label_values: Callable[[str | None, str], list[str]],
) -> dict[str, str]:
    """A concrete value for every variable, the way a user opening the dashboard gets one.

    Datasource variables take their default (the provisioned uid); custom variables their
    current option; query variables the first value ``resolve_label_values(selector,
    label)`` returns for their (already expanded) ``label_values`` query, regex-escaped
    when the variable is multi-value or include-all. A query variable with no values
    falls back to its "All" value (``.*``), as Grafana does.
    """
    values: dict[str, str] = {}
    for variable in variables(dashboard):
        name = str(variable["name"])
        kind = variable.get("type")
        current = (variable.get("current") or {}).get("value")
        if kind in ("datasource", "custom", "constant"):
            if not isinstance(current, str) or not current:
                raise ExpansionError(
                    f"{dashboard.get('uid')}: variable {name} has no current value"
                )
            values[name] = current
            continue
        if kind != "query":
            raise ExpansionError(
                f"{dashboard.get('uid')}: variable {name} has unsupported type {kind!r}"
            )
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        selector, label = label_values_query(substitute(text, values))
        found = resolve_label_values(selector, label)
        regex_context = bool(variable.get("multi") or variable.get("includeAll"))
        if found:
            values[name] = escape_regex(found[0]) if regex_context else found[0]
        elif variable.get("includeAll") and variable.get("allValue"):
            values[name] = str(variable["allValue"])
        else:
            raise ExpansionError(
                f"{dashboard.get('uid')}: variable {name}: {text!r} found no values"
            )
    return values


def expanded_queries(
    dashboard: Mapping[str, Any],
    values: Mapping[str, str],
    time_range: TimeRange,
) -> list[tuple[PanelQuery, str]]:
    """Every panel query with its expansion, ready to send to its datasource."""
    result = []
    for query in panel_queries(dashboard):
        if query.is_promql:
            result.append((query, expand_promql(query.text, values, time_range)))
        elif query.is_sql:
            result.append((query, expand_sql(query.text, values, time_range)))
        else:
            raise ExpansionError(
                f"{query}: datasource type {query.datasource_type!r} is not Prometheus nor PostgreSQL"
            )
    return result
