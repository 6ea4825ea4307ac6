"""Build OTLP requests holding business events, the way the gateway sends them.

For the benchmark, the tests and anyone who wants to feed the exporter by hand:
``logs_request([event_record(name, ts, {attr: value, ...}), ...])``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.otlp.values import python_to_any, unix_nano

Scalar = str | bool | int | float
AttributeValue = Scalar | Sequence[Scalar]


def any_value(value: AttributeValue) -> AnyValue:
    out = AnyValue()
    python_to_any(value, out)
    return out


def event_record(
    event_name: str, ts: datetime, attributes: Mapping[str, AttributeValue]
) -> LogRecord:
    """A log record for one business event at ``ts`` (an aware datetime)."""
    record = LogRecord(event_name=event_name, time_unix_nano=unix_nano(ts))
    record.observed_time_unix_nano = record.time_unix_nano
    record.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
    return record


def logs_request(
    records: Iterable[LogRecord], resource: Mapping[str, AttributeValue] | None = None
) -> ExportLogsServiceRequest:
    """One request, one resource, one scope holding ``records``."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (resource or {}).items():
        resource_logs.resource.attributes.append(KeyValue(key=key, value=any_value(value)))
    resource_logs.scope_logs.add().log_records.extend(records)
    return request
