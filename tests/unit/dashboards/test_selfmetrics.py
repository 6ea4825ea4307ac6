"""The self-metric names the rules and dashboards use exist in their real sources."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from caret_otel.dashboards import selfmetrics as sm
from caret_otel.exporters.self_metrics import SelfMetrics
from caret_otel.gateway.self_metrics import GatewayMetrics


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
    """The latency KPI covers the client-event and OTLP routes, nothing else."""
    import re

    from caret_otel.gateway.app import CONSENT_PATH, EVENTS_PATH, SCHEMA_PATH, USERS_PATH
    from caret_otel.gateway.otlp_ingest import PATHS

    ingest = re.compile(f"^(?:{sm.GATEWAY_INGEST_ROUTES_REGEX})$")  # PromQL anchors regexes
    for route in (EVENTS_PATH, *PATHS.values()):
        assert ingest.match(route), route
    for route in (CONSENT_PATH, SCHEMA_PATH, USERS_PATH, "/metrics", "/healthz"):
        assert not ingest.match(route), route
    assert sm.SIGNAL_LOGS in PATHS
