"""Our own checks of dashboards, provisioning and rules, beyond what Grafana validates.

* every panel has a title, a description and a unit, and takes its datasource from a
  datasource variable (no hard-coded uid anywhere, targets included);
* every datasource variable defaults to a uid the provisioning creates, with that type;
* SQL reads only the analyst views (``analytics.*``, ``trends.*``) with the macros the
  end-to-end test can expand;
* every PromQL query, expanded as Grafana would, parses: they are written as recording
  rules into a temporary file and given to ``promtool check rules``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import yaml

from caret_otel.core.environment_variables import CARET_OTEL_PROMTOOL_BIN
from caret_otel.core.errors import ServiceError
from caret_otel.dashboards import panel_queries as pq
from caret_otel.dashboards.datasources import BY_TYPE
from caret_otel.stack.prometheus import unpacked_binary

DATASOURCES_FILE: Final = Path("grafana") / "provisioning" / "datasources" / "datasources.yaml"
ANALYST_SCHEMAS: Final = ("analytics", "trends")
PROMTOOL_HINT: Final = "install it with: apt-get install -y prometheus (or `make services`)"
_VARIABLE_REF: Final = re.compile(r"^\$\{(\w+)\}$")
_SCHEMA_REF: Final = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)\.", re.I)
_LINT_RANGE: Final = pq.TimeRange.last(timedelta(hours=6))


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class PromtoolMissingError(ServiceError):
    """``promtool`` is not installed, so PromQL cannot be checked."""


def promtool_path() -> Path:
    """``$CARET_OTEL_PROMTOOL_BIN``, ``promtool`` on ``PATH``, or the copy ``make services``
    unpacked into ``build/``."""
    name = os.environ.get(CARET_OTEL_PROMTOOL_BIN, "promtool")
    found = shutil.which(name)
    unpacked = unpacked_binary("promtool")
    if found is None and name == "promtool" and unpacked.is_file():
        found = str(unpacked)
    if found is None:
        raise PromtoolMissingError(f"{name} not found; {PROMTOOL_HINT}")
    return Path(found)


def provisioned_datasources(root: Path) -> dict[str, str]:
    """uid -> type of every datasource in the provisioning file."""
    data = yaml.safe_load((root / DATASOURCES_FILE).read_text(encoding="utf-8"))
    return {str(ds["uid"]): str(ds["type"]) for ds in data.get("datasources", [])}


def _datasource_refs(node: Any, path: str = "") -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Every ``"datasource": {...}`` object anywhere in the dashboard JSON."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, Mapping):
                yield f"{path}/{key}", value
            else:
                yield from _datasource_refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _datasource_refs(item, f"{path}[{index}]")


def lint_dashboard(dashboard: Mapping[str, Any], provisioned: Mapping[str, str]) -> list[Problem]:
    """Structural problems of one dashboard (everything except PromQL parsing)."""
    uid = str(dashboard.get("uid") or "(no uid)")
    problems: list[Problem] = []
    variables = {str(v["name"]): v for v in pq.variables(dashboard)}
    ds_variables = {name: v for name, v in variables.items() if v.get("type") == "datasource"}

    for name, variable in ds_variables.items():
        default = str((variable.get("current") or {}).get("value") or "")
        kind = variable.get("query")
        if default not in provisioned:
            problems.append(
                Problem(f"{uid} variable {name}", f"default {default!r} is not a provisioned uid")
            )
        elif provisioned[default] != kind:
            problems.append(
                Problem(
                    f"{uid} variable {name}",
                    f"default {default!r} is a {provisioned[default]}, not {kind}",
                )
            )

    for path, ref in _datasource_refs(dashboard):
        found = _VARIABLE_REF.match(str(ref.get("uid", "")))
        if not found:
            problems.append(
                Problem(
                    f"{uid} {path}",
                    f"hard-coded datasource uid {ref.get('uid')!r}; use a datasource variable",
                )
            )
        elif found.group(1) not in ds_variables:
            problems.append(
                Problem(
                    f"{uid} {path}",
                    f"${{{found.group(1)}}} is not a datasource variable of the dashboard",
                )
            )
        elif ds_variables[found.group(1)].get("query") != ref.get("type"):
            problems.append(
                Problem(
                    f"{uid} {path}",
                    f"type {ref.get('type')!r} does not match ${{{found.group(1)}}}",
                )
            )

    titles: set[str] = set()
    ids: set[int] = set()
    for panel in pq.iter_panels(dashboard):
        title = str(panel.get("title") or "")
        where = f"{uid} panel {title or panel.get('id')!r}"
        if not title:
            problems.append(Problem(where, "has no title"))
        if title in titles:
            problems.append(Problem(where, "title is used twice in the dashboard"))
        titles.add(title)
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or panel_id <= 0:
            problems.append(Problem(where, f"id {panel_id!r} is not a positive integer"))
        elif panel_id in ids:
            problems.append(Problem(where, f"id {panel_id} is used twice"))
        else:
            ids.add(panel_id)
        if not str(panel.get("description") or "").strip():
            problems.append(Problem(where, "has no description"))
        if not ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit"):
            problems.append(Problem(where, "has no unit (fieldConfig.defaults.unit)"))
        if not panel.get("datasource"):
            problems.append(Problem(where, "has no datasource"))
        if not panel.get("targets"):
            problems.append(Problem(where, "has no query"))

    for query in pq.panel_queries(dashboard):
        if not query.text.strip():
            problems.append(Problem(str(query), "empty query"))
        if query.datasource_type not in BY_TYPE:
            problems.append(
                Problem(str(query), f"unknown datasource type {query.datasource_type!r}")
            )
        if query.is_sql:
            problems.extend(_lint_sql(query))
    return problems


def _lint_sql(query: pq.PanelQuery) -> list[Problem]:
    problems = []
    for schema in _SCHEMA_REF.findall(query.text):
        if schema.lower() not in ANALYST_SCHEMAS:
            problems.append(
                Problem(
                    str(query),
                    f"reads {schema}.*; the analyst role sees only {', '.join(ANALYST_SCHEMAS)}",
                )
            )
    for macro in re.findall(r"\$__\w+", query.text):
        if macro not in pq.SQL_MACROS:
            problems.append(
                Problem(str(query), f"macro {macro} is not one of {', '.join(pq.SQL_MACROS)}")
            )
    return problems


def lint_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Stand-in variable values for parsing: datasource defaults, first options, All."""
    return pq.variable_values(dashboard, lambda _selector, _label: [])


