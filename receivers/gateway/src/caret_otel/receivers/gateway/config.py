"""Gateway configuration, read from the environment once at start-up.

Every variable is listed in :data:`ENV_HELP` (shown by ``caret-otel gateway --help`` and
copied into ``docs/gateway.md``). A bad value stops the gateway with a message naming
the variable and what it expects; a secret's value is never part of a message.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from caret_otel.core.environment_variables import (
    CARET_OTEL_ADMIN_TOKEN,
    CARET_OTEL_ADMIN_TOKEN_FILE,
    CARET_OTEL_BODY_READ_TIMEOUT_SECONDS,
    CARET_OTEL_CONSENT_ASSERTION_KEY_FILE,
    CARET_OTEL_CONSENT_ASSERTION_KEYS,
    CARET_OTEL_CONSENT_ASSERTION_MAX_AGE_SECONDS,
    CARET_OTEL_CONSENT_WRITES_PER_SECOND,
    CARET_OTEL_COUNTRY_HEADER,
    CARET_OTEL_DEV_VOLATILE_CONSENT,
    CARET_OTEL_EXPORT_BATCH_MAX_BYTES,
    CARET_OTEL_EXPORT_GRACE_SECONDS,
    CARET_OTEL_EXPORT_QUEUE_MAX_BYTES,
    CARET_OTEL_INGEST_TOKENS,
    CARET_OTEL_INGEST_TOKENS_FILE,
    CARET_OTEL_LOKI_TENANT,
    CARET_OTEL_LOKI_URL,
    CARET_OTEL_MAX_ATTRIBUTES_PER_EVENT,
    CARET_OTEL_MAX_BODY_BYTES,
    CARET_OTEL_MAX_CLOCK_SKEW_SECONDS,
    CARET_OTEL_MAX_DECOMPRESSED_BYTES,
    CARET_OTEL_MAX_EVENTS_PER_REQUEST,
    CARET_OTEL_MAX_INFLIGHT_REQUESTS,
    CARET_OTEL_MAX_OTLP_FIELDS,
    CARET_OTEL_MAX_VALUE_LENGTH,
    CARET_OTEL_SERVICE_TOKENS,
    CARET_OTEL_SERVICE_TOKENS_FILE,
    CARET_OTEL_TASK_CACHE_SIZE,
    DATABASE_URL,
    OTEL_EXPORTER_OTLP_COMPRESSION,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS,
    OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_METRIC_EXPORT_INTERVAL,
)
from caret_otel.core.errors import ConfigurationError
from caret_otel.processors.privacy.consent import ConsentAssertionKey, parse_assertion_keys
from caret_otel.processors.privacy.pseudonyms import KEY_FILE_ENV, KEYS_ENV

INGEST_TOKENS_ENV = CARET_OTEL_INGEST_TOKENS
INGEST_TOKENS_FILE_ENV = CARET_OTEL_INGEST_TOKENS_FILE
ADMIN_TOKEN_ENV = CARET_OTEL_ADMIN_TOKEN
ADMIN_TOKEN_FILE_ENV = CARET_OTEL_ADMIN_TOKEN_FILE
SERVICE_TOKENS_ENV = CARET_OTEL_SERVICE_TOKENS
SERVICE_TOKENS_FILE_ENV = CARET_OTEL_SERVICE_TOKENS_FILE
ASSERTION_KEYS_ENV = CARET_OTEL_CONSENT_ASSERTION_KEYS
ASSERTION_KEY_FILE_ENV = CARET_OTEL_CONSENT_ASSERTION_KEY_FILE
VOLATILE_CONSENT_ENV = CARET_OTEL_DEV_VOLATILE_CONSENT
LOKI_URL_ENV = CARET_OTEL_LOKI_URL
LOKI_TENANT_ENV = CARET_OTEL_LOKI_TENANT
DATABASE_URL_ENV = DATABASE_URL
COUNTRY_HEADER_ENV = CARET_OTEL_COUNTRY_HEADER
DEFAULT_COUNTRY_HEADER = "CF-IPCountry"
OTLP_ENDPOINT_ENV = OTEL_EXPORTER_OTLP_ENDPOINT
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
MIN_TOKEN_CHARS = 16
METRIC_EXPORT_INTERVAL_ENV = OTEL_METRIC_EXPORT_INTERVAL
# Shorter than the SDK's 60 s: the gateway's metrics feed near-real-time dashboards.
DEFAULT_METRIC_EXPORT_INTERVAL_S = 15.0

SIGNALS = ("traces", "metrics", "logs")


class GatewayConfigError(ConfigurationError):
    """A variable is missing or malformed; the message names it and says how to fix it."""


@dataclass(frozen=True)
class IngestLimits:
    """Bounds on what one request may hold and on what the gateway keeps in memory."""

    max_body_bytes: int = 1 << 20
    """Request body as sent (compressed or not); larger -> 413."""
    max_decompressed_bytes: int = 8 << 20
    """A gzip body may not inflate beyond this (zip bombs) -> 413."""
    max_events_per_request: int = 1000
    """Client events in one request -> 413."""
    max_attributes_per_event: int = 128
    """Keys in one event's ``properties`` -> the event is rejected."""
    max_value_length: int = 4096
    """Characters kept per string value; longer ones are cut (and counted)."""
    max_inflight_requests: int = 256
    """Requests being read or processed at once; more -> 429 (bounds memory)."""
    max_clock_skew_s: float = 300.0
    """Events further in the future than this are rejected."""
    queue_max_bytes: int = 64 << 20
    """Encoded OTLP waiting for the Collector, per signal; full -> 503."""
    export_batch_max_bytes: int = 4 << 20
    """Upper bound of one OTLP export request to the Collector."""
    export_grace_s: float = 5.0
    """How long the Collector may be unreachable before new data is refused (503)."""
    task_cache_size: int = 100_000
    """``task.created`` events remembered to start ``caret.task`` spans."""
    body_read_timeout_s: float = 10.0
    """Deadline for reading a whole request body; a slower (stalled) body -> 408."""
    max_otlp_fields: int = 200_000
    """Protobuf fields (or JSON values) of one OTLP request, counted before decoding -> 413."""
    consent_writes_per_second: float = 50.0
    """Opt-outs taken from client tokens per second and process (a burst of 5 s); -> 429."""
    consent_assertion_max_age_s: float = 300.0
    """How old a signed consent assertion may be (and how long its nonce is remembered)."""


