"""Fixtures of the exporter's integration tests: a fresh, migrated database per use."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest

from caret_otel.exporters.schema import migrate
from caret_otel.stack import PostgresServer

_numbers = count(1)


@pytest.fixture
def new_database(postgres: PostgresServer, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Make a new migrated database (superuser URL) named after the test."""

    def make() -> str:
        base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
        url = postgres.create_database(f"exp_{base}_{next(_numbers)}")
        migrate(url)
        return url

    return make


@pytest.fixture
def database(new_database: Callable[[], str]) -> str:
    """A new migrated database for this test."""
    return new_database()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test alone, which it may stop and start."""
    root = Path(tempfile.mkdtemp(prefix="caret-otel-exporter-pg-"))
    root.chmod(0o755)  # the server's own OS user must reach its data directory
    server = PostgresServer(root / "data", fsync=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
