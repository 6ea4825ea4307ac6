"""Which pseudonym keys wrote to this database, so ``forget`` can refuse the wrong ones.

A deletion looks users up by their keyed pseudonyms: with a key that never wrote here
(a freshly generated one, or another deployment's) it finds nothing, and without a
check it would report "0 rows removed" as a completed deletion. So:

- the gateway records, when it starts with a database, a *fingerprint* of each of its
  keys in ``privacy.pseudonym_key_fingerprints``: the SHA-256 of the key's pseudonym of a
  fixed string. It identifies the key without revealing it (HMAC output of a public
  input, hashed again) and tells two keys with the same id apart;
- :func:`check_keys` compares the keys ``forget`` was given with those fingerprints, and,
  where no fingerprint was ever recorded (data written by the SDK alone), with the key
  ids (``v<key-id>:``) of the pseudonyms stored in ``core.users``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from caret_otel.processors.privacy.pseudonyms import Pseudonymizer

log = logging.getLogger(__name__)

FINGERPRINT_SUBJECT: Final = "caret-otel pseudonym key fingerprint"
"""The fixed string whose pseudonym, hashed, is a key's fingerprint."""
TABLE: Final = "privacy.pseudonym_key_fingerprints"
_INSERT: Final = (
    "INSERT INTO privacy.pseudonym_key_fingerprints (key_id, fingerprint) VALUES (%s, %s)"
    " ON CONFLICT DO NOTHING"
)
_SELECT: Final = "SELECT key_id, fingerprint FROM privacy.pseudonym_key_fingerprints"


def fingerprints(pseudonymizer: Pseudonymizer) -> dict[str, str]:
    """Key id -> fingerprint of every live key."""
    pseudonyms = pseudonymizer.all_pseudonyms(FINGERPRINT_SUBJECT)
    return {
        key_id: hashlib.sha256(pseudonym.encode("utf-8")).hexdigest()
        for key_id, pseudonym in zip(pseudonymizer.key_ids, pseudonyms, strict=True)
    }


def register(conninfo: str, pseudonymizer: Pseudonymizer) -> None:
    """Record the fingerprints of ``pseudonymizer``'s keys (idempotent)."""
    rows = sorted(fingerprints(pseudonymizer).items())
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(_INSERT, rows)


@dataclass(frozen=True)
class KeyCheck:
    given: tuple[str, ...]
    """Ids of the keys given."""
    recorded: frozenset[str]
    """Ids with at least one recorded fingerprint (any secret)."""
    matching: frozenset[str]
    """Ids of the given keys whose fingerprint is recorded (same id and secret)."""
    stored: frozenset[str]
    """Key ids of the pseudonyms in ``core.users``."""

    @property
    def problem(self) -> str | None:
        """Why these keys cannot have written the stored pseudonyms (None: they can)."""
        given = ", ".join(self.given)
        if self.recorded:
            if self.matching:
                return None
            same_id = sorted(self.recorded & set(self.given))
            detail = (
                f"key id(s) {', '.join(same_id)} wrote here, but with a different secret"
                if same_id
                else f"the keys that wrote here have id(s) {', '.join(sorted(self.recorded))}"
            )
            return f"none of the pseudonym keys given (id {given}) ever wrote to this database: {detail}"
        if self.stored and not self.stored & set(self.given):
            return (
                f"no stored pseudonym was made with the pseudonym keys given (id {given}): "
                f"the stored ones carry key id(s) {', '.join(sorted(self.stored))}"
            )
        return None


def check_keys(conn: psycopg.Connection[Any], pseudonymizer: Pseudonymizer) -> KeyCheck:
    """Compare ``pseudonymizer``'s keys with what this database recorded and stores."""
    mine = fingerprints(pseudonymizer)
    recorded_rows = conn.execute(_SELECT).fetchall()
    recorded = frozenset(str(key_id) for key_id, _ in recorded_rows)
    matching = frozenset(
        str(key_id) for key_id, fingerprint in recorded_rows if mine.get(key_id) == fingerprint
    )
    stored_rows = conn.execute(
        "SELECT DISTINCT substr(split_part(user_pseudonym, ':', 1), 2) FROM core.users"
    ).fetchall()
    return KeyCheck(
        given=pseudonymizer.key_ids,
        recorded=recorded,
        matching=matching,
        stored=frozenset(str(row[0]) for row in stored_rows),
    )