def promql_to_check(dashboards: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(where, expanded PromQL) of every panel query and every variable's selector."""
    found: list[tuple[str, str]] = []
    for dashboard in dashboards:
        values = lint_values(dashboard)
        for query, expanded in pq.expanded_queries(dashboard, values, _LINT_RANGE):
            if query.is_promql:
                found.append((str(query), expanded))
        for variable in pq.variables(dashboard):
            if variable.get("type") == "query":
                selector, _label = pq.label_values_query(
                    pq.substitute(str(variable.get("query")), values)
                )
                if selector:
                    found.append((f"{dashboard.get('uid')} variable {variable['name']}", selector))
    return found


def check_promql(
    expressions: Sequence[tuple[str, str]], promtool: Path | None = None
) -> list[Problem]:
    """Parse every expression with ``promtool check rules``; one problem per bad one."""
    if not expressions:
        return []
    tool = promtool or promtool_path()
    if _promtool_accepts([e for _, e in expressions], tool) is None:
        return []
    # Something failed: check one by one to name the panel (rare, so the cost is fine).
    return [
        Problem(where, f"PromQL does not parse: {error}")
        for where, expr in expressions
        if (error := _promtool_accepts([expr], tool)) is not None
    ]


def _promtool_accepts(expressions: Sequence[str], tool: Path) -> str | None:
    rules = [
        {"record": f"caret_lint:query_{i}", "expr": expr} for i, expr in enumerate(expressions)
    ]
    with tempfile.TemporaryDirectory(prefix="caret-lint-") as tmp:
        path = Path(tmp) / "queries.yml"
        path.write_text(
            yaml.safe_dump({"groups": [{"name": "lint", "rules": rules}]}), encoding="utf-8"
        )
        result = subprocess.run(
            [str(tool), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    if result.returncode == 0:
        return None
    return (result.stdout + result.stderr).strip().splitlines()[-1]


def lint_all(
    dashboards: Sequence[Mapping[str, Any]], root: Path, promtool: Path | None = None
) -> list[Problem]:
    """Every problem of every dashboard, PromQL parsing included."""
    provisioned = provisioned_datasources(root)
    problems: list[Problem] = []
    uids: set[str] = set()
    for dashboard in dashboards:
        uid = str(dashboard.get("uid"))
        if uid in uids:
            problems.append(Problem(uid, "dashboard uid used twice"))
        uids.add(uid)
        problems.extend(lint_dashboard(dashboard, provisioned))
    return problems + check_promql(promql_to_check(dashboards), promtool)
