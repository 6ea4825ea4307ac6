"""Root conftest: registers the shared fixtures of ``tests/fixtures`` (importable because
``pythonpath = ["tests"]`` in pyproject.toml) and refuses to test a stale compiled hot path."""

import pytest

from caret_otel.receivers.gateway import hot_path

pytest_plugins = ["fixtures.services"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """A compiled module older than a source it was built from would test old code."""
    outdated = hot_path.stale()
    if outdated:
        pytest.exit(
            "the compiled hot path is older than its sources (" + ", ".join(outdated) + "): "
            "rebuild it with `make install` (~30 s), or remove it with `make pure-python`",
            returncode=4,
        )