# Environment variable -> (IngestLimits field, converter, what it bounds). In ENV_HELP.
_LIMIT_VARS: dict[str, tuple[str, type, str]] = {
    CARET_OTEL_MAX_BODY_BYTES: ("max_body_bytes", int, "request body as sent, bytes (413)"),
    CARET_OTEL_MAX_DECOMPRESSED_BYTES: (
        "max_decompressed_bytes",
        int,
        "gzip body once inflated, bytes (413)",
    ),
    CARET_OTEL_MAX_EVENTS_PER_REQUEST: (
        "max_events_per_request",
        int,
        "client events per request (413)",
    ),
    CARET_OTEL_MAX_ATTRIBUTES_PER_EVENT: (
        "max_attributes_per_event",
        int,
        "properties per event (event rejected)",
    ),
    CARET_OTEL_MAX_VALUE_LENGTH: (
        "max_value_length",
        int,
        "characters kept per value (longer: cut, counted)",
    ),
    CARET_OTEL_MAX_INFLIGHT_REQUESTS: ("max_inflight_requests", int, "requests in flight (429)"),
    CARET_OTEL_MAX_CLOCK_SKEW_SECONDS: (
        "max_clock_skew_s",
        float,
        "how far in the future a timestamp may be, s",
    ),
    CARET_OTEL_EXPORT_QUEUE_MAX_BYTES: (
        "queue_max_bytes",
        int,
        "OTLP waiting for the Collector per signal, bytes (503)",
    ),
    CARET_OTEL_EXPORT_BATCH_MAX_BYTES: (
        "export_batch_max_bytes",
        int,
        "one export request to the Collector, bytes",
    ),
    CARET_OTEL_EXPORT_GRACE_SECONDS: (
        "export_grace_s",
        float,
        "Collector outage tolerated before 503, s",
    ),
    CARET_OTEL_TASK_CACHE_SIZE: (
        "task_cache_size",
        int,
        "task.created events kept to start task spans",
    ),
    CARET_OTEL_BODY_READ_TIMEOUT_SECONDS: (
        "body_read_timeout_s",
        float,
        "deadline to read a request body, s (408)",
    ),
    CARET_OTEL_MAX_OTLP_FIELDS: (
        "max_otlp_fields",
        int,
        "fields of one OTLP request, counted before decoding (413)",
    ),
    CARET_OTEL_CONSENT_WRITES_PER_SECOND: (
        "consent_writes_per_second",
        float,
        "opt-outs from client tokens per second (429)",
    ),
    CARET_OTEL_CONSENT_ASSERTION_MAX_AGE_SECONDS: (
        "consent_assertion_max_age_s",
        float,
        "lifetime of a signed consent assertion, s",
    ),
}


