"""Fixtures of the privacy integration tests: the Collector's privacy pass on its own."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.privacy.collector_pass import PrivacyPassCollector, start_privacy_pass


@pytest.fixture(scope="module")
def privacy_pass(
    request: pytest.FixtureRequest, services_dir: Path, collector_binary: Path
) -> Iterator[PrivacyPassCollector]:
    """``build/otelcol-caret`` running only the generated privacy pass, into files."""
    name = f"privacy-{request.module.__name__.rsplit('.', 1)[-1]}"
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=services_dir))
    running = start_privacy_pass(collector_binary, directory, name)
    try:
        yield running
    finally:
        running.process.stop()
