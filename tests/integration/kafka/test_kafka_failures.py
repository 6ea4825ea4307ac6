"""The two-tier pipeline (edge Collectors -> Kafka -> processing Collectors -> business
exporter -> PostgreSQL) loses nothing and stores nothing twice when a part dies mid-stream.

Real processes throughout: a KRaft broker, our Collector on collector/edge-config.yaml and
collector/processing-config.yaml, ``caret-otel exporter`` and PostgreSQL. Events are sent
to the edge as a service or the gateway would (resent only when the edge did not accept
them); every event the edge acknowledged must end up in ``raw.events`` exactly once.

The broker outage lasts 60 s, the claim of docs/operations.md (the whole module takes
about 3 minutes on two quiet cores). ``CARET_OTEL_KAFKA_OUTAGE_SECONDS`` shortens it for a
quick local run. What bounds an outage is the edge's disk queue (1 M items), not time.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from fixtures.services import SinkCollector, wait_until
from integration.kafka.kafka_support import (
    MultiUserStream,
    kafka_tier,
    start_edge,
    start_processing,
)
from integration.pipeline.pipeline_support import exporter_url, start_exporter, stored_events

from caret_otel.core.environment_variables import CARET_OTEL_KAFKA_OUTAGE_SECONDS
from caret_otel.stack import PostgresServer, PrometheusServer
from caret_otel.stack.kafka import KafkaBroker

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = float(os.environ.get(CARET_OTEL_KAFKA_OUTAGE_SECONDS, "60"))


@pytest.fixture
def workdir(services_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="kafka-tiers-", dir=services_dir))


def _all_stored(database: str, stream: MultiUserStream, timeout: float) -> None:
    total = len(stream.event_ids)
    try:
        wait_until(
            lambda: stored_events(database, stream.event_ids) == (total, total),
            timeout=timeout,
            what=f"all {total} events stored once",
        )
    except TimeoutError as exc:
        rows, distinct = stored_events(database, stream.event_ids)
        raise AssertionError(
            f"{exc}: {rows} rows, {distinct} distinct of {total} sent, "
            f"{stream.acknowledged} acknowledged"
        ) from None


def test_killing_one_of_two_processing_collectors_loses_and_duplicates_nothing(
    workdir: Path,
    kafka_broker: KafkaBroker,
    postgres: PostgresServer,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
) -> None:
    database = postgres.create_database(f"kafka_kill_{uuid.uuid4().hex[:8]}")
    exporter = start_exporter(database, workdir)
    tier = kafka_tier(kafka_broker, "kill")
    group = tier.group("logs")
    edge = start_edge(collector_binary, workdir, "edge", tier)
    wiring = {"prometheus": prometheus, "sink": sink_collector,
              "business_endpoint": exporter_url(exporter)}  # fmt: skip
    doomed = start_processing(collector_binary, workdir, "processing-a", tier, **wiring)
    survivor = start_processing(collector_binary, workdir, "processing-b", tier, **wiring)
    stream = MultiUserStream(edge, users=8, batches=60, batch_size=24, interval=0.1)
    try:
        wait_until(lambda: kafka_broker.group_members(group) == [2, 2], timeout=60,
                   what="both processing Collectors holding two log partitions each")  # fmt: skip
        stream.start()
        stream.wait_acknowledged(len(stream.event_ids) // 4, timeout=60)
        # Hold the exporter's inserts so both processing Collectors are mid-export (their
        # offsets uncommitted) when one of them is killed.
        with psycopg.connect(database) as lock:
            lock.execute("LOCK TABLE raw.events IN SHARE MODE")
            stream.wait_acknowledged(stream.acknowledged + 200, timeout=60)
            doomed.process.kill()  # SIGKILL: no clean leave of the group
            assert not doomed.process.is_running
            lock.rollback()
        assert stored_events(database, stream.event_ids)[0] < len(stream.event_ids)
        # The group notices the dead member (session timeout) and hands over its partitions.
        wait_until(lambda: kafka_broker.group_members(group) == [4], timeout=60,
                   what="the surviving processing Collector holding all four partitions")  # fmt: skip
        stream.join(timeout=120)
        _all_stored(database, stream, timeout=90)
    finally:
        for part in (edge, doomed, survivor):
            part.process.stop()
        exporter.stop()


def test_restarting_the_business_exporter_under_load_loses_and_duplicates_nothing(
    workdir: Path,
    kafka_broker: KafkaBroker,
    postgres: PostgresServer,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
) -> None:
    database = postgres.create_database(f"kafka_exporter_{uuid.uuid4().hex[:8]}")
    exporter = start_exporter(database, workdir)
    tier = kafka_tier(kafka_broker, "exporter")
    edge = start_edge(collector_binary, workdir, "edge", tier)
    processing = start_processing(
        collector_binary, workdir, "processing", tier,
        prometheus=prometheus, sink=sink_collector, business_endpoint=exporter_url(exporter),
    )  # fmt: skip
    stream = MultiUserStream(edge, users=8, batches=80, batch_size=16, interval=0.1).start()
    try:
        stream.wait_acknowledged(len(stream.event_ids) // 4, timeout=60)
        exporter.kill()  # mid-request: what it had not committed is re-sent
        time.sleep(3.0)
        exporter.start()
        stream.join(timeout=120)
        _all_stored(database, stream, timeout=90)
    finally:
        edge.process.stop()
        processing.process.stop()
        exporter.stop()


def test_broker_outage_is_buffered_by_the_edge_and_loses_nothing(
    workdir: Path,
    kafka_broker: KafkaBroker,
    postgres: PostgresServer,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
) -> None:
    database = postgres.create_database(f"kafka_outage_{uuid.uuid4().hex[:8]}")
    exporter = start_exporter(database, workdir)
    tier = kafka_tier(kafka_broker, "outage")
    edge = start_edge(collector_binary, workdir, "edge", tier)
    processing = start_processing(
        collector_binary, workdir, "processing", tier,
        prometheus=prometheus, sink=sink_collector, business_endpoint=exporter_url(exporter),
    )  # fmt: skip
    # Two batches a second: before, during and after the outage.
    batches = int((OUTAGE_SECONDS + 10) * 2)
    stream = MultiUserStream(edge, users=8, batches=batches, batch_size=8, interval=0.5).start()
    try:
        stream.wait_acknowledged(4 * 8, timeout=30)
        kafka_broker.stop()
        stopped_at, acknowledged_at_stop = time.monotonic(), stream.acknowledged
        time.sleep(3.0)  # what the processing tier had already read is stored by now
        stored_early = stored_events(database, stream.event_ids)[0]
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        accepted_during_outage = stream.acknowledged - acknowledged_at_stop
        stored_late = stored_events(database, stream.event_ids)[0]
        kafka_broker.start()
        assert time.monotonic() - stopped_at >= OUTAGE_SECONDS
        # The edge kept accepting (into its disk queue) while nothing reached PostgreSQL.
        assert accepted_during_outage >= (OUTAGE_SECONDS - 2) * 2 * 8
        assert stored_late == stored_early, "nothing passes while the broker is down"
        stream.join(timeout=120)
        _all_stored(database, stream, timeout=120)
    finally:
        edge.process.stop()
        processing.process.stop()
        exporter.stop()