@dataclass(frozen=True)
class OtlpTarget:
    """Where and how the gateway sends OTLP/HTTP protobuf to the Collector."""

    endpoints: Mapping[str, str]
    """Signal (traces, metrics, logs) -> full URL."""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    compression: str | None = None
    """``gzip`` or None (the Collector is usually next door: spend no CPU on it)."""

    def __repr__(self) -> str:  # headers often carry credentials
        return (
            f"OtlpTarget(endpoints={dict(self.endpoints)!r}, headers=<{len(self.headers)}>, "
            f"timeout_s={self.timeout_s}, compression={self.compression!r})"
        )


@dataclass(frozen=True)
class GatewayConfig:
    ingest_tokens: tuple[str, ...]
    """Client tokens (the extension ships them: public): client events and opt-outs."""
    admin_token: str | None
    otlp: OtlpTarget
    database_url: str | None = None
    country_header: str | None = DEFAULT_COUNTRY_HEADER
    limits: IngestLimits = field(default_factory=IngestLimits)
    metric_export_interval_s: float = DEFAULT_METRIC_EXPORT_INTERVAL_S
    """How often client-derived metrics are pushed (``OTEL_METRIC_EXPORT_INTERVAL``, ms)."""
    service_tokens: tuple[str, ...] = ()
    """Tokens of Caret's own services: OTLP ``/v1/*``, their pseudonyms, consent changes."""
    assertion_keys: tuple[ConsentAssertionKey, ...] = ()
    """Keys of the account service's consent assertions (none: only service/admin lift)."""
    volatile_consent: bool = False
    """Development only: consent may be kept in process memory (lost on restart)."""
    loki_url: str | None = None
    """Loki's base URL: deletions also file a Loki delete request."""
    loki_tenant: str | None = None

    def __repr__(self) -> str:
        return (
            f"GatewayConfig(ingest_tokens=<{len(self.ingest_tokens)}>, "
            f"service_tokens=<{len(self.service_tokens)}>, "
            f"assertion_keys=<{len(self.assertion_keys)}>, loki_url={self.loki_url!r}, "
            f"admin_token={'<set>' if self.admin_token else None}, otlp={self.otlp!r}, "
            f"database_url={'<set>' if self.database_url else None}, "
            f"country_header={self.country_header!r}, limits={self.limits!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if environ is None else environ
        ingest = _read_secret_list(env, INGEST_TOKENS_ENV, INGEST_TOKENS_FILE_ENV)
        if not ingest:
            raise GatewayConfigError(
                f"no ingest token configured: set {INGEST_TOKENS_ENV}=<token>[,<token>...] "
                f"or {INGEST_TOKENS_FILE_ENV}=<file with one token per line>; "
                'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        admin_tokens = _read_secret_list(env, ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV)
        if len(admin_tokens) > 1:
            raise GatewayConfigError(
                f"{ADMIN_TOKEN_ENV}: expected one token, found {len(admin_tokens)}"
            )
        admin = admin_tokens[0] if admin_tokens else None
        if admin is not None and admin in ingest:
            raise GatewayConfigError(
                f"{ADMIN_TOKEN_ENV} must differ from every ingest token "
                "(a client's token must never be able to delete data)"
            )
        service = _read_secret_list(env, SERVICE_TOKENS_ENV, SERVICE_TOKENS_FILE_ENV)
        if set(service) & (set(ingest) | {admin}):
            raise GatewayConfigError(
                f"{SERVICE_TOKENS_ENV}: a service token must differ from every ingest token "
                "and from the admin token (each role has its own tokens)"
            )
        assertion_keys = _assertion_keys(env)
        loki_url = env.get(LOKI_URL_ENV, "").strip() or None
        if loki_url is not None:
            _check_url(loki_url, LOKI_URL_ENV)
        volatile = env.get(VOLATILE_CONSENT_ENV, "").strip()
        if volatile not in ("", "0", "1"):
            raise GatewayConfigError(f"{VOLATILE_CONSENT_ENV}: expected 1 or 0")
        country = env.get(COUNTRY_HEADER_ENV, DEFAULT_COUNTRY_HEADER).strip()
        return cls(
            ingest_tokens=ingest,
            admin_token=admin,
            otlp=otlp_target_from_env(env),
            database_url=env.get(DATABASE_URL_ENV) or None,
            country_header=country or None,
            limits=limits_from_env(env),
            metric_export_interval_s=_milliseconds(
                env, METRIC_EXPORT_INTERVAL_ENV, DEFAULT_METRIC_EXPORT_INTERVAL_S
            ),
            service_tokens=service,
            assertion_keys=assertion_keys,
            volatile_consent=volatile == "1",
            loki_url=loki_url,
            loki_tenant=env.get(LOKI_TENANT_ENV, "").strip() or None,
        )


def _assertion_keys(env: Mapping[str, str]) -> tuple[ConsentAssertionKey, ...]:
    """Consent assertion keys from ``ASSERTION_KEYS_ENV`` or the file it names."""
    if env.get(ASSERTION_KEYS_ENV):
        return parse_assertion_keys(env[ASSERTION_KEYS_ENV], source=ASSERTION_KEYS_ENV)
    if env.get(ASSERTION_KEY_FILE_ENV):
        path = Path(env[ASSERTION_KEY_FILE_ENV])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GatewayConfigError(
                f"{ASSERTION_KEY_FILE_ENV}={path}: cannot read ({exc.strerror})"
            ) from None
        return parse_assertion_keys(text, source=str(path))
    return ()


def _read_secret_list(env: Mapping[str, str], var: str, file_var: str) -> tuple[str, ...]:
    """Tokens from ``var`` (comma list) or ``file_var`` (one per line, ``#`` comments)."""
    if env.get(var):
        raw = [t.strip() for t in env[var].split(",")]
        source = var
    elif env.get(file_var):
        path = Path(env[file_var])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GatewayConfigError(f"{file_var}={path}: cannot read ({exc.strerror})") from None
        raw = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
        source = f"{file_var} ({path})"
    else:
        return ()
    tokens = tuple(t for t in raw if t)
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_CHARS:
            raise GatewayConfigError(
                f"{source}: token {number} has {len(token)} characters; "
                f"at least {MIN_TOKEN_CHARS} are needed"
            )
        if not token.isascii() or not token.isprintable() or " " in token:
            raise GatewayConfigError(
                f"{source}: token {number} must be printable ASCII without spaces"
            )
    return tokens


def limits_from_env(env: Mapping[str, str]) -> IngestLimits:
    values: dict[str, int | float] = {}
    for var, (name, convert, _) in _LIMIT_VARS.items():
        text = env.get(var)
        if text is None or not text.strip():
            continue
        try:
            value = convert(text.strip())
        except ValueError:
            raise GatewayConfigError(
                f"{var}={text!r}: expected {'an integer' if convert is int else 'a number'}"
            ) from None
        if value <= 0:
            raise GatewayConfigError(f"{var}={text!r}: must be greater than 0")
        values[name] = value
    return IngestLimits(**values)  # type: ignore[arg-type]


def _parse_headers(text: str, var: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` syntax: ``k1=v1,k2=v2``, values URL-encoded."""
    headers: dict[str, str] = {}
    for number, item in enumerate((i for i in text.split(",") if i.strip()), start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GatewayConfigError(f"{var}: entry {number} is not 'key=value'")
        headers[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return headers


def _check_url(url: str, var: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise GatewayConfigError(f"{var}={url!r}: expected an http:// or https:// URL")
    return url


def _milliseconds(env: Mapping[str, str], var: str, default_s: float) -> float:
    """A duration given in milliseconds (the OTel convention), as seconds."""
    text = env.get(var, "").strip()
    if not text:
        return default_s
    try:
        seconds = float(text) / 1000.0
    except ValueError:
        raise GatewayConfigError(f"{var}={text!r}: expected milliseconds") from None
    if seconds <= 0:
        raise GatewayConfigError(f"{var}={text!r}: must be greater than 0")
    return seconds


def otlp_target_from_env(env: Mapping[str, str]) -> OtlpTarget:
    """Endpoints, headers and timeout as the OTLP exporter specification defines them.

    ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` is used as is; otherwise
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/<signal>``. Timeouts are milliseconds.
    """
    base = _check_url(env.get(OTLP_ENDPOINT_ENV) or DEFAULT_OTLP_ENDPOINT, OTLP_ENDPOINT_ENV)
    endpoints: dict[str, str] = {}
    headers = _parse_headers(env.get(OTEL_EXPORTER_OTLP_HEADERS, ""), OTEL_EXPORTER_OTLP_HEADERS)
    for signal in SIGNALS:
        var = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        specific = env.get(var)
        endpoints[signal] = (
            _check_url(specific, var) if specific else f"{base.rstrip('/')}/v1/{signal}"
        )
    timeout_s = _milliseconds(env, OTEL_EXPORTER_OTLP_TIMEOUT, 10.0)
    compression_var = OTEL_EXPORTER_OTLP_COMPRESSION
    compression = env.get(compression_var, "").strip().lower() or "none"
    if compression not in ("gzip", "none"):
        raise GatewayConfigError(f"{compression_var}={compression!r}: expected gzip or none")
    return OtlpTarget(
        endpoints=endpoints,
        headers=headers,
        timeout_s=timeout_s,
        compression=None if compression == "none" else compression,
    )


ENV_HELP: tuple[tuple[str, str], ...] = (
    (
        INGEST_TOKENS_ENV,
        "client tokens (public: the extension ships them): client events, opt-outs (required)",
    ),
    (INGEST_TOKENS_FILE_ENV, "or: a file with one ingest token per line"),
    (
        ADMIN_TOKEN_ENV,
        "admin bearer token: POST /telemetry/deletions, consent lookups (unset: those answer 403)",
    ),
    (ADMIN_TOKEN_FILE_ENV, "or: a file holding the admin token"),
    (
        SERVICE_TOKENS_ENV,
        "comma-separated tokens of Caret's services: OTLP /v1/*, consent changes (>= 16 chars)",
    ),
    (SERVICE_TOKENS_FILE_ENV, "or: a file with one service token per line"),
    (
        ASSERTION_KEYS_ENV,
        "'id:base64key,...' keys of the account service's signed consent assertions",
    ),
    (ASSERTION_KEY_FILE_ENV, "or: a file with one 'id:base64key' per line"),
    (
        VOLATILE_CONSENT_ENV,
        "1: without DATABASE_URL keep consent in memory (development only; else consent 503)",
    ),
    (LOKI_URL_ENV, "Loki base URL: deletions also file /loki/api/v1/delete [default: none]"),
    (LOKI_TENANT_ENV, "X-Scope-OrgID sent with the Loki delete request [default: none]"),
    (KEYS_ENV, "pseudonym keys 'id:base64key,...' (required; make one: caret-otel privacy keygen)"),
    (KEY_FILE_ENV, "or: a file with one 'id:base64key' per line"),
    (OTLP_ENDPOINT_ENV, f"the Collector's OTLP/HTTP base URL [default {DEFAULT_OTLP_ENDPOINT}]"),
    (
        "OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT",
        "full URL per signal (TRACES, METRICS, LOGS), overrides the base",
    ),
    (OTEL_EXPORTER_OTLP_HEADERS, "headers for the Collector, 'k=v,k2=v2' (URL-encoded values)"),
    (OTEL_EXPORTER_OTLP_TIMEOUT, "export timeout in milliseconds [default 10000]"),
    (OTEL_EXPORTER_OTLP_COMPRESSION, "gzip or none [default none]"),
    (METRIC_EXPORT_INTERVAL_ENV, "client-derived metrics push interval, ms [default 15000]"),
    (
        DATABASE_URL_ENV,
        "PostgreSQL for the consent store and deletions (unset: consent writes and deletions 503)",
    ),
    (
        COUNTRY_HEADER_ENV,
        f"trusted edge header holding the ISO country [default {DEFAULT_COUNTRY_HEADER}; empty: none]",
    ),
    *(
        (var, f"{text} [default {getattr(IngestLimits(), name)}]")
        for var, (name, _, text) in _LIMIT_VARS.items()
    ),
)
"""Every variable the gateway reads, with a one-line description."""
