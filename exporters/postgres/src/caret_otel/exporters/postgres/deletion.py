"""Deletion on request: remove a user from every table that holds per-user data, and
ask Loki to delete the user's log records.

The caller passes every pseudonym the user may have been stored under (one per live
pseudonym key: ``Pseudonymizer.all_pseudonyms``). ``forget`` runs the SQL function
``privacy.forget_user`` (migration 0010, ``SECURITY DEFINER``: the gateway's
``caret_gateway`` role may run it without any right on the tables), which in one
transaction:

- deletes the rows of every table with a ``user_pseudonym`` column in the exporter's
  schemas - found in the catalog, so a table added later is covered without a change
  here; :data:`PER_USER_TABLES` lists the tables that *must* be covered (the function
  refuses, deleting nothing, when one of them lacks the column) - and the raw events that
  carry a pseudonym in any other attribute; the one exception is an opt-out:
  ``privacy.consent`` rows with ``telemetry_enabled = false`` stay (opt-ins are
  deleted), because the opt-out is how the user's choice keeps being honoured and it
  holds nothing but the pseudonym;
- remembers a SHA-256 digest of each pseudonym with the deletion time, so events of
  the user that are still in flight (a Collector's persistent queue) are refused when
  they arrive;
- writes the audit row in ``privacy.deletion_requests``: request id, digests (never the
  pseudonyms: after a deletion no table but an opt-out holds them), requested/completed
  times and the rows removed per table.

It is idempotent per subject: a request id that completed before returns its recorded
result when it was for the same pseudonyms, and raises :class:`IdempotencyConflict` (the
gateway's 409) when it was for another user - a reused key can never make a deletion
silently not happen. The anonymised trends hold no user ids and are not touched.

Loki: every client event is also a Loki log record carrying the user's pseudonym (30
days). With a Loki URL (``CARET_OTEL_LOKI_URL``, or ``loki=`` explicitly), after the
PostgreSQL part ``forget`` files one ``POST /loki/api/v1/delete`` per pseudonym, selecting
the log records whose pseudonymous attributes (structured metadata) hold it, over the
raw-event retention window. Loki carries deletions out asynchronously (its compactor);
a failed request raises :class:`LokiDeletionFailed` carrying the PostgreSQL result, and
a retry with the same request id files it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

from caret_otel.core.environment_variables import CARET_OTEL_LOKI_TENANT, CARET_OTEL_LOKI_URL
from caret_otel.core.errors import InputError, ServiceError
from caret_otel.processors.privacy.consent import USER_ATTRIBUTES
from caret_otel.processors.privacy.pseudonyms import is_pseudonym

log = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

USER_COLUMN: Final = "user_pseudonym"
SCHEMAS: Final = ("raw", "core", "agg", "trends", "privacy")
CONSENT_TABLE: Final = "privacy.consent"
MAX_PSEUDONYMS: Final = 64
MAX_REQUEST_ID_LENGTH: Final = 200

PER_USER_TABLES: Final[tuple[str, ...]] = (
    "raw.events",
    "core.users",
    "core.identity_links",
    "privacy.consent",
    "agg.churn_scores",
    "agg.user_daily_tasks",
)
"""Tables that hold per-user rows and must be covered by every deletion (one name a
line: add yours). Each needs a ``user_pseudonym`` column; ``forget`` refuses, deleting
nothing, when one of them has none. Other tables with that column are covered too."""

CONFLICT_SQLSTATE: Final = "CO409"
"""Raised by ``privacy.forget_user`` for a request id used before for another subject."""

LOKI_DELETE_PATH: Final = "/loki/api/v1/delete"
LOKI_WINDOW_S: Final = 31 * 86_400
"""Loki keeps client events 30 days: the delete request covers a little more."""
LOKI_TIMEOUT_S: Final = 10.0


class InvalidDeletionRequest(InputError):
    """The request cannot be carried out as given; the message names the field."""


class IdempotencyConflict(InputError):
    """The request id completed before for another user (the gateway answers 409)."""


@dataclass(frozen=True)
class DeletionResult:
    request_id: str
    rows_removed: dict[str, int]
    """Table -> rows deleted (tables with nothing to delete are listed with 0)."""
    requested_at: datetime
    completed_at: datetime
    already_completed: bool
    """True when this request id had completed before: nothing was run again."""
    loki_delete_requests: int = 0
    """Loki delete requests filed (0 without a Loki URL)."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows_removed.values())


