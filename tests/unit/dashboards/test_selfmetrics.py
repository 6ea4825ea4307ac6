"""The self-metric names the rules and dashboards use exist in their real sources."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from caret_otel.dashboards import selfmetrics as sm
from caret_otel.exporters.postgres.self_metrics import SelfMetrics
from caret_otel.receivers.gateway.self_metrics import GatewayMetrics


def exposed_sample_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a prometheus-client registry can expose (counters with
    ``_total``, histograms with ``_bucket``...)."""
    names: set[str] = set()
    for family in registry.collect():
        kind = family.type
        if kind == "counter":
            names.add(family.name + "_total")
        elif kind == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def test_gateway_series_exist() -> None:
    exposed = exposed_sample_names(GatewayMetrics().registry)
    missing = [name for name in sm.GATEWAY_SERIES if name not in exposed]
    assert missing == []


def test_exporter_series_exist() -> None:
    exposed = exposed_sample_names(SelfMetrics().registry)
    assert [name for name in sm.EXPORTER_SERIES if name not in exposed] == []


def test_ingest_route_regex_matches_exactly_the_gateway_ingest_routes() -> None:
    """The latency KPI covers the client-event and OTLP routes of the HTTP contract
    (DESIGN.md section 6), nothing else. PromQL anchors regexes, so we do too."""
    import re

    ingest = re.compile(f"^(?:{sm.GATEWAY_INGEST_ROUTES_REGEX})$")
    for route in ("/telemetry/events", "/v1/traces", "/v1/metrics", "/v1/logs"):
        assert ingest.match(route), route
    for route in (
        "/telemetry/consent",
        "/telemetry/schema",
        "/telemetry/users/{user_id_hash}",
        "/metrics",
        "/healthz",
        "/readyz",
    ):
        assert not ingest.match(route), route
