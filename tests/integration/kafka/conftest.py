"""The Kafka tests' broker: one real KRaft broker+controller per test module (each test uses
its own topics and consumer groups; a test may stop and start it)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from caret_otel.stack.kafka import KafkaBroker


@pytest.fixture(scope="module")
def kafka_broker(services_dir: Path) -> Iterator[KafkaBroker]:
    directory = Path(tempfile.mkdtemp(prefix="kafka-", dir=services_dir))
    broker = KafkaBroker(directory / "data", log_path=directory / "kafka.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
