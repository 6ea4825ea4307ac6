"""``caret-otel privacy``: see what would leave the privacy processor; make keys."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import click
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from caret_otel.otlp.json_format import OtlpJsonError, parse_request, request_to_dict
from caret_otel.processors.privacy.client_events import ClientEventError, ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.otlp import (
    scrub_logs_request,
    scrub_metrics_request,
    scrub_trace_request,
)
from caret_otel.processors.privacy.pseudonyms import (
    Pseudonymizer,
    PseudonymKeyError,
    generate_key_entry,
    keys_from_env,
    parse_keys,
)
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.receivers.gateway.client_batch import (
    EventRejection,
    check_time_window,
    unix_nanos,
)
from caret_otel.receivers.gateway.config import IngestLimits
from caret_otel.semconv.policy import load_policy

OPTED_OUT = "opted_out"
_PROGRESS_EVERY = 1000


@click.group()
def privacy() -> None:
    """Privacy processor tools: a dry run anyone can use, and pseudonym keys.

    \b
    Examples:
      caret-otel privacy keygen --id 2
      caret-otel privacy scrub --input events.jsonl --format events --explain
      caret-otel privacy scrub --input otlp.jsonl --format otlp-json --ephemeral-key
    """


@privacy.command("keygen")
@click.option(
    "--id",
    "key_id",
    default="1",
    show_default=True,
    help="Key id (1-32 letters, digits, '-' or '_'); pseudonyms are written v<id>:<hex>.",
)
def keygen_command(key_id: str) -> None:
    """Print a new pseudonym key entry (<id>:<base64 key>, 32 random bytes).

    The entry goes to stdout; how to use it goes to stderr. To rotate, append the new
    entry to the existing list: the last entry signs new data, the older ones stay
    live so deletion still finds pseudonyms written under them.

    \b
    Examples:
      export CARET_OTEL_PSEUDONYM_KEYS="$(caret-otel privacy keygen --id 1)"
      caret-otel privacy keygen --id 2 >> /run/secrets/caret-pseudonym-keys
    """
    try:
        entry = generate_key_entry(key_id)
    except PseudonymKeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--id") from None
    click.echo(entry)
    click.echo(
        "Keep this key secret (a secret manager or a file readable by the service only).\n"
        "Use it with CARET_OTEL_PSEUDONYM_KEYS='<entries, comma-separated>' or one entry per "
        "line in the file named by CARET_OTEL_PSEUDONYM_KEY_FILE. To rotate, append the new "
        "entry after the old ones.",
        err=True,
    )


@dataclass
class _Totals:
    lines: int = 0
    signals: int = 0
    dropped: int = 0
    errors: int = 0
    report: ScrubReport = field(default_factory=ScrubReport)


@privacy.command("scrub")
@click.option(
    "--input",
    "input_file",
    type=click.File("rb"),
    required=True,
    help="JSON lines to scrub ('-' for stdin).",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["events", "otlp-json"]),
    required=True,
    help="events: one Caret client event per line; otlp-json: one OTLP/JSON export request per line.",
)
@click.option("--explain", is_flag=True, help="Add, per line, what was dropped and why (counts).")
@click.option(
    "--ephemeral-key",
    is_flag=True,
    help="Use a random pseudonym key for this run (pseudonyms will not match stored ones).",
)
@click.option(
    "--country",
    default=None,
    help="Country code the edge would report for every event (events format only).",
)
@click.option(
    "--opt-out",
    "opted_out",
    multiple=True,
    metavar="USER_ID",
    help="Treat this user (client user_id_hash, or a service's user.id) as opted out; repeatable.",
)
def scrub_command(
    input_file: IO[bytes],
    input_format: str,
    explain: bool,
    ephemeral_key: bool,
    country: str | None,
    opted_out: tuple[str, ...],
) -> None:
    """Show what would leave the privacy processor for a file of events or OTLP/JSON.

    Nothing is sent anywhere. Prints one JSON line per input line: the signals as
    they would leave (signal kind, name, attributes, body, ...), what was dropped and
    why, or the error that would make the gateway reject the line. Exits 1 if any line
    was rejected. Needs the production pseudonym keys (CARET_OTEL_PSEUDONYM_KEYS or
    CARET_OTEL_PSEUDONYM_KEY_FILE) to show real pseudonyms; --ephemeral-key runs
    without them.

    \b
    Examples:
      caret-otel privacy scrub --input events.jsonl --format events --explain
      caret-otel privacy scrub --input otlp.jsonl --format otlp-json --ephemeral-key
      echo '{"event_type":"user.opt_out",...}' | caret-otel privacy scrub --input - --format events --ephemeral-key
    """
    pseudonymizer = _pseudonymizer(ephemeral_key)
    engine = PrivacyEngine(load_policy(), pseudonymizer)
    consent = InMemoryConsentStore(pseudonymizer.pseudonymize(u) for u in opted_out)
    totals = _Totals()
    line_scrubber = _LineScrubber(engine, consent, country)
    scrub_line = line_scrubber.event if input_format == "events" else line_scrubber.otlp
    show_progress = sys.stderr.isatty()
    for number, raw in _numbered_lines(input_file):
        report = ScrubReport()
        result: dict[str, Any] = {"line": number}
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            result["error"] = {"field": "line", "reason": f"not valid JSON ({exc.msg})"}
        else:
            scrub_line(document, report, result)
        totals.lines += 1
        totals.signals += len(result.get("signals", ()))
        totals.dropped += sum(d.get("count", 1) for d in result.get("dropped", ()))
        totals.errors += "error" in result
        totals.report.merge(report)
        if explain and "error" not in result:
            result["explain"] = report.as_dict()
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        if show_progress and totals.lines % _PROGRESS_EVERY == 0:
            click.echo(f"\r{totals.lines} lines scrubbed", err=True, nl=False)
    sys.stdout.flush()
    if show_progress and totals.lines >= _PROGRESS_EVERY:
        click.echo("", err=True)
    click.echo(_summary(totals), err=True)
    if totals.errors:
        raise SystemExit(1)


def _pseudonymizer(ephemeral: bool) -> Pseudonymizer:
    if ephemeral:
        click.echo(
            "privacy scrub: using a random pseudonym key for this run; pseudonyms will not "
            "match those the production key gives",
            err=True,
        )
        return Pseudonymizer(parse_keys(generate_key_entry("ephemeral"), source="--ephemeral-key"))
    try:
        return Pseudonymizer(keys_from_env())
    except PseudonymKeyError as exc:
        raise click.ClickException(
            f"{exc}\n(for a dry run without the production key add --ephemeral-key)"
        ) from None


def _numbered_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


class _LineScrubber:
    """Scrubs one parsed input line into its output record (``result``)."""

    def __init__(
        self, engine: PrivacyEngine, consent: InMemoryConsentStore, country: str | None
    ) -> None:
        self._engine = engine
        self._consent = consent
        self._events = ClientEventScrubber(engine, consent)
        self._country = country

    def event(self, document: object, report: ScrubReport, result: dict[str, Any]) -> None:
        if not isinstance(document, dict):
            result["error"] = {"field": "event", "reason": "must be a JSON object"}
            return
        try:
            event = self._events.scrub(document, report, country=self._country)
        except ClientEventError as exc:
            result["error"] = {"field": exc.field, "reason": exc.reason}
            return
        if event is None:
            result["signals"] = []
            result["dropped"] = [{"signal": "log", "reason": OPTED_OUT, "count": 1}]
            return
        try:  # the gateway's time window: what it would refuse is not shown as accepted
            check_time_window(
                unix_nanos(event.timestamp),
                time.time_ns(),
                IngestLimits().max_clock_skew_s,
                self._engine.policy.retention["raw_events_days"],
            )
        except EventRejection as exc:
            result["error"] = {"field": exc.field, "reason": exc.reason}
            return
        result["signals"] = [
            {
                "signal": "log",
                "name": event.spec.name,
                "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
                "attributes": event.attributes,
                "body": None,
            }
        ]

    def otlp(self, document: object, report: ScrubReport, result: dict[str, Any]) -> None:
        if not isinstance(document, dict):
            result["error"] = {"field": "document", "reason": "must be a JSON object"}
            return
        try:
            _, request = parse_request(document)
        except OtlpJsonError as exc:
            field, _, reason = str(exc).partition(": ")
            result["error"] = {"field": field, "reason": reason}
            return
        engine, consent = self._engine, self._consent
        if isinstance(request, ExportTraceServiceRequest):
            signal, rejected = "span", scrub_trace_request(request, engine, consent, report)
        elif isinstance(request, ExportLogsServiceRequest):
            signal, rejected = "log", scrub_logs_request(request, engine, consent, report)
        else:
            signal, rejected = "metric", scrub_metrics_request(request, engine, consent, report)
        result["signals"] = list(_flatten(request_to_dict(request)))
        result["dropped"] = (
            [{"signal": signal, "reason": OPTED_OUT, "count": rejected}] if rejected else []
        )


def _attributes(kvs: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: _value(kv.get("value", {})) for kv in kvs or ()}


def _value(any_value: dict[str, Any]) -> Any:
    """An OTLP/JSON AnyValue as a plain JSON value."""
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in any_value:
            return any_value[key]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "arrayValue" in any_value:
        return [_value(v) for v in any_value["arrayValue"].get("values", ())]
    if "kvlistValue" in any_value:
        return _attributes(any_value["kvlistValue"].get("values"))
    return None


def _flatten(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One entry per span, log record and metric data point of an OTLP/JSON request."""
    for resource_spans in document.get("resourceSpans", ()):
        resource = _attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", ()):
            scope = _scope(scope_spans)
            for span in scope_spans.get("spans", ()):
                yield {
                    "signal": "span",
                    "name": span.get("name", ""),
                    "attributes": _attributes(span.get("attributes")),
                    "events": [
                        {"name": e.get("name", ""), "attributes": _attributes(e.get("attributes"))}
                        for e in span.get("events", ())
                    ],
                    "links": [
                        {"attributes": _attributes(link.get("attributes"))}
                        for link in span.get("links", ())
                    ],
                    "status": span.get("status", {}),
                    "resource": resource,
                    "scope": scope,
                }
    for resource_logs in document.get("resourceLogs", ()):
        resource = _attributes(resource_logs.get("resource", {}).get("attributes"))
        for scope_logs in resource_logs.get("scopeLogs", ()):
            scope = _scope(scope_logs)
            for record in scope_logs.get("logRecords", ()):
                yield {
                    "signal": "log",
                    "name": record.get("eventName", ""),
                    "attributes": _attributes(record.get("attributes")),
                    "body": _value(record.get("body", {})),
                    "severity": record.get("severityText", ""),
                    "resource": resource,
                    "scope": scope,
                }
    for resource_metrics in document.get("resourceMetrics", ()):
        resource = _attributes(resource_metrics.get("resource", {}).get("attributes"))
        for scope_metrics in resource_metrics.get("scopeMetrics", ()):
            scope = _scope(scope_metrics)
            for metric in scope_metrics.get("metrics", ()):
                data: dict[str, Any] = next(
                    (metric[k] for k in _METRIC_KINDS if k in metric), {"dataPoints": []}
                )
                for point in data.get("dataPoints", ()):
                    yield {
                        "signal": "metric",
                        "name": metric.get("name", ""),
                        "attributes": _attributes(point.get("attributes")),
                        "exemplars": [
                            _attributes(e.get("filteredAttributes"))
                            for e in point.get("exemplars", ())
                        ],
                        "resource": resource,
                        "scope": scope,
                    }


_METRIC_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def _scope(scope_container: dict[str, Any]) -> dict[str, Any]:
    scope = scope_container.get("scope", {})
    return {"name": scope.get("name", ""), "attributes": _attributes(scope.get("attributes"))}


def _summary(totals: _Totals) -> str:
    report = totals.report
    return (
        f"privacy scrub: {totals.lines} lines, {totals.signals} signals out, "
        f"{totals.dropped} dropped (opted out), {totals.errors} rejected; "
        f"{report.total_dropped} attributes dropped, "
        f"{sum(report.pseudonymised.values())} pseudonymised, "
        f"{sum(report.redacted.values())} redactions"
    )
