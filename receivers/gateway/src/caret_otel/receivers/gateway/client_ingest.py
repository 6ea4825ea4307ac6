"""From a request's raw client events to encoded OTLP and metric measurements.

Per event, in order: the gateway's limits, the privacy processor (validation,
consent, scrubbing), the time window, the quantity checks; then the log record, the
``caret.task`` span bookkeeping and the metric observations. Nothing is exported
here: the route hands the result to the export queue only once the whole request
has been processed, so a request is either taken as a whole (with its per-event
rejections) or refused as a whole.

Opt-in/opt-out events change consent *before* the next event of the same request is
looked at, so "from the next event on" holds inside a batch too.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from caret_otel.core.version import __version__
from caret_otel.otlp import wire as protowire
from caret_otel.otlp.wire import AttributeValue
from caret_otel.processors.privacy.client_events import (
    USER_ID_HASH,
    ClientEventError,
    ClientEventScrubber,
    ScrubbedClientEvent,
)
from caret_otel.processors.privacy.report import COUNTED_ELSEWHERE, ScrubReport
from caret_otel.receivers.gateway import client_batch
from caret_otel.receivers.gateway.client_batch import EventRejection
from caret_otel.receivers.gateway.client_metrics import (
    SERVICE_NAMESPACE,
    ClientMetrics,
    MetricBatch,
)
from caret_otel.receivers.gateway.config import IngestLimits
from caret_otel.receivers.gateway.task_spans import TaskSpans
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

CLIENT_SERVICE_NAME = "caret-client"
METRICS_ONLY = "metrics"
"""Registry handling of events that only feed metrics (no log record)."""
SCOPE_NAME = "caret_otel.receivers.gateway"

# Envelope fields whose problems get their own rejection code (a bounded label set).
_CODED_FIELDS = frozenset(
    {"event", "event_type", "user_id_hash", "session_id", "timestamp", "properties", "client_info"}
)

# Usage of an assistant turn: counted on the turn unless its task reports task.tokens.
_TURN_USAGE = (
    attrs.GEN_AI_USAGE_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    attrs.CARET_API_COST,
)
_MAX_TOKEN_TASKS = 65_536
_MAX_SESSIONS = 65_536

ConsentWriter = Callable[[str, bool], Awaitable[None]]
"""Records a consent change for a raw user id hash (awaited: it may hit the database)."""


@dataclass
class Rejection:
    index: int
    field: str
    reason: str
    code: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass
class IngestResult:
    """What one request produced; exported and counted by the route."""

    accepted: int = 0
    opted_out: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    report: ScrubReport = field(default_factory=ScrubReport)
    logs: list[bytes] = field(default_factory=list)
    """Encoded ``ScopeLogs.log_records`` fields."""
    spans: list[bytes] = field(default_factory=list)
    """Encoded ``ScopeSpans.spans`` fields."""
    measurements: MetricBatch = field(default_factory=MetricBatch)
    accepted_by_event: collections.Counter[str] = field(default_factory=collections.Counter)


def rejection_code(error: ClientEventError) -> str:
    top = error.field.split(".", 1)[0]
    return f"invalid_{top}" if top in _CODED_FIELDS else "invalid_field"


class ClientEventIngestor:
    """Turns client events into OTLP log records, task spans and measurements."""

    def __init__(
        self,
        scrubber: ClientEventScrubber,
        metrics: ClientMetrics,
        tasks: TaskSpans,
        limits: IngestLimits,
        raw_retention_days: int,
    ) -> None:
        self._scrubber = scrubber
        self._metrics = metrics
        self._tasks = tasks
        self._limits = limits
        self._retention_days = raw_retention_days
        self._log_fields = protowire.AttributeFields(
            protowire.LOG_ATTRIBUTE_FIELD, unique_keys=frozenset({attrs.CARET_EVENT_ID})
        )
        self._event_names = {
            spec.name: protowire.event_name_field(spec.name) for spec in events.ALL
        }
        self._resource = protowire.resource(
            {attrs.SERVICE_NAME: CLIENT_SERVICE_NAME, attrs.SERVICE_NAMESPACE: SERVICE_NAMESPACE}
        )
        self._scope = protowire.instrumentation_scope(SCOPE_NAME, __version__)
        # Tasks (pseudonyms) that reported task.tokens: their turns' usage is not counted
        # again (Cline 2026 sends both; Caret 0.4.x only the turn). A bounded LRU.
        self._token_tasks: collections.OrderedDict[str, None] = collections.OrderedDict()
        # First user pseudonym seen per session: the real client's distinct id is the
        # machine id until login, then the account id, in the same session. An event
        # whose pseudonym differs from its session's first one carries that first one as
        # caret.device.id, and the exporter records the link (one person counted once).
        self._session_users: dict[str, str] = {}

    async def ingest(
        self,
        raw_events: Sequence[object],
        country: str | None,
        record_consent: ConsentWriter,
        *,
        scan_controls: bool = True,
    ) -> IngestResult:
        """``scan_controls=False`` when the request body is known to hold no control
        character (``client_batch.body_may_hold_control_characters``)."""
        result = IngestResult()
        now_ns = time.time_ns()
        limits = self._limits
        for index, raw in enumerate(raw_events):
            try:
                event = client_batch.check_limits(
                    raw, limits.max_attributes_per_event, scan_controls=scan_controls
                )
                scrubbed = self._scrubber.scrub(event, result.report, country=country)
                if scrubbed is None:
                    result.opted_out += 1
                    continue
                time_ns = client_batch.unix_nanos(scrubbed.timestamp)
                client_batch.check_time_window(
                    time_ns, now_ns, limits.max_clock_skew_s, self._retention_days
                )
                client_batch.check_numbers(scrubbed.attributes)
            except ClientEventError as exc:
                result.rejected.append(Rejection(index, exc.field, exc.reason, rejection_code(exc)))
                continue
            except EventRejection as refused:  # its own name: one type per variable (mypyc)
                result.rejected.append(
                    Rejection(index, refused.field, refused.reason, refused.code)
                )
                continue
            if scrubbed.consent_change is not None:
                # The scrubber validated user_id_hash, so the raw event holds a string.
                await record_consent(str(event[USER_ID_HASH]), scrubbed.consent_change)
            self._emit(scrubbed, time_ns, now_ns, result)
        return result

    def _emit(
        self, event: ScrubbedClientEvent, time_ns: int, now_ns: int, result: IngestResult
    ) -> None:
        attributes: dict[str, AttributeValue] = event.attributes  # type: ignore[assignment]
        spec = event.spec
        name = spec.name
        session = attributes.get(attrs.SESSION_ID)
        if isinstance(session, str):
            first = self._session_users.get(session)
            user = attributes.get(attrs.ENDUSER_PSEUDO_ID)
            if first is None and isinstance(user, str):
                self._session_users[session] = user
                if len(self._session_users) > _MAX_SESSIONS:
                    del self._session_users[next(iter(self._session_users))]
            elif first != user and attrs.CARET_DEVICE_ID not in attributes:
                attributes[attrs.CARET_DEVICE_ID] = first  # type: ignore[assignment]
        if spec is events.CARET_TASK_TOKENS or spec is events.CARET_TASK_CONVERSATION_TURN:
            self._count_tokens_once(spec, attributes, result.report)
        if spec.handling != METRICS_ONLY:
            result.logs.append(
                protowire.log_record(
                    time_ns, now_ns, self._event_names[name], self._log_fields.encode(attributes)
                )
            )
        if spec is events.CARET_TASK_CREATED:
            self._tasks.created(time_ns, attributes)
        elif spec is events.CARET_TASK_RESTARTED:
            self._tasks.restarted(time_ns, attributes)
        elif event.spec is events.CARET_TASK_COMPLETED:
            span = self._tasks.completed(time_ns, attributes)
            if span is not None:
                result.spans.append(span)
        self._metrics.observe(result.measurements, name, attributes)
        result.accepted += 1
        result.accepted_by_event[name] += 1

    def _count_tokens_once(
        self, spec: events.EventSpec, attributes: dict[str, AttributeValue], report: ScrubReport
    ) -> None:
        """One rule for both client shapes: task.tokens always counts and marks its task;
        a turn's usage counts unless its task is marked (then it is dropped, counted as
        ``counted_elsewhere``)."""
        task = attributes.get(attrs.CARET_TASK_ID)
        if not isinstance(task, str):
            return
        tasks = self._token_tasks
        if spec is events.CARET_TASK_TOKENS:
            tasks[task] = None
            tasks.move_to_end(task)
            if len(tasks) > _MAX_TOKEN_TASKS:
                tasks.popitem(last=False)
        elif task in tasks:
            for key in _TURN_USAGE:
                if attributes.pop(key, None) is not None:
                    report.drop(key, COUNTED_ELSEWHERE)

    def logs_request(self, result: IngestResult) -> bytes:
        return protowire.export_request(self._resource, self._scope, result.logs)

    def traces_request(self, result: IngestResult) -> bytes:
        return protowire.export_request(self._resource, self._scope, result.spans)
