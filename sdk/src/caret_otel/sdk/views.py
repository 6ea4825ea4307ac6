"""Bucket boundaries from the registry for every histogram it defines.

The privacy views (``caret_otel.processors.privacy.sdk.privacy_views``) already match every
instrument, and a second matching view would make a second stream, so the registry's
buckets come as the aggregation *under* the privacy view rather than as views of their
own: an instrument named like a registry histogram is aggregated with the registry's
boundaries whatever advice its creator gave; everything else keeps the SDK default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics._internal.aggregation import _Aggregation
from opentelemetry.sdk.metrics._internal.exemplar import ExemplarReservoirBuilder
from opentelemetry.sdk.metrics._internal.instrument import _Instrument
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    DefaultAggregation,
    ExplicitBucketHistogramAggregation,
)
from opentelemetry.util.types import Attributes

from caret_otel.semconv import metrics as metric_specs
from caret_otel.semconv.metrics import MetricSpec


def registry_buckets(
    specs: Iterable[MetricSpec] = metric_specs.ALL,
) -> dict[str, tuple[float, ...]]:
    """Histogram name -> bucket boundaries, for every histogram with bucket advice."""
    return {
        spec.name: spec.buckets for spec in specs if spec.instrument == "histogram" and spec.buckets
    }


class RegistryBucketAggregation(Aggregation):
    """The SDK default aggregation, with the registry's boundaries for its histograms."""

    def __init__(self, buckets: dict[str, tuple[float, ...]] | None = None) -> None:
        chosen = registry_buckets() if buckets is None else buckets
        self._histograms: dict[str, Aggregation] = {
            name.lower(): ExplicitBucketHistogramAggregation(list(bounds))
            for name, bounds in chosen.items()
        }
        self._default: Aggregation = DefaultAggregation()

    def _create_aggregation(
        self,
        instrument: _Instrument,
        attributes: Attributes,
        reservoir_factory: Callable[[type[_Aggregation[Any]]], ExemplarReservoirBuilder],
        start_time_unix_nano: int,
    ) -> _Aggregation[Any]:
        aggregation = self._default
        if isinstance(instrument, Histogram):
            aggregation = self._histograms.get(instrument.name.lower(), self._default)
        return aggregation._create_aggregation(
            instrument, attributes, reservoir_factory, start_time_unix_nano
        )
