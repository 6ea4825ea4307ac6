"""The Caret client's JSON events, validated and scrubbed into registry attributes.

A client event (section 2.1 of the telemetry plan)::

    {"event_type": "task.created", "user_id_hash": "...", "session_id": "...",
     "timestamp": "2025-01-11T10:00:00Z",
     "properties": {"api_provider": "anthropic", "model": "claude-sonnet-4", ...},
     "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"}}

becomes a ``ScrubbedClientEvent``: the registry event it maps to and its attributes
keyed by registry names, every value passed through the privacy engine. The
gateway turns it into OTel signals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson

from caret_otel.core.errors import InputError
from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.consent import ConsentStore
from caret_otel.processors.privacy.engine import FORBIDDEN, PrivacyEngine
from caret_otel.processors.privacy.geo import continent_of, normalise_country
from caret_otel.processors.privacy.report import ScrubReport, reportable_key
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.events import EventSpec

EVENT_TYPE: Final = "event_type"
USER_ID_HASH: Final = "user_id_hash"
SESSION_ID: Final = "session_id"
TIMESTAMP: Final = "timestamp"
PROPERTIES: Final = "properties"
CLIENT_INFO: Final = "client_info"
CLIENT_EVENT_ID: Final = "event_id"
"""Optional client property: an id the client gives the event; it feeds the event
hash (so two distinct events with equal content stay distinct) and is not stored."""

_RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
_MAX_EVENT_TYPE_LENGTH = 128
_MAX_ID_LENGTH = 512
_EVENT_ID_HEX_LENGTH = 32  # 128 bits: collisions are out of reach at any event volume

# The real client's metadata names the host app as `vscode.env.appName` and the OS as
# Node's `os.type()`: both become coarse, enumerated values (registry shapes host_app and
# os_family); anything else is left to the shape check (dropped, `other` on metrics).
HOST_APPS: Final = {
    "visual studio code": "vscode",
    "visual studio code - insiders": "vscode-insiders",
    "code - oss": "vscode",
    "cursor": "cursor",
    "windsurf": "windsurf",
    "vscodium": "vscodium",
    "trae": "trae",
    "kiro": "kiro",
    "positron": "positron",
    "void": "void",
    "code-server": "code-server",
}
OS_TYPES: Final = {
    "darwin": "darwin",
    "linux": "linux",
    "windows_nt": "windows",
    "win32": "windows",
}
# A provider error's HTTP status at the start of a message ("429 Too Many Requests ...",
# "Error 503: ...") or as a status field in it ('"status": 401').
_STATUS_RE = re.compile(
    r'^\s*(?:error\s*:?\s*)?([45]\d\d)\b|\bstatus(?:_?code)?["\']?\s*[:=]\s*([45]\d\d)\b', re.I
)
_TOKEN_INPUTS: Final = (
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
)

# Attributes only the server sets; a client property naming one is ignored.
_SERVER_SET: Final = frozenset(
    {
        attrs.CARET_EVENT_ID,
        attrs.CARET_EVENT_CLIENT_TYPE,
        attrs.ENDUSER_PSEUDO_ID,
        attrs.SESSION_ID,
        attrs.GEO_COUNTRY_ISO_CODE,
        attrs.GEO_CONTINENT_CODE,
    }
)


class ClientEventError(InputError):
    """A client event is malformed: ``field`` names the offending field (dotted path),
    ``reason`` says what is wrong. Never carries the field's value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(slots=True)
class ScrubbedClientEvent:
    """A client event after validation and the privacy engine. (Not frozen: a frozen
    dataclass's ``__init__`` costs three times as much, once per event.)"""

    spec: EventSpec
    event_type: str
    """The client's event type as sent (e.g. ``task.focus_chain_enabled``)."""
    timestamp: datetime
    """When the client says the event happened (UTC)."""
    attributes: dict[str, object]
    """Registry attribute name -> scrubbed value."""

    @property
    def consent_change(self) -> bool | None:
        """The user's new telemetry setting for ``user.opt_in``/``user.opt_out`` events
        (the gateway records it with ``ConsentStore.set_consent``), else None."""
        if self.spec is events.CARET_USER_OPT_OUT:
            return False
        if self.spec is events.CARET_USER_OPT_IN:
            return True
        return None


