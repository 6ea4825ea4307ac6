"""Versioned schema migrations: ordered SQL files applied once, recorded in a table.

Files live in ``exporters/migrations/NNNN_name.sql`` (package data). ``migrate`` takes a
PostgreSQL advisory lock, so several processes (the exporter, the gateway, the CLI) can
call it at the same time: one applies, the others wait and then find nothing pending.
Each migration runs in its own transaction together with its bookkeeping row, so a
failure leaves the database at the previous version. An applied file whose content
changed afterwards is an error: migrations are append-only.

``grants.sql`` (no number) re-grants privileges on every table after any migration was
applied, so new tables never miss the writer's or the analyst's grants.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from caret_otel.core.errors import ServiceError

from .locks import MIGRATION_LOCK_KEY

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "meta.schema_migrations"
GRANTS_FILE = "grants.sql"
_FILE_RE = re.compile(r"^(?P<version>\d{4})_(?P<slug>[a-z0-9_]+)\.sql$")


class MigrationError(ServiceError):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    """The file name without ``.sql``, e.g. ``0001_schemas_roles_privacy``."""
    sql: str
    checksum: str
    """SHA-256 of the file, recorded so later edits of applied files are caught."""


def _read_package_sql(file_name: str) -> str:
    return (
        resources.files("caret_otel.exporters.postgres")
        .joinpath("migrations", file_name)
        .read_text(encoding="utf-8")
    )


def load_migrations() -> list[Migration]:
    """Every migration file of the package, in version order."""
    folder = resources.files("caret_otel.exporters.postgres").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(match["version"]),
                name=entry.name.removesuffix(".sql"),
                sql=text,
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


def _ensure_migrations_table(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    exists = conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()
    if exists is not None and exists[0] is not None:
        return
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS meta")
        conn.execute(
            """CREATE TABLE IF NOT EXISTS meta.schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    checksum   text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )"""
        )


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> dict[int, tuple[str, str]]:
    rows = conn.execute("SELECT version, name, checksum FROM meta.schema_migrations").fetchall()
    return {int(str(v)): (str(n), str(c)) for v, n, c in rows}


def pending_migrations(conninfo: str) -> list[str]:
    """Names of the migrations ``migrate`` would apply (read-only; no lock)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (MIGRATIONS_TABLE,)).fetchone()
        applied = _applied(conn) if exists is not None and exists[0] is not None else {}
    return [m.name for m in load_migrations() if m.version not in applied]


def migrate(conninfo: str) -> list[str]:
    """Apply the pending migrations in order; return the names applied (empty when current).

    Safe to call concurrently from several processes and idempotent. Raises
    :class:`MigrationError` when an applied migration's file was changed afterwards.
    """
    migrations = load_migrations()
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            _ensure_migrations_table(conn)
            applied = _applied(conn)
            for migration in migrations:
                recorded = applied.get(migration.version)
                if recorded is not None:
                    if recorded[1] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.name} was changed after it was applied "
                            f"(checksum {recorded[1][:12]} in the database, "
                            f"{migration.checksum[:12]} in the package); add a new migration "
                            "instead of editing an applied one"
                        )
                    continue
                log.info("applying migration %s", migration.name)
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO meta.schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
            unknown = sorted(set(applied) - {m.version for m in migrations})
            if unknown:
                log.warning(
                    "database has migrations this version does not know: %s "
                    "(a newer caret-otel migrated it)",
                    unknown,
                )
            if applied_now:
                with conn.transaction():
                    conn.execute(_read_package_sql(GRANTS_FILE).encode())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
