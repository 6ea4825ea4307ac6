"""While PostgreSQL is stopped the exporter answers 503 with Retry-After (the Collector
keeps the data and retries) and never 2xx for data it did not store; once PostgreSQL is
back, the same requests are stored. Uses its own PostgreSQL so stopping it disturbs no
other test."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from integration.exporter.exporter_helpers import event, query, running_exporter

from caret_otel.exporters.postgres.schema import migrate
from caret_otel.otlp.build import logs_request
from caret_otel.semconv import events as ev
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration


def test_503_while_postgres_is_stopped_and_nothing_acknowledged_is_lost(
    own_postgres: PostgresServer,
) -> None:
    url = own_postgres.create_database("exporter_outage")
    migrate(url)
    now = datetime.now(UTC)
    batches = [
        logs_request(
            [event(f"user-{n}", now - timedelta(minutes=n), ev.CARET_TASK_CREATED)]
        ).SerializeToString()
        for n in range(4)
    ]
    acknowledged: list[int] = []
    with running_exporter(url, db_timeout=1.0) as exporter:
        assert exporter.post("/v1/logs", batches[0]).status_code == 200
        acknowledged.append(0)

        own_postgres.stop()
        refused = exporter.post("/v1/logs", batches[1])
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        ready = exporter.get("/readyz")
        assert ready.status_code == 503
        assert "unreachable" in ready.json()["reason"]
        assert exporter.post("/v1/logs", batches[2]).status_code == 503

        own_postgres.start()
        # The Collector would resend batches 1 and 2; a new batch 3 arrives too.
        deadline = time.monotonic() + 30
        for n in (1, 2, 3):
            while (status := exporter.post("/v1/logs", batches[n]).status_code) != 200:
                assert status == 503, status
                assert time.monotonic() < deadline, "PostgreSQL did not come back"
                time.sleep(0.2)
            acknowledged.append(n)
        assert exporter.get("/readyz").status_code == 200
        failures = exporter.get("/metrics").text

    stored = {row[0] for row in query(url, "SELECT user_pseudonym FROM raw.events")}
    assert len(stored) == len(acknowledged) == 4
    assert 'caret_exporter_failures_total{kind="unavailable",stage="write"}' in failures
    assert 'caret_exporter_batches_total{outcome="unavailable",signal="logs"}' in failures
