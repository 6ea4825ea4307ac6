"""Consent: which user pseudonyms opted out, and the rule that their records never leave.

The hot path asks ``is_opted_out`` for every record, so every store answers from
memory. ``PostgresConsentStore`` keeps the opted-out set in memory, refreshes it from
``privacy.consent`` in the background (so several gateway processes converge within
a refresh interval) and writes through on ``set_consent`` (so the process that took
an opt-out honours it from the very next request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from caret_otel.core.errors import ConfigurationError, InputError, ServiceError
from caret_otel.semconv import attributes as attrs

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from caret_otel.processors.privacy.engine import PrivacyEngine

log = logging.getLogger(__name__)

USER_ATTRIBUTES: Final[tuple[str, ...]] = (
    attrs.ENDUSER_PSEUDO_ID,
    attrs.ENDUSER_ID,
    attrs.USER_ID,
    attrs.USER_HASH,
)
"""Attributes that identify a user; their pseudonyms are checked against consent."""


@runtime_checkable
class ConsentStore(Protocol):
    """Where opt-outs live. Keys are user pseudonyms (``v<key-id>:<hex>``)."""

    def is_opted_out(self, user_pseudonym: str) -> bool: ...

    def set_consent(self, user_pseudonyms: Sequence[str], enabled: bool) -> None:
        """Record the user's choice under each pseudonym (pass every live key's
        pseudonym, ``Pseudonymizer.all_pseudonyms``, so a key rotation cannot undo it)."""
        ...

    def close(self) -> None: ...


class ConsentStoreError(ServiceError):
    """The consent store cannot answer or record consent (the database is down)."""


class InMemoryConsentStore:
    """A process-local consent store (tests, the CLI dry run, single-process demos).

    Not durable: what it holds is lost on restart, so the gateway takes consent writes
    into it only with the explicit development flag."""

    durable: Final = False

    def __init__(self, opted_out: Iterable[str] = ()) -> None:
        self._opted_out: set[str] = set(opted_out)
        self._lock = threading.Lock()
        self._nonces: dict[str, float] = {}

    def claim_nonce(self, nonce: str, expires_at: float) -> bool:
        """True the first time ``nonce`` is seen before it expires (replay guard)."""
        now = time.time()
        with self._lock:
            if len(self._nonces) > 10_000:
                self._nonces = {n: t for n, t in self._nonces.items() if t > now}
            if self._nonces.get(nonce, 0.0) > now:
                return False
            self._nonces[nonce] = expires_at
            return True

    def is_opted_out(self, user_pseudonym: str) -> bool:
        return user_pseudonym in self._opted_out

    def set_consent(self, user_pseudonyms: Sequence[str], enabled: bool) -> None:
        with self._lock:
            if enabled:
                self._opted_out.difference_update(user_pseudonyms)
            else:
                self._opted_out.update(user_pseudonyms)

    def close(self) -> None:
        return None


def opted_out_user(
    engine: PrivacyEngine, consent: ConsentStore, *attribute_sets: Mapping[str, object]
) -> bool:
    """Whether any user attribute in the given raw (not yet scrubbed) attribute sets
    belongs to a user who opted out. Raw ids are checked under every live key (see
    ``PrivacyEngine.pseudonyms_for_consent``), so a raw ``user.id`` meets its stored
    pseudonym even across a key rotation."""
    return any(engine.opted_out(consent, attributes) for attributes in attribute_sets)


_UPSERT: Final = """
INSERT INTO privacy.consent (user_pseudonym, telemetry_enabled, updated_at)
SELECT p, %(enabled)s, now() FROM unnest(%(pseudonyms)s::text[]) AS p
ON CONFLICT (user_pseudonym)
DO UPDATE SET telemetry_enabled = EXCLUDED.telemetry_enabled, updated_at = now()
"""
_ALL_OPTED_OUT: Final = "SELECT user_pseudonym FROM privacy.consent WHERE NOT telemetry_enabled"
_CHANGED_SINCE: Final = (
    "SELECT user_pseudonym, telemetry_enabled FROM privacy.consent WHERE updated_at >= %s"
)


_CLAIM_NONCE: Final = """
INSERT INTO privacy.consent_assertion_nonces (nonce, expires_at)
VALUES (%s, to_timestamp(%s))
ON CONFLICT (nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
WHERE privacy.consent_assertion_nonces.expires_at < now()
RETURNING 1
"""


class PostgresConsentStore:
    """Consent in ``privacy.consent``, answered from an in-memory opted-out set.

    The table is created by the business exporter's migrations
    (``caret_otel.exporters.postgres.schema.migrate``).

    Refresh: every ``refresh_interval`` seconds the rows changed since the last refresh
    (minus ``overlap`` seconds, so rows committed late by a long transaction are not
    missed) are applied; every ``full_reload_interval`` seconds the whole opted-out set
    is reloaded. A failed refresh keeps the last known set and is logged; ``healthy``
    turns false when the set is older than three refresh intervals.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        refresh_interval: float = 2.0,
        full_reload_interval: float = 600.0,
        overlap: float = 60.0,
        connect_timeout: float = 10.0,
        operation_timeout: float = 5.0,
    ) -> None:
        """``operation_timeout``: how long a write or refresh waits for a connection
        before failing (a request must not hang on a database outage)."""
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._operation_timeout = operation_timeout
        self._refresh_interval = refresh_interval
        self._full_reload_interval = full_reload_interval
        self._overlap = timedelta(seconds=overlap)
        self._lock = threading.Lock()
        self._opted_out: set[str] = set()
        self._watermark: datetime | None = None
        self._last_full_reload = 0.0
        self._last_refresh = 0.0
        # Choices made by this process, re-applied after a full reload that started
        # before they were written, so a reload can never resurrect an opt-out.
        self._local_changes: dict[str, tuple[bool, float]] = {}
        self._pool: ConnectionPool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=4,
            open=False,
            kwargs={"autocommit": True},
            name="consent",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise ConsentStoreError(
                f"consent store: cannot connect to PostgreSQL within {connect_timeout:g} s "
                "(check DATABASE_URL and that the server is up)"
            ) from None
        try:
            self.refresh(full=True)
        except ConsentStoreError:
            self._pool.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._refresh_loop, name="consent-refresh", daemon=True
        )
        self._thread.start()

    durable: Final = True

    # --- the hot path ---------------------------------------------------------------------

    def is_opted_out(self, user_pseudonym: str) -> bool:
        return user_pseudonym in self._opted_out

    def claim_nonce(self, nonce: str, expires_at: float) -> bool:
        """True the first time ``nonce`` is used (shared by every gateway process)."""
        import psycopg

        try:
            with self._pool.connection(timeout=self._operation_timeout) as conn:
                row = conn.execute(_CLAIM_NONCE, (nonce, expires_at)).fetchone()
        except psycopg.Error as exc:
            raise ConsentStoreError(
                f"consent store: could not record the assertion's nonce ({type(exc).__name__})"
            ) from None
        return row is not None

    # --- writes ---------------------------------------------------------------------------

    def set_consent(self, user_pseudonyms: Sequence[str], enabled: bool) -> None:
        import psycopg

        pseudonyms = list(dict.fromkeys(user_pseudonyms))
        if not pseudonyms:
            return
        try:
            with self._pool.connection(timeout=self._operation_timeout) as conn:
                conn.execute(_UPSERT, {"enabled": enabled, "pseudonyms": pseudonyms})
        except psycopg.Error as exc:
            raise ConsentStoreError(
                f"consent store: could not record consent ({type(exc).__name__}); "
                "nothing was changed"
            ) from None
        now = time.monotonic()
        with self._lock:
            for pseudonym in pseudonyms:
                self._local_changes[pseudonym] = (enabled, now)
                if enabled:
                    self._opted_out.discard(pseudonym)
                else:
                    self._opted_out.add(pseudonym)

    # --- refresh --------------------------------------------------------------------------

    def refresh(self, *, full: bool = False) -> None:
        """Bring the in-memory set up to date with the table (raises ConsentStoreError)."""
        import psycopg

        started = time.monotonic()
        try:
            with (
                self._pool.connection(timeout=self._operation_timeout) as conn,
                conn.transaction(),
            ):
                row = conn.execute("SELECT now()").fetchone()
                db_now: datetime = row[0] if row else datetime.now().astimezone()
                if full or self._watermark is None:
                    fresh = {r[0] for r in conn.execute(_ALL_OPTED_OUT)}
                    self._replace(fresh, started)
                    self._last_full_reload = started
                else:
                    changes = conn.execute(_CHANGED_SINCE, (self._watermark - self._overlap,))
                    self._apply(changes.fetchall(), started)
        except psycopg.errors.UndefinedTable:
            raise ConsentStoreError(
                "consent store: table privacy.consent does not exist; apply the database "
                "migrations first (caret_otel.exporters.postgres.schema.migrate)"
            ) from None
        except psycopg.Error as exc:
            raise ConsentStoreError(
                f"consent store: refresh from PostgreSQL failed ({type(exc).__name__})"
            ) from None
        self._watermark = db_now
        self._last_refresh = time.monotonic()

    def _replace(self, fresh: set[str], started: float) -> None:
        with self._lock:
            for pseudonym, (enabled, at) in list(self._local_changes.items()):
                if at >= started - self._overlap.total_seconds():
                    if enabled:
                        fresh.discard(pseudonym)
                    else:
                        fresh.add(pseudonym)
                else:
                    del self._local_changes[pseudonym]
            self._opted_out = fresh

    def _apply(self, rows: Iterable[tuple[str, bool]], started: float) -> None:
        with self._lock:
            for pseudonym, enabled in rows:
                local = self._local_changes.get(pseudonym)
                if local is not None and local[1] >= started:
                    continue  # this process wrote a newer choice after the read began
                if enabled:
                    self._opted_out.discard(pseudonym)
                else:
                    self._opted_out.add(pseudonym)

    def _refresh_loop(self) -> None:
        failing = False
        while not self._stop.wait(self._refresh_interval):
            full = time.monotonic() - self._last_full_reload >= self._full_reload_interval
            try:
                self.refresh(full=full)
            except ConsentStoreError as exc:
                if not failing:  # once per outage, not once per interval
                    log.warning("%s; keeping the last known opt-outs", exc)
                failing = True
                continue
            if failing:
                log.warning("consent store: refresh from PostgreSQL works again")
                failing = False

    @property
    def healthy(self) -> bool:
        """Whether the opted-out set was refreshed within three refresh intervals."""
        return time.monotonic() - self._last_refresh <= 3 * self._refresh_interval + 1

    @property
    def opted_out_count(self) -> int:
        return len(self._opted_out)

    def close(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
            self._thread.join(timeout=5)
        self._pool.close()


# --- consent assertions: proof, signed by Caret's account service, that the user asked ------

ASSERTION_VERSION: Final = "caret-consent-v1"
MIN_ASSERTION_KEY_BYTES: Final = 32
_ASSERTION_KEY_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_NONCE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SIGNATURE_RE: Final = re.compile(r"^[0-9a-f]{64}$")
ASSERTION_CLOCK_SKEW_S: Final = 30.0


class ConsentAssertionKeyError(ConfigurationError):
    """The consent assertion keys are malformed; the message names the entry."""


class ConsentAssertionError(InputError):
    """An assertion is malformed, expired, replayed or not signed by a known key.

    ``field`` names the assertion field; the message never quotes a value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ConsentAssertionKey:
    id: str
    secret: bytes

    def __repr__(self) -> str:  # never print key material
        return f"ConsentAssertionKey(id={self.id!r}, secret=<{len(self.secret)} bytes>)"


def parse_assertion_keys(text: str, *, source: str) -> tuple[ConsentAssertionKey, ...]:
    """``id:base64key`` entries separated by commas or newlines (``#`` comments)."""
    keys: list[ConsentAssertionKey] = []
    entries = [e.strip() for e in re.split(r"[,\n]", text) if e.strip()]
    for number, entry in enumerate((e for e in entries if not e.startswith("#")), start=1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not _ASSERTION_KEY_ID_RE.match(key_id):
            raise ConsentAssertionKeyError(
                f"{source}: entry {number} is not '<id>:<base64 key>' "
                "(id: 1-32 letters, digits, '-' or '_')"
            )
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConsentAssertionKeyError(
                f"{source}: entry {number} is not valid base64"
            ) from None
        if len(secret) < MIN_ASSERTION_KEY_BYTES:
            raise ConsentAssertionKeyError(
                f"{source}: entry {number} has {len(secret)} bytes; "
                f"at least {MIN_ASSERTION_KEY_BYTES} are needed"
            )
        if any(k.id == key_id for k in keys):
            raise ConsentAssertionKeyError(f"{source}: key id {key_id!r} appears twice")
        keys.append(ConsentAssertionKey(key_id, secret))
    return tuple(keys)


def assertion_message(user_id_hash: str, enabled: bool, issued_at: int, nonce: str) -> bytes:
    """The bytes the account service signs (HMAC-SHA256): version, user id hash, decision,
    issue time (Unix seconds) and nonce, one per line."""
    decision = "true" if enabled else "false"
    return f"{ASSERTION_VERSION}\n{user_id_hash}\n{decision}\n{issued_at}\n{nonce}".encode()


def sign_assertion(
    key: ConsentAssertionKey,
    user_id_hash: str,
    enabled: bool,
    *,
    issued_at: int | None = None,
    nonce: str | None = None,
) -> dict[str, object]:
    """A consent assertion as the account service makes one (what the gateway verifies)."""
    import secrets

    issued = int(time.time()) if issued_at is None else issued_at
    once = secrets.token_urlsafe(24) if nonce is None else nonce
    mac = hmac.digest(key.secret, assertion_message(user_id_hash, enabled, issued, once), "sha256")
    return {"key_id": key.id, "issued_at": issued, "nonce": once, "signature": mac.hex()}


@runtime_checkable
class NonceLedger(Protocol):
    """Remembers used assertion nonces (the consent stores are ledgers)."""

    def claim_nonce(self, nonce: str, expires_at: float) -> bool: ...


class ConsentAssertionVerifier:
    """Checks an assertion: known key, valid HMAC over (user, decision, time, nonce),
    issued within ``max_age_s`` (and not in the future beyond a small skew), and a
    nonce never used before (the ledger is the consent store: shared by every gateway
    process when it is PostgreSQL)."""

    def __init__(
        self, keys: Sequence[ConsentAssertionKey], ledger: NonceLedger, max_age_s: float
    ) -> None:
        self._keys = {k.id: k for k in keys}
        self._ledger = ledger
        self._max_age_s = max_age_s

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def verify(
        self, assertion: object, user_id_hash: str, enabled: bool, *, now: float | None = None
    ) -> None:
        """Return when ``assertion`` proves the user asked for ``enabled``; else raise
        :class:`ConsentAssertionError` (or ``ConsentStoreError`` from the ledger)."""
        if not isinstance(assertion, Mapping):
            raise ConsentAssertionError("assertion", "must be a JSON object")
        key_id = assertion.get("key_id")
        issued_at = assertion.get("issued_at")
        nonce = assertion.get("nonce")
        signature = assertion.get("signature")
        if not isinstance(key_id, str) or key_id not in self._keys:
            raise ConsentAssertionError("assertion.key_id", "must name a configured key")
        if type(issued_at) is not int:
            raise ConsentAssertionError("assertion.issued_at", "must be an integer (Unix s)")
        if not isinstance(nonce, str) or not _NONCE_RE.match(nonce):
            raise ConsentAssertionError(
                "assertion.nonce", "must be 16-128 letters, digits, '-' or '_'"
            )
        if not isinstance(signature, str) or not _SIGNATURE_RE.match(signature):
            raise ConsentAssertionError("assertion.signature", "must be 64 lower-case hex digits")
        expected = hmac.digest(
            self._keys[key_id].secret,
            assertion_message(user_id_hash, enabled, issued_at, nonce),
            hashlib.sha256,
        )
        if not hmac.compare_digest(expected, bytes.fromhex(signature)):
            raise ConsentAssertionError(
                "assertion.signature", "does not match this user and decision"
            )
        current = time.time() if now is None else now
        if issued_at > current + ASSERTION_CLOCK_SKEW_S:
            raise ConsentAssertionError("assertion.issued_at", "is in the future")
        if issued_at < current - self._max_age_s:
            raise ConsentAssertionError(
                "assertion.issued_at", f"is older than {self._max_age_s:g} s; get a new one"
            )
        expires_at = issued_at + self._max_age_s + ASSERTION_CLOCK_SKEW_S
        if not self._ledger.claim_nonce(f"{key_id}:{nonce}", expires_at):
            raise ConsentAssertionError("assertion.nonce", "was used before (replay)")
