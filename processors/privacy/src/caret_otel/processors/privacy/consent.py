"""Consent: which user pseudonyms opted out, and the rule that their records never leave.

The hot path asks ``is_opted_out`` for every record, so every store answers from
memory. ``PostgresConsentStore`` keeps the opted-out set in memory, refreshes it from
``privacy.consent`` in the background (so several gateway processes converge within
a refresh interval) and writes through on ``set_consent`` (so the process that took
an opt-out honours it from the very next request).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from caret_otel.core.errors import ServiceError
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
    """A process-local consent store (tests, the CLI dry run, single-process demos)."""

    def __init__(self, opted_out: Iterable[str] = ()) -> None:
        self._opted_out: set[str] = set(opted_out)
        self._lock = threading.Lock()

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
    for attributes in attribute_sets:
        if not attributes:
            continue
        for key in USER_ATTRIBUTES:
            value = attributes.get(key)
            if value is None:
                continue
            for pseudonym in engine.pseudonyms_for_consent(value):
                if consent.is_opted_out(pseudonym):
                    return True
    return False


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

    # --- the hot path ---------------------------------------------------------------------

    def is_opted_out(self, user_pseudonym: str) -> bool:
        return user_pseudonym in self._opted_out

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
