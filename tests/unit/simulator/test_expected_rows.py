"""The simulator's expectation of ``raw.events`` rows counts accepted business events
only: log-only client events (``caret.diagnostic.*``) are accepted but never stored."""

from __future__ import annotations

from caret_otel.semconv import events as specs
from caret_otel.simulator.replay import RawBatch
from caret_otel.simulator.sender import DeliveryStats
from caret_otel.simulator.traffic import stored_as_row

LOG_ONLY = next(
    spec.client_event
    for spec in specs.ALL
    if spec.client_event and not spec.business and "*" not in spec.client_event
)
BUSINESS = specs.CARET_TASK_CREATED.client_event


def test_log_only_and_unknown_types_are_not_rows() -> None:
    assert BUSINESS is not None
    assert stored_as_row(BUSINESS)
    assert not stored_as_row(LOG_ONLY)
    assert not stored_as_row("no.such_event")


def test_accepted_log_only_events_are_not_expected_in_raw_events() -> None:
    batch = RawBatch(
        0,
        None,
        ({"event_type": BUSINESS}, {"event_type": LOG_ONLY}, {"event_type": LOG_ONLY}),
    )
    stats = DeliveryStats()
    # the gateway took the business event and one log-only event, refused the third
    stats.add(batch, {"accepted": 2, "rejected": [{"index": 2, "field": "x"}]}, 0.01)
    assert stats.accepted_by_user[0] == 2
    assert stats.stored_by_user[0] == 1