def parse_timestamp(value: object, field: str = TIMESTAMP) -> datetime:
    """An RFC 3339 date-time with an offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise ClientEventError(field, "must be an RFC 3339 date-time string")
    if not _RFC3339_RE.match(value):
        raise ClientEventError(
            field, "must be an RFC 3339 date-time with offset, e.g. 2025-01-11T10:00:00Z"
        )
    try:
        parsed = datetime.fromisoformat(value.upper())  # 3.11+: takes "Z" itself
    except ValueError:
        raise ClientEventError(field, "is not a valid date-time") from None
    return parsed.astimezone(UTC)


def _required_string(raw: Mapping[str, object], field: str, max_length: int) -> str:
    value = raw.get(field)
    if value is None:
        raise ClientEventError(field, "is required")
    if not isinstance(value, str):
        raise ClientEventError(field, "must be a string")
    if not value.strip():
        raise ClientEventError(field, "must not be empty")
    if len(value) > max_length:
        raise ClientEventError(field, f"must be at most {max_length} characters")
    return value


def _object(raw: Mapping[str, object], field: str, *, required: bool) -> Mapping[str, object]:
    value = raw.get(field)
    if value is None:
        if required:
            raise ClientEventError(field, "is required")
        return {}
    if type(value) is not dict and not isinstance(value, Mapping):  # dict: skip the ABC check
        raise ClientEventError(field, "must be a JSON object")
    return value


_Decision = tuple[str | None, float, tuple[str, str] | None]
"""A property's attribute name, unit scale and the drop to count (None: it is kept)."""