class LokiDeletionFailed(ServiceError):
    """PostgreSQL's part is done (``result``), Loki refused or did not answer the delete
    request; retrying with the same request id files it again."""

    def __init__(self, message: str, result: DeletionResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class LokiTarget:
    """Where to file Loki delete requests."""

    url: str
    tenant: str | None = None
    timeout_s: float = LOKI_TIMEOUT_S

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidDeletionRequest(
                f"{CARET_OTEL_LOKI_URL}: expected an http:// or https:// URL"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LokiTarget | None:
        env = os.environ if environ is None else environ
        url = env.get(CARET_OTEL_LOKI_URL, "").strip()
        if not url:
            return None
        return cls(url, env.get(CARET_OTEL_LOKI_TENANT, "").strip() or None)


def loki_selector(pseudonym: str) -> str:
    """The LogQL of a user's log records: any pseudonymous attribute (Loki's structured
    metadata, dots become underscores) equal to ``pseudonym``."""
    filters = " or ".join(f'{key.replace(".", "_")}="{pseudonym}"' for key in USER_ATTRIBUTES)
    return '{service_name=~".+"} | ' + filters


def file_loki_deletes(
    target: LokiTarget, pseudonyms: list[str], *, now: float | None = None
) -> int:
    """One ``POST /loki/api/v1/delete`` per pseudonym; the number filed. Raises
    ``ServiceError`` naming the status (never the query: it holds the pseudonym)."""
    end = int(time.time() if now is None else now)
    headers = {"X-Scope-OrgID": target.tenant} if target.tenant else {}
    filed = 0
    for pseudonym in pseudonyms:
        query = urllib.parse.urlencode(
            {"query": loki_selector(pseudonym), "start": end - LOKI_WINDOW_S, "end": end}
        )
        url = f"{target.url.rstrip('/')}{LOKI_DELETE_PATH}?{query}"
        # The scheme is http(s): LokiTarget checks it.
        request = urllib.request.Request(url, method="POST", headers=headers, data=b"")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=target.timeout_s) as answer:  # noqa: S310
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceError(f"Loki delete request failed: {type(exc).__name__}") from None
        if status not in (200, 204):
            raise ServiceError(f"Loki delete request failed: HTTP {status}")
        filed += 1
    return filed


def pseudonym_digest(pseudonym: str) -> str:
    """What the audit and the in-flight filter keep instead of the pseudonym."""
    return hashlib.sha256(pseudonym.encode("utf-8")).hexdigest()


def _validate(user_pseudonyms: list[str], request_id: str | None) -> list[str]:
    if not user_pseudonyms:
        raise InvalidDeletionRequest("user_pseudonyms: at least one pseudonym is needed")
    if len(user_pseudonyms) > MAX_PSEUDONYMS:
        raise InvalidDeletionRequest(
            f"user_pseudonyms: at most {MAX_PSEUDONYMS} per request, got {len(user_pseudonyms)}"
        )
    for index, value in enumerate(user_pseudonyms):
        if not isinstance(value, str) or not is_pseudonym(value):
            raise InvalidDeletionRequest(
                f"user_pseudonyms[{index}]: not a keyed pseudonym (expected v<key-id>:<64 hex>)"
            )
    if request_id is not None and not (0 < len(request_id) <= MAX_REQUEST_ID_LENGTH):
        raise InvalidDeletionRequest(f"request_id: must be 1 to {MAX_REQUEST_ID_LENGTH} characters")
    return sorted(set(user_pseudonyms))


_UNSET: Final = object()


def forget(
    conninfo: str,
    user_pseudonyms: list[str],
    *,
    request_id: str | None = None,
    loki: LokiTarget | object | None = _UNSET,
) -> DeletionResult:
    """Delete everything stored under ``user_pseudonyms``; see the module docstring.

    ``loki``: where to file the Loki delete requests (default: from
    ``CARET_OTEL_LOKI_URL``; None: not at all). Raises :class:`InvalidDeletionRequest`
    for a bad argument, :class:`IdempotencyConflict` for a request id used for another
    user, ``psycopg.Error`` when PostgreSQL fails (nothing is deleted then: one
    transaction) and :class:`LokiDeletionFailed` when only Loki failed.
    """
    pseudonyms = _validate(user_pseudonyms, request_id)
    request_id = request_id or str(uuid.uuid4())
    target = LokiTarget.from_env() if loki is _UNSET else loki
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            row = conn.execute(
                "SELECT privacy.forget_user(%s, %s, %s)",
                (request_id, pseudonyms, list(PER_USER_TABLES)),
            ).fetchone()
        except psycopg.Error as exc:
            if exc.sqlstate == CONFLICT_SQLSTATE:
                raise IdempotencyConflict(
                    "Idempotency-Key: this request id was used for another user; "
                    "use a new key for this deletion"
                ) from None
            if exc.sqlstate == "42P01" and "expected_tables" in str(exc):
                raise InvalidDeletionRequest(
                    "PER_USER_TABLES: a listed per-user table has no user_pseudonym column "
                    "(or does not exist): migrate the database"
                ) from None
            raise
    assert row is not None
    answer = row[0]
    result = DeletionResult(
        request_id=request_id,
        rows_removed={str(k): int(v) for k, v in answer["rows_removed"].items()},
        requested_at=datetime.fromisoformat(answer["requested_at"]),
        completed_at=datetime.fromisoformat(answer["completed_at"]),
        already_completed=bool(answer["already_completed"]),
    )
    if not result.already_completed:
        log.info(
            "deletion request %s: %d pseudonym(s), %d row(s) removed",
            request_id,
            len(pseudonyms),
            result.total_rows,
        )
    if isinstance(target, LokiTarget):
        try:
            filed = file_loki_deletes(target, pseudonyms)
        except ServiceError as exc:
            log.error("deletion request %s: %s", request_id, exc)
            raise LokiDeletionFailed(
                f"{exc}; PostgreSQL's rows are deleted, retry with the same request id",
                result,
            ) from None
        result = DeletionResult(
            request_id=result.request_id,
            rows_removed=result.rows_removed,
            requested_at=result.requested_at,
            completed_at=result.completed_at,
            already_completed=result.already_completed,
            loki_delete_requests=filed,
        )
    return result
