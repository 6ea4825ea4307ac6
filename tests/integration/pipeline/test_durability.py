"""The business leg loses nothing and stores nothing twice when the Collector is killed or
PostgreSQL goes away in the middle of a stream.

Real processes throughout: our Collector on the production config, ``caret-otel
exporter`` and PostgreSQL. Events are sent straight to the Collector, as a service (or
the gateway) would, and resent only when the Collector did not accept them - so every
event the Collector acknowledged must come out of its persistent queue.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from fixtures.services import SinkCollector, wait_until
from integration.pipeline.pipeline_support import (
    EventStream,
    exporter_url,
    start_collector,
    start_exporter,
    stored_events,
)

from caret_otel.stack import PostgresServer, PrometheusServer

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 60.0


@pytest.fixture
def workdir(services_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="durability-", dir=services_dir))


def test_collector_sigkill_mid_stream_loses_and_duplicates_nothing(
    workdir: Path,
    postgres: PostgresServer,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
) -> None:
    database = postgres.create_database(f"pipeline_kill_{uuid.uuid4().hex[:8]}")
    exporter = start_exporter(database, workdir)
    collector = start_collector(
        collector_binary, workdir, "killed-collector",
        prometheus=prometheus, sink=sink_collector, business_endpoint=exporter_url(exporter),
    )  # fmt: skip
    stream = EventStream(collector, batches=40, batch_size=25, interval=0.05).start()
    total = len(stream.event_ids)
    try:
        stream.wait_acknowledged(total // 4, timeout=60)
        # Hold the exporter's inserts (a lock on raw.events) so that what the Collector
        # accepts from now on can only be in its queue when it is killed.
        with psycopg.connect(database) as lock:
            lock.execute("LOCK TABLE raw.events IN SHARE MODE")
            stream.wait_acknowledged(stream.acknowledged + 150, timeout=60)
            in_queue = stream.acknowledged - stored_events(database, stream.event_ids)[0]
            collector.process.kill()  # SIGKILL to the whole process group
            assert not collector.process.is_running
            lock.rollback()
        assert in_queue >= 150, "the kill must hit acknowledged events not yet stored"
        collector.process.start()  # same storage directory: the queue is replayed
        stream.join(timeout=120)
        wait_until(
            lambda: stored_events(database, stream.event_ids) == (total, total),
            timeout=90,
            what=f"all {total} events stored once",
        )
        assert stream.resends > 0, "some requests met the killed Collector and were resent"
    finally:
        collector.process.stop()
        exporter.stop()


def _unavailable_answers(metrics_text: str) -> float:
    """How many log exports the exporter answered 503 (PostgreSQL unavailable)."""
    pattern = r'^caret_exporter_batches_total\{outcome="unavailable",signal="logs"\} (\S+)$'
    match = re.search(pattern, metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_postgres_down_for_a_minute_mid_stream_loses_and_duplicates_nothing(
    workdir: Path,
    own_postgres: PostgresServer,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
) -> None:
    database = own_postgres.create_database("pipeline_outage")
    exporter = start_exporter(database, workdir)
    collector = start_collector(
        collector_binary, workdir, "outage-collector",
        prometheus=prometheus, sink=sink_collector, business_endpoint=exporter_url(exporter),
    )  # fmt: skip
    # One batch a second for ~75 s: before, during and after the outage.
    stream = EventStream(collector, batches=75, batch_size=8, interval=1.0).start()
    total = len(stream.event_ids)
    try:
        stream.wait_acknowledged(5 * 8, timeout=30)
        own_postgres.stop()
        stopped_at, acknowledged_at_stop = time.monotonic(), stream.acknowledged
        time.sleep(OUTAGE_SECONDS)
        accepted_during_outage = stream.acknowledged - acknowledged_at_stop
        answered_503 = _unavailable_answers(httpx.get(f"{exporter_url(exporter)}/metrics").text)
        own_postgres.start()
        outage = time.monotonic() - stopped_at

        assert outage >= OUTAGE_SECONDS
        assert accepted_during_outage >= 50 * 8, "the Collector kept accepting meanwhile"
        assert answered_503 > 0, "the exporter answered 503 while PostgreSQL was down"
        stream.join(timeout=60)
        wait_until(
            lambda: stored_events(database, stream.event_ids) == (total, total),
            timeout=120,
            what=f"all {total} events stored once after PostgreSQL came back",
        )
    finally:
        collector.process.stop()
        exporter.stop()