class ClientEventScrubber:
    """Validates Caret client events and scrubs them with the privacy engine."""

    def __init__(self, engine: PrivacyEngine, consent: ConsentStore) -> None:
        self._engine = engine
        self._consent = consent
        self._aliases = dict(engine.policy.client_properties)
        self._client_info = dict(engine.policy.client_info)
        self._allowed = {spec.name: frozenset(spec.attributes) for spec in events.ALL}
        self._per_event = {
            spec.name: {key: (name, scale) for key, name, scale in spec.properties}
            for spec in events.ALL
        }
        self._not_collected = {spec.name: frozenset(spec.not_collected) for spec in events.ALL}
        self._scales = events.PROPERTY_SCALES
        self._decisions: dict[str, dict[str, _Decision]] = {spec.name: {} for spec in events.ALL}
        # For error messages: the client keys that feed each attribute.
        self._client_keys: dict[str, list[str]] = {}
        for client_key, name in self._aliases.items():
            self._client_keys.setdefault(name, []).append(client_key)

    def scrub(
        self, raw: Mapping[str, object], report: ScrubReport, *, country: str | None = None
    ) -> ScrubbedClientEvent | None:
        """The scrubbed event, or None when the user opted out.

        ``country``: the ISO country code from a trusted edge header (never derived
        from the client's IP here). Raises ``ClientEventError`` for a malformed event.
        """
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise ClientEventError("event", "must be a JSON object")
        event_type = _required_string(raw, EVENT_TYPE, _MAX_EVENT_TYPE_LENGTH)
        mapped = events.for_client_event(event_type)
        if mapped is None:
            raise ClientEventError(
                EVENT_TYPE, "is not a known event type (GET /telemetry/schema lists them)"
            )
        spec, action = mapped
        user_id_hash = _required_string(raw, USER_ID_HASH, _MAX_ID_LENGTH)
        session_id = _required_string(raw, SESSION_ID, _MAX_ID_LENGTH)
        timestamp = parse_timestamp(raw.get(TIMESTAMP))
        properties = _object(raw, PROPERTIES, required=False)
        client_info = _object(raw, CLIENT_INFO, required=True)
        self._check_client_info(client_info)

        user_pseudonym = self._engine.pseudonymizer.pseudonymize(user_id_hash)
        # Opt-in/opt-out events are the consent records themselves: they pass, so that
        # a user who opted out can opt back in and the change is counted. The check
        # covers every live key, so an opt-out recorded before a key rotation holds.
        if spec.name not in _CONSENT_EVENTS:
            is_opted_out = self._consent.is_opted_out
            for pseudonym in self._engine.pseudonymizer.live_pseudonyms(user_id_hash):
                if is_opted_out(pseudonym):
                    return None

        attributes: dict[str, object] = {
            attrs.CARET_EVENT_ID: self._event_id(raw),
            attrs.CARET_EVENT_CLIENT_TYPE: _registry_client_type(event_type, action),
            attrs.ENDUSER_PSEUDO_ID: user_pseudonym,
            attrs.SESSION_ID: self._engine.pseudonymizer.pseudonymize(session_id),
        }
        report.pseudonymised[attrs.ENDUSER_PSEUDO_ID] += 1
        report.pseudonymised[attrs.SESSION_ID] += 1
        raw_attributes = self._map_properties(spec, properties, report)
        raw_attributes.update(self._map_client_info(client_info, report))
        _normalise(spec, raw_attributes)
        attributes.update(self._engine.scrub_attributes(raw_attributes, report))
        if spec.feature is not None:
            attributes[attrs.CARET_FEATURE_NAME] = spec.feature
        if action is not None:
            attributes[attrs.CARET_FEATURE_ACTION] = action
        if country is not None:
            self._add_geo(country, attributes, report)
        for name in spec.required:
            if name not in attributes:
                field, aliases = self._field_for(name)
                also = f" (also accepted as {', '.join(aliases)})" if aliases else ""
                raise ClientEventError(field, f"is required for {event_type}{also}")
        return ScrubbedClientEvent(spec, event_type, timestamp, attributes)

    def _check_client_info(self, client_info: Mapping[str, object]) -> None:
        for field in self._client_info:
            value = client_info.get(field)
            if value is None:
                if field in _OPTIONAL_CLIENT_INFO:
                    continue  # the real client has no UI language on a first run
                raise ClientEventError(f"{CLIENT_INFO}.{field}", "is required")
            if not isinstance(value, str):
                raise ClientEventError(f"{CLIENT_INFO}.{field}", "must be a string")

    def _event_id(self, raw: Mapping[str, object]) -> str:
        """A keyed hash of the canonical event: a retried event gets the same id (so it
        is stored once), and nobody without the key can test a guess of its content."""
        try:
            canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            raise ClientEventError("event", "must contain only JSON values") from None
        return self._engine.pseudonymizer.keyed_digest(canonical)[:_EVENT_ID_HEX_LENGTH]

    def _map_properties(
        self, spec: EventSpec, properties: Mapping[str, object], report: ScrubReport
    ) -> dict[str, object]:
        decisions = self._decisions[spec.name]
        mapped: dict[str, object] = {}
        for key, value in properties.items():
            decision = decisions.get(key)
            if decision is None:
                decision = self._decide(spec, key)
            name, scale, drop = decision
            if drop is not None:
                report.dropped[drop] += 1
            elif name is None:
                continue  # consumed elsewhere (the client's event id: the event hash)
            elif name in mapped:
                report.drop(name, reasons.DUPLICATE)
            else:
                if scale != 1.0 and type(value) in (int, float):
                    value = value * scale  # type: ignore[operator]
                mapped[name] = value
        return mapped

    def _decide(self, spec: EventSpec, key: str) -> _Decision:
        """What happens to property ``key`` of ``spec``: its attribute name and unit
        scale, or the drop to count. Decisions about keys the registry knows are kept
        (a bounded set); an unknown key, the client's free choice, is decided each time."""
        if key == CLIENT_EVENT_ID:
            decision: _Decision = (None, 1.0, None)
        elif key in self._not_collected[spec.name]:
            decision = (None, 1.0, (key, reasons.NOT_COLLECTED))
        else:
            override = self._per_event[spec.name].get(key)
            name: str | None
            if override is not None:
                name, scale = override
            else:
                name, scale = self._aliases.get(key), self._scales.get(key, 1.0)
            if name is None and self._engine.rule(key) is not None:
                name = key  # a registry name used directly
            if name is None:
                return (None, 1.0, (reportable_key(f"{PROPERTIES}.{key}"), reasons.UNKNOWN))
            rule = self._engine.rule(name)
            if rule is not None and rule.privacy == FORBIDDEN:
                decision = (name, scale, (name, reasons.FORBIDDEN))
            elif name in _SERVER_SET or (name in _FEATURE and spec.feature is not None):
                decision = (name, scale, (name, reasons.SERVER_SET))
            elif name not in self._allowed[spec.name]:
                decision = (name, scale, (name, reasons.NOT_IN_EVENT))
            else:
                decision = (name, scale, None)
        self._decisions[spec.name][key] = decision
        return decision

    def _map_client_info(
        self, client_info: Mapping[str, object], report: ScrubReport
    ) -> dict[str, object]:
        mapped: dict[str, object] = {}
        for field, value in client_info.items():
            name = self._client_info.get(field)
            if name is None:
                report.drop(reportable_key(f"{CLIENT_INFO}.{field}"), reasons.UNKNOWN)
            else:
                mapped[name] = value
        return mapped

    def _add_geo(self, country: str, attributes: dict[str, object], report: ScrubReport) -> None:
        code = normalise_country(country)
        if code is None:
            report.drop(attrs.GEO_COUNTRY_ISO_CODE, reasons.INVALID)
            return
        attributes[attrs.GEO_COUNTRY_ISO_CODE] = code
        continent = continent_of(code)
        if continent is not None:
            attributes[attrs.GEO_CONTINENT_CODE] = continent

    def _field_for(self, name: str) -> tuple[str, list[str]]:
        """The client field to name in an error for a missing attribute, and its aliases."""
        keys = self._client_keys.get(name)
        if not keys:
            return name, []
        primary = next((k for k in keys if "_" in k), keys[0])
        return f"{PROPERTIES}.{primary}", [k for k in keys if k != primary]


