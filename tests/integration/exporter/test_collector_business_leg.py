"""Our Collector's business leg (otlp_http, protobuf + zstd, persistent queue) delivering
to the real exporter: business events land in raw.events once, other logs never do, and
an outage of PostgreSQL loses nothing (503 -> the Collector queues and retries)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fixtures.services import CollectorFactory, wait_until
from integration.exporter.exporter_helpers import event, pseudonym, query, running_exporter

from caret_otel.exporters.postgres.schema import migrate
from caret_otel.otlp.build import logs_request
from caret_otel.semconv import events as ev
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration


def send(collector_http_url: str, body: bytes) -> None:
    answer = httpx.post(
        collector_http_url + "/v1/logs",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def stored_users(url: str) -> list[str]:
    return [r[0] for r in query(url, "SELECT user_pseudonym FROM raw.events ORDER BY 1")]


def test_business_events_flow_through_the_collector_into_postgres(
    database: str, collector_factory: CollectorFactory
) -> None:
    now = datetime.now(UTC)
    business = event("via-collector", now - timedelta(seconds=5), ev.CARET_TASK_CREATED)
    not_business = event("via-collector", now, ev.CARET_TASK_CREATED)
    not_business.event_name = "http.server.request"
    with running_exporter(database) as exporter:
        collector = collector_factory(name="business-leg", business_exporter_endpoint=exporter.url)
        send(collector.http_url, logs_request([business, not_business]).SerializeToString())
        wait_until(
            lambda: stored_users(database) or None, timeout=30, what="the event in PostgreSQL"
        )
        time.sleep(1)  # anything else in flight would arrive by now
    assert stored_users(database) == [pseudonym("via-collector")]


def test_a_postgres_outage_loses_nothing_on_the_business_leg(
    own_postgres: PostgresServer, collector_factory: CollectorFactory
) -> None:
    url = own_postgres.create_database("exporter_collector_outage")
    migrate(url)
    now = datetime.now(UTC)
    with running_exporter(url, db_timeout=1.0) as exporter:
        collector = collector_factory(name="outage-leg", business_exporter_endpoint=exporter.url)
        send(
            collector.http_url,
            logs_request([event("before", now, ev.CARET_TASK_CREATED)]).SerializeToString(),
        )
        wait_until(lambda: len(stored_users(url)) == 1, timeout=30, what="the first event")

        own_postgres.stop()
        during = [
            event(f"during-{n}", now + timedelta(seconds=n), ev.CARET_TASK_CREATED)
            for n in range(5)
        ]
        send(collector.http_url, logs_request(during).SerializeToString())
        wait_until(
            lambda: 'outcome="unavailable"' in exporter.get("/metrics").text,
            timeout=30,
            what="the Collector trying while PostgreSQL is down",
        )
        own_postgres.start()
        wait_until(lambda: len(stored_users(url)) == 6, timeout=60, what="the queued events")
        time.sleep(2)  # a duplicate delivery would show now

    assert stored_users(url) == sorted(
        [pseudonym("before"), *(pseudonym(f"during-{n}") for n in range(5))]
    )
