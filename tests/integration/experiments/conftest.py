"""Fixtures of the experiments' integration tests: a fresh, migrated database per use."""

from __future__ import annotations

import re
from itertools import count

import pytest
from fixtures.services import migrated_database

from caret_otel.stack import PostgresServer

_numbers = count(1)


@pytest.fixture
def database(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    return migrated_database(postgres, f"xp_{base}_{next(_numbers)}")