def _normalise(spec: EventSpec, raw: dict[str, object]) -> None:
    """The real client's values in registry form: host app and OS family enumerated,
    input tokens including cache reads and writes (as upstream's input_tokens), and a
    provider error's HTTP status read from an extension.message text."""
    platform = raw.get(attrs.CARET_CLIENT_PLATFORM)
    if isinstance(platform, str):
        raw[attrs.CARET_CLIENT_PLATFORM] = HOST_APPS.get(platform.strip().lower(), platform)
    os_type = raw.get(attrs.OS_TYPE)
    if isinstance(os_type, str):
        raw[attrs.OS_TYPE] = OS_TYPES.get(os_type.strip().lower(), os_type)
    tokens_in = raw.get(attrs.GEN_AI_USAGE_INPUT_TOKENS)
    if type(tokens_in) is int:
        for key in _TOKEN_INPUTS:
            extra = raw.get(key)
            if type(extra) is int and extra > 0:
                tokens_in += extra
        raw[attrs.GEN_AI_USAGE_INPUT_TOKENS] = tokens_in
    if spec is events.CARET_EXTENSION_ERROR and attrs.HTTP_RESPONSE_STATUS_CODE not in raw:
        message = raw.get(attrs.CARET_ERROR_MESSAGE)
        match = _STATUS_RE.search(message[:200]) if isinstance(message, str) else None
        if match is not None:
            raw[attrs.HTTP_RESPONSE_STATUS_CODE] = int(match.group(1) or match.group(2))
    status = raw.get(attrs.HTTP_RESPONSE_STATUS_CODE)
    if type(status) is int and attrs.ERROR_TYPE not in raw:
        raw[attrs.ERROR_TYPE] = str(status)  # OTel: the status code when nothing better is known


_OPTIONAL_CLIENT_INFO: Final = frozenset({"language"})
_CONSENT_EVENTS: Final = frozenset({events.CARET_USER_OPT_IN.name, events.CARET_USER_OPT_OUT.name})
_FEATURE: Final = frozenset({attrs.CARET_FEATURE_NAME, attrs.CARET_FEATURE_ACTION})


def _registry_client_type(event_type: str, action: str | None) -> str:
    """The client's event type in registry form: as sent when the registry names it, else
    (an event family such as ``task.focus_chain_*``) the family prefix plus the registry
    action, ``other`` for a suffix the registry does not list - never the client's text."""
    if event_type in events.CLIENT_EVENTS or action is None:
        return event_type
    prefix = next(p for p in events.CLIENT_EVENT_FAMILIES if event_type.startswith(p))
    return prefix + action
