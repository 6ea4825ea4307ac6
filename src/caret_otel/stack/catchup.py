"""Waiting until the business tables have caught up with what was sent.

After a simulation the data is still on its way: gateway queue, Collector batches and
persistent queue, the exporter's load and its rollups. :func:`wait_for_catch_up` polls
PostgreSQL until ``raw.events`` holds the expected number of rows and the rollup
queue is empty (so the ``analytics.*`` views are complete), and tells when that was,
so the caller can state the pipeline lag after the last event it sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from caret_otel.core.errors import ServiceError
from caret_otel.exporters.postgres.rollup import queue_state

COUNT_EVENTS = "SELECT count(*) FROM raw.events"


class CatchUpTimeout(ServiceError, TimeoutError):
    """The tables did not reach the expected state in time; the message has the counts."""


@dataclass(frozen=True)
class CatchUp:
    stored_events: int
    pending_rollups: int
    complete_unix: float
    """When the tables were found complete (epoch seconds)."""
    waited_s: float
    """Seconds this call waited."""

    def lag_since(self, sent_unix: float) -> float:
        """Seconds from ``sent_unix`` (the last event sent) until the tables were complete.

        An upper bound: the tables are polled every ``interval_s``.
        """
        return max(self.complete_unix - sent_unix, 0.0)


def table_counts(dsn: str) -> tuple[int, int]:
    """(rows in ``raw.events``, events waiting for the rollups - the exporter's own
    measure of its rollup queue)."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        events = conn.execute(COUNT_EVENTS).fetchone()
        pending = queue_state(conn).depth
    return int(events[0]) if events else 0, pending


def wait_for_catch_up(
    dsn: str,
    expected_events: int,
    *,
    timeout_s: float = 180.0,
    interval_s: float = 0.5,
    on_poll: Callable[[int, int], None] | None = None,
) -> CatchUp:
    """Poll until ``raw.events`` has ``expected_events`` rows and no rollup is pending.

    ``on_poll(stored, pending)`` is called after each poll (for a progress display).
    More rows than expected also ends the wait (the table held rows before the run);
    the caller compares. Raises :class:`CatchUpTimeout` with the last counts.
    """
    started = time.monotonic()
    stored = pending = -1
    while True:
        stored, pending = table_counts(dsn)
        if on_poll is not None:
            on_poll(stored, pending)
        if stored >= expected_events and pending == 0:
            return CatchUp(stored, pending, time.time(), time.monotonic() - started)
        if time.monotonic() - started > timeout_s:
            raise CatchUpTimeout(
                f"after {timeout_s:.0f}s raw.events holds {stored} of {expected_events} expected "
                f"rows and {pending} event(s) wait for the rollups; see the exporter and "
                "Collector logs"
            )
        time.sleep(interval_s)
