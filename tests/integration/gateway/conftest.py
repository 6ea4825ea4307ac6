"""A real gateway (uvicorn on a loopback port) exporting to a real Collector.

``gateway_factory(env=..., consent=...)`` starts one with the test tokens and a fresh
pseudonym key; by default it exports to the sink Collector (OTLP in, files out), so
whatever it accepts is really delivered. Every gateway started is stopped after its
test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx
import pytest
from fixtures.services import SinkCollector
from integration.gateway.gateway_support import (
    ADMIN,
    INGEST,
    SERVICE,
    GatewayFactory,
    RunningGateway,
)

from caret_otel.processors.privacy.consent import ConsentStore
from caret_otel.processors.privacy.pseudonyms import generate_key_entry
from caret_otel.receivers.gateway.config import GatewayConfig
from caret_otel.receivers.gateway.runtime import build_gateway
from caret_otel.receivers.gateway.server import BackgroundServer
from caret_otel.stack.ports import free_port


@pytest.fixture(scope="session")
def pseudonym_env() -> dict[str, str]:
    return {"CARET_OTEL_PSEUDONYM_KEYS": generate_key_entry("t1")}


def gateway_env(
    otlp_endpoint: str, pseudonym_env: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    return {
        "CARET_OTEL_INGEST_TOKENS": INGEST,
        "CARET_OTEL_ADMIN_TOKEN": ADMIN,
        "CARET_OTEL_SERVICE_TOKENS": SERVICE,
        # In-memory consent by default (tests of the durable store pass DATABASE_URL).
        "CARET_OTEL_DEV_VOLATILE_CONSENT": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        **pseudonym_env,
        **extra,
    }


@pytest.fixture
def gateway_factory(
    sink_collector: SinkCollector, pseudonym_env: dict[str, str]
) -> Iterator[GatewayFactory]:
    started: list[RunningGateway] = []

    def make(
        *, env: Mapping[str, str] | None = None, consent: ConsentStore | None = None,
        otlp_endpoint: str | None = None,
    ) -> RunningGateway:  # fmt: skip
        extra = dict(env or {})
        if otlp_endpoint is None:
            # The sink takes logs where Loki would (/otlp/v1/logs).
            extra.setdefault(
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                sink_collector.http_url + sink_collector.config.logs_url_path,
            )
        full = gateway_env(otlp_endpoint or sink_collector.http_url, pseudonym_env, extra)
        gateway = build_gateway(GatewayConfig.from_env(full), environ=full, consent=consent)
        server = BackgroundServer(gateway, free_port())
        server.start()
        running = RunningGateway(server, gateway, httpx.Client(base_url=server.url, timeout=30))
        started.append(running)
        return running

    yield make
    for running in started:
        running.client.close()
        running.server.stop()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> RunningGateway:
    """A gateway with default limits and an in-memory consent store."""
    return gateway_factory()
