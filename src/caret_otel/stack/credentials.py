"""The local stack's secrets: generated once into ``<data dir>/secrets/``, never printed.

Each secret is one file, readable by its owner only (0600, in a 0700 folder), and
reaches a service through a ``*_FILE`` variable (``CARET_OTEL_INGEST_TOKENS_FILE``,
``CARET_OTEL_ADMIN_TOKEN_FILE``, ``CARET_OTEL_PSEUDONYM_KEY_FILE``), as a role password
set by the migration, or (the Collector's HMAC key, which its config reads from the
environment only) in the Collector's environment - never on a command line. Re-running ``caret-otel up`` on the same data
directory reuses them, so tokens handed to clients and pseudonyms already stored stay
valid. Messages show at most :func:`masked` forms.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from caret_otel.core.errors import ServiceError
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, generate_key_entry, parse_keys

SECRETS_DIR: Final = "secrets"
INGEST_FILE: Final = "ingest-token"
ADMIN_FILE: Final = "admin-token"
KEYS_FILE: Final = "pseudonym-keys"
WRITER_FILE: Final = "writer-password"
ANALYST_FILE: Final = "analyst-password"
GATEWAY_FILE: Final = "gateway-password"
HMAC_FILE: Final = "collector-hmac-key"
_PRIVATE_FILE: Final = 0o600
_PRIVATE_DIR: Final = 0o700


class CredentialsError(ServiceError):
    """A secret file exists but cannot be used (unreadable, empty, too open)."""


def masked(secret: str) -> str:
    """``abcd…`` plus the length: enough to tell two tokens apart, useless to an attacker."""
    return f"{secret[:4]}… ({len(secret)} chars)"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (never briefly world-readable)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def _read_private(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Someone loosened it: tighten rather than keep serving a readable secret.
        path.chmod(_PRIVATE_FILE)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise CredentialsError(f"{path} is empty; delete it and run again to make a new one")
    return value


@dataclass(frozen=True)
class StackCredentials:
    """Paths of the secret files of one data directory (values read on demand)."""

    directory: Path

    @property
    def ingest_token_file(self) -> Path:
        return self.directory / INGEST_FILE

    @property
    def admin_token_file(self) -> Path:
        return self.directory / ADMIN_FILE

    @property
    def pseudonym_key_file(self) -> Path:
        return self.directory / KEYS_FILE

    @property
    def writer_password_file(self) -> Path:
        return self.directory / WRITER_FILE

    @property
    def analyst_password_file(self) -> Path:
        return self.directory / ANALYST_FILE

    @property
    def gateway_password_file(self) -> Path:
        """Password of ``caret_gateway``, the gateway's least-privilege login."""
        return self.directory / GATEWAY_FILE

    @property
    def collector_hmac_key_file(self) -> Path:
        return self.directory / HMAC_FILE

    @property
    def collector_hmac_key(self) -> str:
        """Key of the Collector's own privacy pass (its pseudonyms stay stable across runs)."""
        return _read_private(self.collector_hmac_key_file)

    @property
    def ingest_token(self) -> str:
        return _read_private(self.ingest_token_file)

    @property
    def admin_token(self) -> str:
        return _read_private(self.admin_token_file)

    @property
    def writer_password(self) -> str:
        return _read_private(self.writer_password_file)

    @property
    def analyst_password(self) -> str:
        return _read_private(self.analyst_password_file)

    @property
    def gateway_password(self) -> str:
        return _read_private(self.gateway_password_file)

    def pseudonymizer(self) -> Pseudonymizer:
        """The stack's pseudonym keys (what the gateway and forget use)."""
        text = _read_private(self.pseudonym_key_file)
        return Pseudonymizer(parse_keys(text, source=str(self.pseudonym_key_file)))

    @classmethod
    def ensure(cls, data_dir: Path) -> tuple[StackCredentials, list[str]]:
        """Load the secrets of ``data_dir``, creating missing ones.

        Returns the credentials and the names of the files created now.
        """
        directory = Path(data_dir) / SECRETS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(_PRIVATE_DIR)
        makers: dict[str, Callable[[], str]] = {
            INGEST_FILE: lambda: secrets.token_urlsafe(32),
            ADMIN_FILE: lambda: secrets.token_urlsafe(32),
            KEYS_FILE: lambda: generate_key_entry("1"),
            WRITER_FILE: lambda: secrets.token_urlsafe(24),
            ANALYST_FILE: lambda: secrets.token_urlsafe(24),
            GATEWAY_FILE: lambda: secrets.token_urlsafe(24),
            HMAC_FILE: lambda: secrets.token_urlsafe(48),
        }
        created: list[str] = []
        for name, make in makers.items():
            path = directory / name
            if not path.exists():
                _write_private(path, make())
                created.append(name)
        credentials = cls(directory)
        # Fail now, with the file's name, rather than in a service's log later.
        for name in makers:
            _read_private(directory / name)
        credentials.pseudonymizer()
        return credentials, created
