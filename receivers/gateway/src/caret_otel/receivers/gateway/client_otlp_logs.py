"""Caret's own OpenTelemetry exporter on ``/v1/logs``: its log records become client events.

Caret (like Cline) can export its telemetry as OTLP log records instead of PostHog
events (``real-clients.md`` section 3): one record per event, ``body`` = the event name
(no ``event_name`` field), attributes = ``distinct_id`` plus the event's properties
flattened (nested objects as dotted keys, arrays as JSON strings, an absent value as the
string ``"undefined"``), and after login ``user_id``, ``user_email`` and ``user_name`` on
every record (plus a ``user_identified`` record). The resource's ``service.name`` is
``caret`` (``cline`` upstream).

Such records are taken out of the request here and rebuilt as the client events of
``POST /telemetry/events`` (same registry mapping, privacy, consent, token rule and
task spans), so both transports give the same data:

- ``user_id_hash`` = ``user_id`` when present (after login), else ``distinct_id``; when
  both are present and differ, ``distinct_id`` (the machine) becomes ``device_id``, so
  the identity link is recorded;
- ``user_email`` and ``user_name`` are read by nobody: they never leave the gateway;
- ``session_id`` = the record's ``session.id`` / ``session_id`` attribute, else the
  resource's ``service.instance.id``, else the user (one session per user);
- ``timestamp`` = the record's time (or observed time);
- ``"undefined"`` values are dropped; the metadata (``extension_version``, ``platform``)
  also fills ``client_info``.

A record whose body names no registry client event stays in the request and goes the
way of every service log record (``user_identified`` is dropped: it only repeats the
identity that every later record carries).
"""

from __future__ import annotations

import weakref
from datetime import UTC, datetime
from typing import Any, Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from caret_otel.receivers.gateway import consent_route, events_route
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.client_ingest import ConsentWriter
from caret_otel.receivers.gateway.runtime import Gateway
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

CLIENT_SERVICE_NAMES: Final = frozenset({"caret", "cline"})
USER_IDENTIFIED: Final = "user_identified"
UNDEFINED: Final = "undefined"
# Record attributes with a meaning of their own (not event properties).
DISTINCT_ID: Final = "distinct_id"
USER_ID: Final = "user_id"
DROPPED_IDENTITY: Final = frozenset({"user_email", "user_name"})
SESSION_KEYS: Final = (attrs.SESSION_ID, "session_id")
_SKIP: Final = frozenset({DISTINCT_ID, USER_ID, *DROPPED_IDENTITY, *SESSION_KEYS})


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    return None  # arrays, maps and bytes are no client property shape


def _service(resource_attributes: Any) -> tuple[str | None, str | None]:
    name = instance = None
    for kv in resource_attributes:
        if kv.key == attrs.SERVICE_NAME:
            name = kv.value.string_value
        elif kv.key == attrs.SERVICE_INSTANCE_ID:
            instance = kv.value.string_value or None
    return name, instance


def _timestamp(nanos: int) -> str:
    moment = datetime.fromtimestamp(nanos / 1e9, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def extract_client_events(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """Remove the Caret client's records from ``request``; return them as client events."""
    extracted: list[dict[str, Any]] = []
    for resource_logs in request.resource_logs:
        service, instance = _service(resource_logs.resource.attributes)
        if service not in CLIENT_SERVICE_NAMES:
            continue
        for scope_logs in resource_logs.scope_logs:
            kept = []
            for record in scope_logs.log_records:
                name = record.body.string_value if record.body.HasField("string_value") else ""
                if record.event_name or not name:
                    kept.append(record)
                elif name == USER_IDENTIFIED:
                    continue
                elif events.for_client_event(name) is None:
                    kept.append(record)  # refused downstream like any unknown record
                else:
                    extracted.append(_client_event(name, record, instance))
            if len(kept) != len(scope_logs.log_records):
                del scope_logs.log_records[:]
                scope_logs.log_records.extend(kept)
    return extracted


def _client_event(name: str, record: Any, instance: str | None) -> dict[str, Any]:
    values = {kv.key: _value(kv.value) for kv in record.attributes}
    distinct, user = values.get(DISTINCT_ID), values.get(USER_ID)
    identity = user if isinstance(user, str) and user else distinct
    properties = {
        key: value
        for key, value in values.items()
        if key not in _SKIP and value is not None and value != UNDEFINED
    }
    if isinstance(distinct, str) and distinct and identity != distinct:
        properties.setdefault("device_id", distinct)
    session = next((values[k] for k in SESSION_KEYS if isinstance(values.get(k), str)), None)
    # The metadata fills client_info; a record without it (user.extension_activated is
    # sent with no properties) gets empty values, which the value shapes drop.
    client_info = {
        field: value if isinstance(value := properties.get(key), str) else ""
        for field, key in (("version", "extension_version"), ("platform", "platform"))
    }
    return {
        "event_type": name,
        "user_id_hash": identity,
        "session_id": session or instance or identity,
        "timestamp": _timestamp(record.time_unix_nano or record.observed_time_unix_nano),
        "properties": properties,
        "client_info": client_info,
    }


async def ingest(gateway: Gateway, client_events: list[dict[str, Any]], country: str | None) -> int:
    """Take extracted client events like ``POST /telemetry/events`` does (one consent
    writer per gateway, for the service role that sent them); the number not accepted
    (rejected or opted out), for the OTLP partial-success answer."""
    known = _writers.get(id(gateway))
    if known is not None and known[0]() is gateway:
        writer = known[1]
    else:
        writer = consent_route.consent_writers(gateway)(Role.SERVICE)
        _writers[id(gateway)] = (weakref.ref(gateway), writer)
    result = await gateway.ingestor.ingest(client_events, country, writer)
    events_route.export_result(gateway, result)
    return len(result.rejected) + result.opted_out


# Per gateway (by identity: the Gateway is not hashable), checked through a weak reference.
_writers: dict[int, tuple[weakref.ref[Gateway], ConsentWriter]] = {}
