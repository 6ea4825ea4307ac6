"""The per-record work of the SDK's privacy log processor, in a module of its own.

``PrivacyLogRecordProcessor`` (``sdk.py``) derives from the SDK's processor classes,
which mypyc cannot compile; this module holds what it does for every log record (the
opt-out check, scrubbing the record in place, the resource and scope swapped for their
scrubbed copies) in plain classes that it can, so ``make install`` compiles it with the
gateway's hot path (``caret_otel.receivers.gateway.hot_path.MODULES``). SDK objects are
typed ``Any`` here: they are the SDK's Python classes, read and written by attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from caret_otel.processors.privacy.consent import ConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.report import ScrubReport

NO_ATTRIBUTES: Final[Mapping[str, object]] = {}

ResourceEntry = tuple[Any, Any, Mapping[str, object]]
"""(a resource, its scrubbed copy, its raw user attributes for the consent check)."""


def attributes_view(attributes: object) -> Mapping[str, object]:
    """A plain-dict view of SDK attributes, for reading.

    The SDK keeps attributes in ``BoundedAttributes``, a MutableMapping written in
    Python: iterating it goes through Python-level ``__iter__``/``__getitem__`` per key
    and cost more than the scrubbing itself. Its backing dict is read directly when
    present (never written); any other mapping is used as it is.
    """
    inner: Any = getattr(attributes, "_dict", None)
    if type(inner) is dict:
        return inner
    return attributes if isinstance(attributes, Mapping) else NO_ATTRIBUTES


class LogRecordScrubber:
    """Scrubs SDK log records (``ReadWriteLogRecord``) in place.

    ``resource_entry`` and ``scope`` scrub a resource and an instrumentation scope (the
    processor's caches, built on the SDK's classes); they are asked again only when a
    record carries another resource or scope than the one before: a logger emits record
    after record with the same ones. Not thread-safe: the processor calls it under its
    lock.
    """

    def __init__(
        self,
        engine: PrivacyEngine,
        consent: ConsentStore,
        resource_entry: Callable[[Any, ScrubReport], ResourceEntry],
        scope: Callable[[Any, ScrubReport], Any],
    ) -> None:
        self._engine = engine
        self._consent = consent
        self._resource_entry = resource_entry
        self._scope = scope
        self._events = engine.policy.events
        self._resource: Any = None
        self._scrubbed_resource: Any = None
        self._resource_users: Mapping[str, object] = NO_ATTRIBUTES
        self._last_scope: Any = None
        self._scrubbed_scope: Any = None

    def scrub(self, record: Any, report: ScrubReport) -> bool:
        """Scrub ``record`` in place; False when it belongs to a user who opted out (the
        caller blanks it)."""
        engine = self._engine
        consent = self._consent
        api_record: Any = record.log_record
        attributes = attributes_view(api_record.attributes)
        body: Any = api_record.body
        resource: Any = record.resource
        if resource is not None:
            if resource is not self._resource:
                entry = self._resource_entry(resource, report)
                self._resource = resource
                self._scrubbed_resource = entry[1]
                self._resource_users = entry[2]
            if self._resource_users and engine.opted_out(consent, self._resource_users):
                return False
        if engine.opted_out(consent, attributes):
            return False
        if body is not None and isinstance(body, Mapping) and engine.opted_out(consent, body):
            return False
        if resource is not None:
            record.resource = self._scrubbed_resource
        api_record.attributes = engine.scrub_attributes(attributes, report)
        if body is not None:
            api_record.body = engine.scrub_body(body, report)
        event_name: Any = api_record.event_name
        if event_name and event_name not in self._events:
            api_record.event_name = engine.scrub_name(event_name, report)
        severity_text: Any = api_record.severity_text
        if severity_text:
            api_record.severity_text = engine.scrub_name(severity_text, report)
        scope: Any = record.instrumentation_scope
        if scope is not self._last_scope:  # (None at first: scope(None) is None too)
            self._scrubbed_scope = self._scope(scope, report)
            self._last_scope = scope
        record.instrumentation_scope = self._scrubbed_scope
        return True
