"""Fixtures of the pipeline tests: one Collector per test module on the production config,
wired to the session's Prometheus, Tempo/Loki sink and business sink."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.services import RunningCollector, SinkCollector
from integration.pipeline.pipeline_support import start_collector

from caret_otel.stack import PrometheusServer


@pytest.fixture(scope="module")
def pipeline_collector(
    request: pytest.FixtureRequest,
    services_dir: Path,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
    business_sink: SinkCollector,
) -> Iterator[RunningCollector]:
    """Our Collector with the test pseudonym key; the business leg goes to ``business_sink``."""
    name = f"pipeline-{request.module.__name__.rsplit('.', 1)[-1]}"
    directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=services_dir))
    running = start_collector(
        collector_binary,
        directory,
        name,
        prometheus=prometheus,
        sink=sink_collector,
        business_endpoint=business_sink.http_url,
    )
    try:
        yield running
    finally:
        running.process.stop()
