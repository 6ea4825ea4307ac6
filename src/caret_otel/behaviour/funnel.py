"""Funnels, paths and feature adoption: the queries behind ``caret-otel funnel``,
``caret-otel paths`` and the behaviour dashboard. The computations live in PostgreSQL (migration 0013:
``analytics.funnel``, ``analytics.path_transitions``, ``analytics.session_edges``,
``analytics.feature_adoption``, ``analytics.feature_retention``); this module names
steps by the registry, validates them and runs the queries as the analyst role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
import psycopg

from caret_otel.core.errors import InputError
from caret_otel.exporters.postgres.report import Section
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

FILTER_COLUMNS: Final = (
    "provider",
    "model",
    "feature",
    "feature_action",
    "platform",
    "language",
    "plan",
    "client_version",
    "country",
    "error_type",
)
"""Columns of raw.events a step may be filtered by and a funnel broken down by (none
holds an identifier). ``platform`` is the host app."""
UNITS: Final = {"user": None, "session": None, "task": attrs.CARET_TASK_ID}
"""What converts: a user, a session, or a task (events carrying the same task id)."""
FUNNEL_COLUMNS: Final = (
    "breakdown",
    "step",
    "event",
    "units",
    "conversion_from_first",
    "conversion_from_previous",
    "drop_off",
    "median_seconds_from_previous",
)
SESSION_MARKERS: Final = (events.CARET_SESSION_STARTED.name, events.CARET_SESSION_ENDED.name)
"""Left out of session openings and endings: every session starts and ends with them."""

_BY_NAME: Final = {spec.name: spec for spec in events.ALL}
_BY_CLIENT: Final = {spec.client_event: spec for spec in events.ALL if spec.client_event}


class FunnelError(InputError):
    """A funnel definition that cannot run; the message names the field."""


@dataclass(frozen=True)
class Step:
    event: str
    """The stored event name (``caret.task.created``)."""
    where: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"event": self.event, "where": self.where}


def event_name(text: str) -> str:
    """The stored name of an event given as its name or as the client's event type."""
    if text in _BY_NAME:
        return text
    spec = _BY_CLIENT.get(text)
    if spec is None:
        raise FunnelError(
            "event: not an event of the registry "
            "(use a name like caret.task.created or a client type like task.created)"
        )
    return spec.name


def parse_step(text: str, position: int) -> Step:
    """``EVENT`` or ``EVENT[column=value,column=value]``, e.g. ``task.tokens[provider=openai]``."""
    name, _, rest = text.partition("[")
    where: dict[str, str] = {}
    if rest:
        if not rest.endswith("]"):
            raise FunnelError(f"steps[{position}]: a filter is written EVENT[column=value,...]")
        for part in filter(None, (p.strip() for p in rest[:-1].split(","))):
            column, sep, value = part.partition("=")
            column = column.strip()
            if not sep or column not in FILTER_COLUMNS:
                raise FunnelError(
                    f"steps[{position}]: filter column must be one of {', '.join(FILTER_COLUMNS)}"
                )
            where[column] = value.strip()
    try:
        return Step(event_name(name.strip()), where)
    except FunnelError as exc:
        raise FunnelError(f"steps[{position}]: {exc}") from None


_FUNNEL_SQL: Final = """
SELECT breakdown_value, step, event_name, units, conversion_from_first,
       conversion_from_previous, drop_off, median_seconds_from_previous
FROM analytics.funnel(%(steps)s::jsonb, %(window)s, %(start)s, %(end)s,
                      %(breakdown)s, %(unit)s, %(unit_attribute)s)
"""


def run_funnel(
    conninfo: str,
    steps: list[Step],
    *,
    start: datetime,
    end: datetime,
    window: timedelta = timedelta(days=1),
    breakdown: str | None = None,
    unit: str = "user",
) -> Section:
    """Conversion per step (and per breakdown value, with the total as ``all``)."""
    if not 2 <= len(steps) <= 20:
        raise FunnelError("steps: 2 to 20 steps are needed")
    if breakdown is not None and breakdown not in FILTER_COLUMNS:
        raise FunnelError(f"breakdown: one of {', '.join(FILTER_COLUMNS)}")
    if unit not in UNITS:
        raise FunnelError(f"unit: one of {', '.join(UNITS)}")
    if window <= timedelta(0):
        raise FunnelError("window: must be positive")
    if end <= start:
        raise FunnelError("to: must be after from")
    attribute = UNITS[unit]
    params = {
        "steps": orjson.dumps([s.as_json() for s in steps]).decode(),
        "window": window,
        "start": start,
        "end": end,
        "breakdown": breakdown,
        "unit": "attribute" if attribute else unit,
        "unit_attribute": attribute,
    }
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(_FUNNEL_SQL, params).fetchall()
    title = "Funnel: " + " -> ".join(s.event for s in steps) + f" (per {unit}, within {window})"
    return Section("funnel", title, FUNNEL_COLUMNS, [tuple(r) for r in rows])


def next_events(
    conninfo: str, after: str, *, start: datetime, end: datetime, limit: int = 10
) -> Section:
    """The most common next events after ``after`` within a session."""
    name = event_name(after)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            """SELECT next_event_name, sum(transitions)::bigint AS transitions,
                      round(sum(transitions) / sum(sum(transitions)) OVER (), 4) AS share
               FROM analytics.path_transitions
               WHERE event_name = %s AND day >= %s::date AND day < %s::date
               GROUP BY next_event_name
               ORDER BY transitions DESC, next_event_name LIMIT %s""",
            (
                name,
                start.date(),
                (end - timedelta(microseconds=1)).date() + timedelta(days=1),
                limit,
            ),
        ).fetchall()
    return Section(
        "next_events", f"Next events after {name}", ("next_event", "transitions", "share"),
        [tuple(r) for r in rows],
    )  # fmt: skip


def session_edges(
    conninfo: str, *, start: datetime, end: datetime, limit: int | None = None
) -> Section:
    """The commonest first and last events of sessions (session markers left out); with
    ``limit``, that many event names per edge (openings, then endings)."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            """SELECT edge, event_name, sessions, share FROM (
                   SELECT e.*, row_number() OVER (PARTITION BY edge
                                                  ORDER BY sessions DESC, event_name) AS rank
                   FROM analytics.session_edges(%s, %s, %s) e) ranked
               WHERE %s::integer IS NULL OR rank <= %s::integer
               ORDER BY edge DESC, sessions DESC, event_name""",
            (start, end, list(SESSION_MARKERS), limit, limit),
        ).fetchall()
    return Section(
        "session_edges", "Session openings and endings", ("edge", "event", "sessions", "share"),
        [tuple(r) for r in rows],
    )  # fmt: skip
