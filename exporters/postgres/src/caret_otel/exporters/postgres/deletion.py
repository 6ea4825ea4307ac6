"""Deletion on request: remove a user from every table that holds per-user data.

The caller passes every pseudonym the user may have been stored under (one per live
pseudonym key: ``Pseudonymizer.all_pseudonyms``). In one transaction, ``forget``:

- deletes the rows of every table with a ``user_pseudonym`` column in the exporter's
  schemas - found in the catalog, so a table added later is covered without a change
  here - and the raw events that carry a pseudonym in any other attribute; the one
  exception is an opt-out: ``privacy.consent`` rows with ``telemetry_enabled = false``
  stay (opt-ins are deleted), because the opt-out is how the user's choice keeps being
  honoured and it holds nothing but the pseudonym;
- remembers a SHA-256 digest of each pseudonym with the deletion time, so events of
  the user that are still in flight (a Collector's persistent queue) are refused when
  they arrive, up to that time;
- writes the audit row in ``privacy.deletion_requests``: request id, digests (never the
  pseudonyms: after a deletion no table but an opt-out holds them), requested/completed times and the
  rows removed per table.

It is idempotent: a request id that completed before returns its recorded result, and
deleting a user again removes nothing more. The anonymised trends hold no user ids and
are not touched.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql

from caret_otel.core.errors import InputError
from caret_otel.processors.privacy.pseudonyms import is_pseudonym

from .locks import FORGET_LOCK_KEY, ROLLUP_LOCK_KEY

log = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

USER_COLUMN: Final = "user_pseudonym"
SCHEMAS: Final = ("raw", "core", "agg", "trends", "privacy")
CONSENT_TABLE: Final = "privacy.consent"
MAX_PSEUDONYMS: Final = 64


class InvalidDeletionRequest(InputError):
    """The request cannot be carried out as given; the message names the field."""


@dataclass(frozen=True)
class DeletionResult:
    request_id: str
    rows_removed: dict[str, int]
    """Table -> rows deleted (tables with nothing to delete are listed with 0)."""
    requested_at: datetime
    completed_at: datetime
    already_completed: bool
    """True when this request id had completed before: nothing was run again."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows_removed.values())


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
    if request_id is not None and not (0 < len(request_id) <= 200):
        raise InvalidDeletionRequest("request_id: must be 1 to 200 characters")
    return sorted(set(user_pseudonyms))


def per_user_tables(conn: Connection) -> list[str]:
    """Every table (partitioned parents, not their partitions) with a user column."""
    rows = conn.execute(
        """SELECT format('%%I.%%I', n.nspname, c.relname)
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE a.attname = %s AND NOT a.attisdropped
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname = ANY (%s)
           ORDER BY 1""",
        (USER_COLUMN, list(SCHEMAS)),
    ).fetchall()
    return [str(row[0]) for row in rows]


# Their keys may still wait in raw.rollup_batches: the rollup then finds no event.
_RAW_EVENTS_ANYWHERE: Final = """
DELETE FROM raw.events e
WHERE e.user_pseudonym = ANY (%(pseudonyms)s)
   OR EXISTS (SELECT 1 FROM unnest(%(pseudonyms)s::text[]) AS p(value)
              WHERE jsonb_path_exists(e.attrs, '$.** ? (@ == $p)', jsonb_build_object('p', p.value)))
"""
# An opt-out outlives the deletion (see the module docstring); an opt-in does not.
_OPT_INS: Final = """
DELETE FROM privacy.consent WHERE user_pseudonym = ANY (%s) AND telemetry_enabled
"""


def _recorded(conn: Connection, request_id: str) -> DeletionResult | None:
    row = conn.execute(
        "SELECT requested_at, completed_at, rows_removed FROM privacy.deletion_requests"
        " WHERE request_id = %s AND completed_at IS NOT NULL",
        (request_id,),
    ).fetchone()
    if row is None:
        return None
    requested_at, completed_at, rows_removed = row
    return DeletionResult(
        request_id=request_id,
        rows_removed={str(k): int(v) for k, v in rows_removed.items()},
        requested_at=requested_at,
        completed_at=completed_at,
        already_completed=True,
    )


def forget(
    conninfo: str, user_pseudonyms: list[str], *, request_id: str | None = None
) -> DeletionResult:
    """Delete everything stored under ``user_pseudonyms``; see the module docstring.

    Raises :class:`InvalidDeletionRequest` for a bad argument and ``psycopg.Error`` when
    PostgreSQL fails (nothing is deleted then: one transaction).
    """
    pseudonyms = _validate(user_pseudonyms, request_id)
    request_id = request_id or str(uuid.uuid4())
    digests = sorted(pseudonym_digest(p) for p in pseudonyms)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        done = _recorded(conn, request_id)
        if done is not None:
            return done
        with conn.transaction():
            # Wait for loads in flight and for a running rollup; later ones see the result.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (FORGET_LOCK_KEY,))
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROLLUP_LOCK_KEY,))
            done = _recorded(conn, request_id)  # a concurrent call with the same id
            if done is not None:
                return done
            requested_at = conn.execute("SELECT now()").fetchone()
            assert requested_at is not None
            removed: dict[str, int] = {}
            for table in per_user_tables(conn):
                if table == "raw.events":
                    deleted = conn.execute(_RAW_EVENTS_ANYWHERE, {"pseudonyms": pseudonyms})
                    removed[table] = max(deleted.rowcount, 0)
                    continue
                if table == CONSENT_TABLE:
                    removed[table] = max(conn.execute(_OPT_INS, (pseudonyms,)).rowcount, 0)
                    continue
                statement = sql.SQL("DELETE FROM {} WHERE {} = ANY (%s)").format(
                    sql.SQL(table), sql.Identifier(USER_COLUMN)
                )
                removed[table] = max(conn.execute(statement, (pseudonyms,)).rowcount, 0)
            conn.execute(
                "INSERT INTO privacy.forgotten_pseudonyms (digest, forgotten_at)"
                " SELECT d, now() FROM unnest(%s::text[]) AS d"
                " ON CONFLICT (digest) DO UPDATE SET forgotten_at = excluded.forgotten_at",
                (digests,),
            )
            completed = conn.execute(
                "INSERT INTO privacy.deletion_requests"
                " (request_id, pseudonym_digests, requested_at, completed_at, rows_removed)"
                " VALUES (%s, %s, %s, clock_timestamp(), %s::jsonb)"
                " RETURNING completed_at",
                (request_id, digests, requested_at[0], orjson.dumps(removed).decode()),
            ).fetchone()
            assert completed is not None
    log.info(
        "deletion request %s: %d pseudonym(s), %d row(s) removed",
        request_id,
        len(pseudonyms),
        sum(removed.values()),
    )
    return DeletionResult(
        request_id=request_id,
        rows_removed=removed,
        requested_at=requested_at[0],
        completed_at=completed[0],
        already_completed=False,
    )
