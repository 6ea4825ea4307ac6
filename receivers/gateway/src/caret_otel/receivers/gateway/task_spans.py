"""The ``caret.task`` span, rebuilt from a task's ``task.created`` and ``task.completed``.

Trace and span ids derive from the task *pseudonym* (SHA-256 of the span name and the
pseudonym): any service holding the pseudonymiser keys computes the same trace id from
the raw task id, so its spans join the task's trace, and a redelivered completion
yields the same span (idempotent in Tempo). The raw task id never leaves the gateway.
Rotating the signing key changes the ids of tasks that span the rotation.

The span is emitted once, at ``task.completed``. Its start time is, in order:

1. the timestamp of the task's ``task.created`` if this gateway saw it (a bounded LRU
   of the most recent creations; the registry says "start time = event timestamp");
2. otherwise the completion timestamp minus the client-measured ``caret.task.duration``
   (a task created on another replica, or before a restart);
3. otherwise the completion timestamp (a zero-length span still carries the outcome).

A task that never completes produces no span; its ``caret.task.created`` event and
``caret.task.starts`` count are still recorded.

The real client completes a task more than once: ``task.completed`` repeats each time
the user continues the task, and ``task.restarted`` reopens it from history. Each
*run* is one span: a run opens at ``task.created`` or ``task.restarted`` (or, after a
completion, implicitly at that completion: the continuation) and closes at the next
completion. All runs of a task share its trace id; a run's span id derives from the task
and the run's start time, so runs never share an id and a redelivered completion
yields the same span.
"""

from __future__ import annotations

import collections
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

from caret_otel.otlp import wire as protowire
from caret_otel.otlp.wire import AttributeValue
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import spans

# The span's attributes (registry span.caret.task); a unit test compares with the registry.
SPAN_ATTRIBUTES: tuple[str, ...] = (
    attrs.CARET_TASK_ID,
    attrs.SESSION_ID,
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.GEN_AI_REQUEST_MODEL,
    attrs.CARET_TASK_MODE,
    attrs.CARET_TASK_OUTCOME,
    attrs.CARET_TASK_DURATION,
    attrs.CARET_CLIENT_VERSION,
    attrs.CARET_CLIENT_PLATFORM,
    attrs.CARET_CLIENT_LANGUAGE,
)
# Outcomes that make the span's status ERROR; others leave it UNSET (OTel guidance:
# instrumentation sets OK only when it is sure).
ERROR_OUTCOMES = frozenset({"error", "failed", "failure"})

_ID_DOMAIN = spans.CARET_TASK.encode("ascii") + b"\x00"
_NS_PER_S = 1_000_000_000


def task_ids(task_pseudonym: str, run_start_ns: int | None = None) -> tuple[bytes, bytes]:
    """The ``(trace_id, span_id)`` of a task run's span: the trace from the task's
    pseudonym, the span id from the pseudonym and the run's start (None: the first run
    as this gateway's predecessors computed it)."""
    digest = hashlib.sha256(_ID_DOMAIN + task_pseudonym.encode("utf-8")).digest()
    trace_id, span_id = digest[:16], digest[16:24]
    if run_start_ns is not None:
        run = hashlib.sha256(_ID_DOMAIN + f"{task_pseudonym}@{run_start_ns}".encode()).digest()
        span_id = run[:8]
    # All-zero ids are invalid in OTLP; a SHA-256 prefix of zeros is astronomically rare.
    if not any(trace_id):
        trace_id = trace_id[:-1] + b"\x01"
    if not any(span_id):
        span_id = span_id[:-1] + b"\x01"
    return trace_id, span_id


def task_trace_id(task_pseudonym: str) -> bytes:
    """The 16-byte trace id other services use to join a task's trace."""
    return task_ids(task_pseudonym)[0]


@dataclass(frozen=True)
class _Started:
    time_ns: int
    attributes: dict[str, AttributeValue]


class TaskSpans:
    """Remembers recent ``task.created`` events and turns completions into spans."""

    def __init__(self, max_open_tasks: int) -> None:
        self._max = max_open_tasks
        self._open: collections.OrderedDict[str, _Started] = collections.OrderedDict()
        # Last completion per task: a repeated completion closes the continuation run.
        self._closed: collections.OrderedDict[str, _Started] = collections.OrderedDict()
        self._fields = protowire.AttributeFields(protowire.SPAN_ATTRIBUTE_FIELD)
        self._name = spans.CARET_TASK

    def __len__(self) -> int:
        return len(self._open)

    def created(self, time_ns: int, attributes: Mapping[str, AttributeValue]) -> None:
        task = attributes.get(attrs.CARET_TASK_ID)
        if not isinstance(task, str):
            return
        kept = {k: attributes[k] for k in SPAN_ATTRIBUTES if k in attributes}
        self._remember(self._open, task, _Started(time_ns, kept))

    restarted = created
    """``task.restarted`` opens a new run of the task, like a creation."""

    def _remember(
        self, table: collections.OrderedDict[str, _Started], task: str, started: _Started
    ) -> None:
        table[task] = started
        table.move_to_end(task)
        while len(table) > self._max:
            table.popitem(last=False)

    def completed(self, time_ns: int, attributes: Mapping[str, AttributeValue]) -> bytes | None:
        """The encoded span for a completion, or None without a task pseudonym."""
        task = attributes.get(attrs.CARET_TASK_ID)
        if not isinstance(task, str):
            return None
        started = self._open.pop(task, None)
        continued = False
        if started is None:
            previous = self._closed.get(task)
            if previous is not None and previous.time_ns < time_ns:
                started, continued = previous, True  # the user continued the task
        merged: dict[str, AttributeValue] = dict(started.attributes) if started else {}
        merged.update((k, attributes[k]) for k in SPAN_ATTRIBUTES if k in attributes)
        duration = None if continued else merged.get(attrs.CARET_TASK_DURATION)
        start_ns = self._start_time(time_ns, started, duration)
        self._remember(self._closed, task, _Started(time_ns, merged))
        outcome = merged.get(attrs.CARET_TASK_OUTCOME)
        trace_id, span_id = task_ids(task, start_ns)
        return protowire.span(
            trace_id=trace_id,
            span_id=span_id,
            name=self._name,
            kind=protowire.SPAN_KIND_INTERNAL,
            start_ns=start_ns,
            end_ns=time_ns,
            attributes=self._fields.encode(merged),
            status_code=(
                protowire.STATUS_CODE_ERROR
                if isinstance(outcome, str) and outcome.lower() in ERROR_OUTCOMES
                else protowire.STATUS_CODE_UNSET
            ),
        )

    @staticmethod
    def _start_time(end_ns: int, started: _Started | None, duration: object) -> int:
        if started is not None and started.time_ns <= end_ns:
            return started.time_ns
        if (
            isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and math.isfinite(duration)
            and duration >= 0
        ):
            return max(0, end_ns - int(duration * _NS_PER_S))
        return end_ns
