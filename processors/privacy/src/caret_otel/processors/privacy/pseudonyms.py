"""Keyed pseudonyms: ``HMAC-SHA256(key_v, canonical(id))`` rendered ``v<key-id>:<hex>``.

The 64 hex digits are 24 bytes of that HMAC followed by an 8-byte *keyed tag*
(``HMAC-SHA256(key_v, "caret-otel pseudonym tag" || body)``), so whoever holds the key
can tell, from the pseudonym alone, that it was made under the key: an unkeyed hash of
the same shape (a SHA-256 of an e-mail) fails :meth:`Pseudonymizer.verify` except with
probability 2^-64. The gateway keeps a service's pseudonym only when it verifies.

Keys come from the environment (``CARET_OTEL_PSEUDONYM_KEYS``: comma-separated
``id:base64key`` entries) or from the file named by ``CARET_OTEL_PSEUDONYM_KEY_FILE``
(the same entries, one per line). The last entry signs new data; every entry stays
live so that deletion can find pseudonyms written under older keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from caret_otel.core.environment_variables import (
    CARET_OTEL_PSEUDONYM_KEY_FILE,
    CARET_OTEL_PSEUDONYM_KEYS,
)
from caret_otel.core.errors import ConfigurationError

KEYS_ENV = CARET_OTEL_PSEUDONYM_KEYS
KEY_FILE_ENV = CARET_OTEL_PSEUDONYM_KEY_FILE
MIN_KEY_BYTES = 32
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_PSEUDONYM_RE = re.compile(r"^v[A-Za-z0-9_-]{1,32}:[0-9a-f]{64}$")
# Ids repeat (one user sends many events); caching their pseudonyms takes the HMAC off
# the hot path. The cache lives in process memory only, like the key itself.
PSEUDONYM_CACHE_SIZE = 65536
HOW_TO_MAKE_A_KEY = (
    f"set {KEYS_ENV}='<id>:<base64 key>' or {KEY_FILE_ENV}=<file>; "
    "make a key with: caret-otel privacy keygen"
)


class PseudonymKeyError(ConfigurationError):
    """The pseudonym keys are missing or malformed; the message says how to fix it."""


@dataclass(frozen=True)
class PseudonymKey:
    id: str
    secret: bytes

    def __repr__(self) -> str:  # never print key material
        return f"PseudonymKey(id={self.id!r}, secret=<{len(self.secret)} bytes>)"


def parse_keys(text: str, *, source: str) -> tuple[PseudonymKey, ...]:
    """Parse ``id:base64key`` entries separated by commas or newlines."""
    keys: list[PseudonymKey] = []
    entries = [e.strip() for e in re.split(r"[,\n]", text) if e.strip() and not e.startswith("#")]
    for number, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not _KEY_ID_RE.match(key_id):
            raise PseudonymKeyError(
                f"{source}: entry {number} is not '<id>:<base64 key>' "
                "(id: 1-32 letters, digits, '-' or '_')"
            )
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PseudonymKeyError(
                f"{source}: key {key_id!r} is not valid base64 ({exc})"
            ) from None
        if len(secret) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"{source}: key {key_id!r} has {len(secret)} bytes; at least {MIN_KEY_BYTES} are needed"
            )
        if any(k.id == key_id for k in keys):
            raise PseudonymKeyError(f"{source}: key id {key_id!r} appears twice")
        keys.append(PseudonymKey(key_id, secret))
    if not keys:
        raise PseudonymKeyError(f"{source}: no key found; {HOW_TO_MAKE_A_KEY}")
    return tuple(keys)


def keys_from_env(environ: Mapping[str, str] | None = None) -> tuple[PseudonymKey, ...]:
    """Load the live keys from the environment, or fail with how to make one."""
    env = os.environ if environ is None else environ
    if env.get(KEYS_ENV):
        return parse_keys(env[KEYS_ENV], source=KEYS_ENV)
    if env.get(KEY_FILE_ENV):
        path = Path(env[KEY_FILE_ENV])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PseudonymKeyError(
                f"{KEY_FILE_ENV}={path}: cannot read ({exc.strerror})"
            ) from None
        return parse_keys(text, source=str(path))
    raise PseudonymKeyError(f"no pseudonym key configured: {HOW_TO_MAKE_A_KEY}")


def generate_key_entry(key_id: str = "1") -> str:
    """A new ``id:base64key`` entry with a random 32-byte key."""
    if not _KEY_ID_RE.match(key_id):
        raise PseudonymKeyError(f"key id {key_id!r}: use 1-32 letters, digits, '-' or '_'")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode()}"


_BODY_BYTES = 24
_TAG_BYTES = 8
_TAG_DOMAIN = b"caret-otel pseudonym tag\x00"


class _KeyMacs:
    """A key's HMAC-SHA256 states after the key schedule (the tag's with its domain
    prefix absorbed too): each pseudonym and event hash copies them instead of setting the
    key up again, about a third less time per pseudonym."""

    def __init__(self, key: PseudonymKey) -> None:
        self.body = hmac.new(key.secret, digestmod=hashlib.sha256)
        self.tag = hmac.new(key.secret, _TAG_DOMAIN, hashlib.sha256)

    def body_digest(self, data: bytes) -> bytes:
        mac = self.body.copy()
        mac.update(data)
        return mac.digest()

    def tag_of(self, body: bytes) -> bytes:
        """The keyed tag of a pseudonym's body (domain-separated from the body's own HMAC)."""
        mac = self.tag.copy()
        mac.update(body)
        return mac.digest()[:_TAG_BYTES]


def canonical(identifier: str) -> str:
    """Trim, Unicode NFC, and lower-case e-mail addresses (their case carries no identity)."""
    value = unicodedata.normalize("NFC", identifier.strip())
    if "@" in value:
        value = value.lower()
    return value


def is_pseudonym(value: str) -> bool:
    return bool(_PSEUDONYM_RE.match(value))


def _remember(cache: dict[str, Any], identifier: str, value: object) -> None:
    """Store in a cache of at most ``PSEUDONYM_CACHE_SIZE`` entries. When full, the
    older half goes (a dict keeps insertion order): emptying it all would make every id
    of a population near the size miss at once (task and session ids are many), and
    the ids that repeat now are mostly the newer ones. Safe under threads: each dict
    operation is atomic, and a lost entry is only computed again."""
    if len(cache) >= PSEUDONYM_CACHE_SIZE:
        try:
            older = list(islice(cache, PSEUDONYM_CACHE_SIZE // 2))
        except RuntimeError:  # another thread changed it meanwhile: start afresh
            cache.clear()
            older = []
        for key in older:
            cache.pop(key, None)
    cache[identifier] = value


class Pseudonymizer:
    """Turns identifiers into keyed pseudonyms under the signing key or every live key."""

    def __init__(self, keys: tuple[PseudonymKey, ...]) -> None:
        if not keys:
            raise PseudonymKeyError(f"no pseudonym key configured: {HOW_TO_MAKE_A_KEY}")
        self._keys = keys
        self._signing = keys[-1]
        self._macs = {k.id: _KeyMacs(k) for k in keys}
        self._signing_macs = self._macs[self._signing.id]
        self._known_prefixes = tuple(f"v{k.id}:" for k in keys)
        self._by_id = {k.id: k for k in keys}
        # Pseudonyms already computed (an HMAC each, and a user id repeats on every
        # record): plain dicts, bounded by _remember. A dict look-up costs a fraction of
        # functools.lru_cache's (no key tuple, no recency list), and the consent check
        # and the scrubbing ask for every record's user id.
        self._pseudonyms: dict[str, str] = {}
        self._all: dict[str, tuple[str, ...]] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Pseudonymizer:
        return cls(keys_from_env(environ))

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self._keys)

    def _digest(self, key: PseudonymKey, identifier: str) -> str:
        macs = self._macs[key.id]
        body = macs.body_digest(canonical(identifier).encode("utf-8"))[:_BODY_BYTES]
        return f"v{key.id}:{body.hex()}{macs.tag_of(body).hex()}"

    def pseudonymize(self, identifier: str) -> str:
        """The pseudonym of ``identifier`` under the signing (newest) key.

        A value that already is a pseudonym is hashed again like any identifier: a
        client cannot choose its stored pseudonym.
        """
        pseudonym = self._pseudonyms.get(identifier)
        if pseudonym is None:
            pseudonym = self._digest(self._signing, identifier)
            _remember(self._pseudonyms, identifier, pseudonym)
        return pseudonym

    def is_live_pseudonym(self, value: str) -> bool:
        """Whether ``value`` is a pseudonym made under one of the live keys: its prefix
        names a live key and its keyed tag verifies (see :meth:`verify`)."""
        return self.verify(value)

    def verify(self, value: str) -> bool:
        """Whether ``value`` carries a valid keyed tag of a live key (constant time).

        A value of the right shape whose tag does not verify (an unkeyed hash, a
        pseudonym of a key we do not hold) is refused."""
        if not value.startswith(self._known_prefixes) or not is_pseudonym(value):
            return False
        key_id, _, digest = value[1:].partition(":")
        key = self._by_id.get(key_id)
        if key is None:
            return False
        raw = bytes.fromhex(digest)
        tag = self._macs[key.id].tag_of(raw[:_BODY_BYTES])
        return hmac.compare_digest(raw[_BODY_BYTES:], tag)

    def keyed_digest(self, data: bytes) -> str:
        """Hex HMAC-SHA256 of ``data`` under the signing key (no canonicalisation).

        For ids derived from content that holds identifiers (an event's hash), so that
        nobody without the key can confirm a guess of that content.
        """
        return self._signing_macs.body_digest(data).hex()

    def _sign_all(self, identifier: str) -> tuple[str, ...]:
        # The signing key's pseudonym comes from the ``pseudonymize`` cache: the consent
        # check and the scrubbing that follows it ask for the same id, which then costs
        # one HMAC per key, not one more for the signing key.
        older = tuple(self._digest(key, identifier) for key in self._keys[:-1])
        return (*older, self.pseudonymize(identifier))

    def all_pseudonyms(self, identifier: str) -> list[str]:
        """The pseudonyms of ``identifier`` under every live key (for deletion and for
        consent checks, so an opt-out recorded before a key rotation still holds)."""
        return list(self.live_pseudonyms(identifier))

    def live_pseudonyms(self, identifier: str) -> tuple[str, ...]:
        """``all_pseudonyms`` as the cached tuple itself, without a copy: consent is
        checked on every record, and a tuple cannot be changed by the caller."""
        pseudonyms = self._all.get(identifier)
        if pseudonyms is None:
            pseudonyms = self._sign_all(identifier)
            _remember(self._all, identifier, pseudonyms)
        return pseudonyms
