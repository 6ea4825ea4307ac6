"""Fixtures of the exporter's integration tests: a fresh, migrated database per use."""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import count

import pytest
from fixtures.services import migrated_database

from caret_otel.stack import PostgresServer

_numbers = count(1)


@pytest.fixture
def new_database(postgres: PostgresServer, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Make a new migrated database (superuser URL) named after the test."""

    def make() -> str:
        base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
        return migrated_database(postgres, f"exp_{base}_{next(_numbers)}")

    return make


@pytest.fixture
def database(new_database: Callable[[], str]) -> str:
    """A new migrated database for this test."""
    return new_database()
