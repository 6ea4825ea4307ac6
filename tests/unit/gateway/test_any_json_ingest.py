"""Any JSON a client can send, in any field of an event, ends as an accepted, rejected or
opted-out event, never as an exception: the ingestion path may be compiled (mypyc checks
declared types at run time), so a value of an unexpected type must be checked before it
meets a typed variable. Events of the real clients' shapes are the base; each field, each
property and ``client_info`` key are replaced by arbitrary JSON values."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.gateway.test_value_shapes_ingest import _ingestor, _no_consent

from caret_otel.receivers.gateway import client_batch
from caret_otel.receivers.gateway.errors import RequestError
from caret_otel.semconv import events

INGESTOR = _ingestor()
NOW = datetime.now(UTC).isoformat().replace("+00:00", "Z")
CLIENT_TYPES = sorted(events.CLIENT_EVENTS)
PROPERTY_KEYS = sorted({key for spec in events.ALL for key, _, _ in spec.properties})

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def client_event(draw: st.DrawFn) -> dict[str, Any]:
    properties: dict[str, Any] = {
        key: draw(json_values | st.text(max_size=12) | st.integers(0, 10**6))
        for key in draw(st.lists(st.sampled_from(PROPERTY_KEYS), max_size=8, unique=True))
    }
    event: dict[str, Any] = {
        "event_type": draw(st.sampled_from(CLIENT_TYPES)),
        "user_id_hash": "hashed_user_id",
        "session_id": "session_uuid",
        "timestamp": NOW,
        "properties": properties,
        "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
    }
    for field in draw(st.lists(st.sampled_from([*event, "client_info.version"]), max_size=2)):
        if field.startswith("client_info."):
            event["client_info"] = {"version": draw(json_values)}
        else:
            event[field] = draw(json_values)
    return event


@given(batch=st.lists(client_event(), min_size=1, max_size=5))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_in_any_field_is_answered_per_event(batch: list[dict[str, Any]]) -> None:
    body = json.dumps(batch).encode()
    try:
        raw_events, _ = client_batch.parse_envelope(body, 100)
    except RequestError:
        return  # the whole request answered (400: e.g. an integer beyond 64 bits)
    result = asyncio.run(
        INGESTOR.ingest(
            raw_events,
            None,
            _no_consent,
            scan_controls=client_batch.body_may_hold_control_characters(body),
        )
    )
    assert result.accepted + len(result.rejected) + result.opted_out == len(batch)
    INGESTOR.logs_request(result)
    INGESTOR.traces_request(result)


@given(anything=json_values)
@settings(max_examples=200, deadline=None)
def test_any_json_as_the_event_itself(anything: object) -> None:
    result = asyncio.run(INGESTOR.ingest([anything], None, _no_consent))
    assert result.accepted + len(result.rejected) + result.opted_out == 1
