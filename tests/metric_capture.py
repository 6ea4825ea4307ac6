"""An in-memory metric exporter for tests (the SDK ships an in-memory *reader* only, and
the gateway's client histograms reach the pipeline through its exporter)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData


class MetricCapture(MetricExporter):
    """Keeps every export; :meth:`collect` flushes a provider and returns its last one."""

    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None

    def collect(self, provider: MeterProvider) -> MetricsData:
        provider.force_flush()
        assert self.exports, "the provider exported nothing"
        return self.exports[-1]
