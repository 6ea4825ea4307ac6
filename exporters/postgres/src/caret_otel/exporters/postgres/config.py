"""Settings of the exporter process, from flags and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from caret_otel.core.environment_variables import (
    CARET_OTEL_DATABASE_URL,
    CARET_OTEL_EXPORTER_LISTEN,
    DATABASE_URL,
)
from caret_otel.core.errors import ConfigurationError

DATABASE_URL_ENVS: Final = (CARET_OTEL_DATABASE_URL, DATABASE_URL)
"""Where the database URL comes from when no flag gives it (first set wins)."""
LISTEN_ENV: Final = CARET_OTEL_EXPORTER_LISTEN
DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 4320


class SettingsError(ConfigurationError):
    """A setting is missing or malformed; the message names it."""


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    for name in DATABASE_URL_ENVS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def require_database_url(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    url = flag or database_url_from_env(environ)
    if not url:
        raise SettingsError(
            "no database URL: pass --database-url or set "
            + " or ".join(DATABASE_URL_ENVS)
            + " (e.g. postgresql://caret_writer:...@127.0.0.1:5432/caret)"
        )
    return url


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:4320`` for IPv6) -> (host, port)."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SettingsError(f"{LISTEN_ENV}: {text!r} is not host:port (e.g. 127.0.0.1:4320)")
    return host.strip("[]"), int(port_text)


def listen_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    env = os.environ if environ is None else environ
    value = env.get(LISTEN_ENV, "").strip()
    return parse_listen(value) if value else None


@dataclass(frozen=True)
class ExporterSettings:
    database_url: str
    pool_size: int = 4
    """PostgreSQL connections for request writes (the maintenance loop has its own)."""
    db_timeout: float = 5.0
    """Seconds a request waits for a connection before it is answered 503."""
    retry_after: int = 5
    """Seconds announced in ``Retry-After`` with a 503."""
    rollup_interval: float = 1.0
    """Seconds between rollup passes when nothing new arrives."""
    retention_interval: float = 3600.0
    """Seconds between runs of the retention job."""
    run_migrations: bool = True
