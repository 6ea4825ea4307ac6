"""End to end: the gateway starts rejecting client events, the SLO burn-rate alert fires
in a real Prometheus, a real Alertmanager routes it to the page receiver - a webhook
served by this test - with the runbook link, and sends the resolved notification once
the gateway collects events again.

The rules are the generated SLO rules rendered with ``RuleTiming(speedup=60)``: every
window and pending duration is 60x shorter (the 1 h window is 60 s, the 5 m window 5 s,
"for 2m" 2 s), evaluated every second; Alertmanager batches for a second instead of 30.
Nothing else differs from production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from fixtures.services import SinkCollector, running_alertmanager
from integration.alerting.alerting_support import Notification, WebhookReceiver
from integration.gateway.gateway_support import ADMIN, AUTH, INGEST, client_event

from caret_otel.dashboards import panel_queries as pq
from caret_otel.dashboards import rules
from caret_otel.dashboards import selfmetrics as sm
from caret_otel.dashboards import slo as slo_board
from caret_otel.dashboards.paths import repo_root
from caret_otel.processors.privacy.pseudonyms import generate_key_entry
from caret_otel.receivers.gateway.config import GatewayConfig
from caret_otel.receivers.gateway.runtime import build_gateway
from caret_otel.receivers.gateway.server import BackgroundServer
from caret_otel.stack import PrometheusServer
from caret_otel.stack import alertmanager as am
from caret_otel.stack.ports import free_port

TIMING = rules.RuleTiming(speedup=60, evaluation_interval="1s")
NOTIFY = am.NotificationTiming(group_wait="1s", group_interval="1s", repeat_interval="1h")
FAST_BURN = rules.slos()[0].alert_name(rules.BURN_ALERTS[0])  # collection success, fast


@contextmanager
def running_gateway(sink: SinkCollector) -> Iterator[BackgroundServer]:
    env = {
        "CARET_OTEL_INGEST_TOKENS": INGEST,
        "CARET_OTEL_ADMIN_TOKEN": ADMIN,
        "CARET_OTEL_PSEUDONYM_KEYS": generate_key_entry("t1"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.http_url,
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": sink.http_url + sink.config.logs_url_path,
    }
    gateway = build_gateway(GatewayConfig.from_env(env), environ=env)
    server = BackgroundServer(gateway, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Traffic:
    """Client events into the gateway every 100 ms: valid ones, or (``failing``) events of
    an unknown type, which the gateway rejects (reason ``invalid_event_type``)."""

    def __init__(self, gateway_url: str) -> None:
        self.failing = False
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=gateway_url, timeout=10, trust_env=False)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            kind = "task.unheard_of" if self.failing else "task.created"
            events = [client_event(kind, user=f"user-{i}") for i in range(5)]
            response = self._client.post(
                "/telemetry/events",
                content=orjson.dumps({"events": events}),
                headers={"Content-Type": "application/json", **AUTH},
            )
            self.statuses.append(response.status_code)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()


def prometheus_config(directory: Path, gateway: str, alertmanager: str) -> Path:
    rules_dir = directory / "rules"
    rules_dir.mkdir(parents=True)
    (rules_dir / "caret-slo.yml").write_text(rules.slo_file(TIMING))
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {rules_dir}/*.yml\n"
        f"scrape_configs:\n  - job_name: {sm.JOB_GATEWAY}\n"
        f"    static_configs:\n      - targets: ['{gateway}']\n"
        + am.prometheus_alerting(alertmanager)
    )
    return config


def _is(status: str, path: str) -> Any:
    def match(n: Notification) -> bool:
        return n.path == path and n.status == status and FAST_BURN in n.alertnames()

    return match


def test_rejected_events_page_with_the_runbook_and_resolve(
    tmp_path: Path, sink_collector: SinkCollector, webhook: WebhookReceiver
) -> None:
    receivers = am.Receivers(page_webhook=webhook.url("/page"), chat_webhook=webhook.url("/chat"))
    with (
        running_alertmanager(tmp_path / "am", receivers, timing=NOTIFY, name="e2e-am") as alerts,
        running_gateway(sink_collector) as gateway,
    ):
        config = prometheus_config(tmp_path / "prom", gateway.url.split("//")[1], alerts.target)
        prometheus = PrometheusServer(tmp_path / "prom" / "data", config_path=config)
        prometheus.start()
        try:
            with Traffic(gateway.url) as traffic:
                # Healthy first: the SLI is measured and the alert is quiet.
                prometheus.wait_for(
                    "caret:slo_collection_success:error_ratio_rate5m == 0", timeout=30
                )
                traffic.failing = True
                started = time.monotonic()
                firing = webhook.wait_for(
                    _is("firing", "/page"), timeout=60, what="page for the fast burn"
                )
                fired_after = time.monotonic() - started
                traffic.failing = False
                resolved = webhook.wait_for(
                    _is("resolved", "/page"), timeout=60, what="resolved notification"
                )
            assert {202, 422} <= set(traffic.statuses)  # accepted, then all rejected
            # The SLO dashboard's collection-success panels show the spent budget.
            panels = [
                query
                for query in pq.panel_queries(slo_board.build())
                if "slo_collection_success" in query.text
            ]
            assert len(panels) >= 7
            for query in panels:
                assert prometheus.query(query.text), query
            left = prometheus.query(slo_board.budget_left(rules.slos()[0]))
            assert float(left[0]["value"][1]) < 1.0  # some of the budget is gone
        finally:
            prometheus.stop()

    alert = next(a for a in firing.alerts if a["labels"]["alertname"] == FAST_BURN)
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"][rules.SLO_LABEL] == "collection_success"
    runbook = alert["annotations"]["runbook_url"]
    assert runbook == f"docs/alerts.md#{FAST_BURN.lower()}"
    assert f"\n## {FAST_BURN}\n" in (repo_root() / "docs" / "alerts.md").read_text()
    assert "fast burn" in alert["annotations"]["summary"]
    assert firing.body["receiver"] == "page"
    assert fired_after < 45, fired_after
    done = next(a for a in resolved.alerts if a["labels"]["alertname"] == FAST_BURN)
    assert done["status"] == "resolved"
    assert done["endsAt"] >= alert["startsAt"]
    # Critical pages only: nothing about the fast burn reached the chat receiver.
    assert not [n for n in webhook.received() if n.path == "/chat" and FAST_BURN in n.alertnames()]
