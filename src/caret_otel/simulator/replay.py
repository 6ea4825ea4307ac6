"""``caret-otel replay``: post a JSON-lines file of client events to a gateway.

Each line is one client event object (telemetry plan section 2.1), as the Caret
client sends it or as ``caret-otel simulate --dump-events`` writes it. Events are
grouped per user into requests of up to ``batch_size`` consecutive events, so every
user's events arrive in file order (opt-outs before what they suppress).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from caret_otel.core.errors import InputError
from caret_otel.processors.privacy.client_events import EVENT_TYPE, USER_ID_HASH
from caret_otel.simulator.scenario import ClientRequest
from caret_otel.simulator.sender import DeliveryStats, GatewayClient, Progress
from caret_otel.simulator.traffic import stored_as_row


class ReplayFileError(InputError):
    """A line of the file is not a JSON object; the message names the line."""


@dataclass(frozen=True)
class RawBatch:
    """Events of one user read from a file, posted as they are."""

    user_index: int
    country: str | None
    events: tuple[object, ...]

    @property
    def size(self) -> int:
        return len(self.events)

    def body(self) -> bytes:
        return orjson.dumps({"events": list(self.events)})

    def unstored_indices(self) -> frozenset[int]:
        return frozenset(
            i
            for i, event in enumerate(self.events)
            if isinstance(event, dict)
            and isinstance(event.get(EVENT_TYPE), str)
            and not stored_as_row(event[EVENT_TYPE])
        )


def read_events(path: Path) -> Iterator[object]:
    """The events of a JSON-lines file (blank lines skipped)."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ReplayFileError(f"{path}:{number}: not valid JSON ({exc})") from None
            if not isinstance(event, dict):
                raise ReplayFileError(f"{path}:{number}: expected a JSON object (one event)")
            yield event


def batches(events: Iterator[object], batch_size: int, country: str | None) -> list[RawBatch]:
    """Group consecutive events of the same user (by ``user_id_hash``) into batches."""
    users: dict[str, int] = {}
    open_batches: dict[int, list[object]] = {}
    done: list[RawBatch] = []
    for event in events:
        key = str(event.get(USER_ID_HASH, "")) if isinstance(event, dict) else ""
        index = users.setdefault(key, len(users))
        pending = open_batches.setdefault(index, [])
        pending.append(event)
        if len(pending) >= batch_size:
            done.append(RawBatch(index, country, tuple(pending)))
            open_batches[index] = []
    done.extend(RawBatch(i, country, tuple(p)) for i, p in open_batches.items() if p)
    return done


def write_events(path: Path, requests: list[ClientRequest]) -> int:
    """Write the requests' events as JSON lines (the replay format); returns the count."""
    count = 0
    with path.open("wb") as handle:
        for request in requests:
            for event in request.events:
                handle.write(orjson.dumps(event.to_json()) + b"\n")
                count += 1
    return count


def replay(
    client: GatewayClient, batches_to_send: list[RawBatch], progress: Progress | None = None
) -> DeliveryStats:
    """Post every batch; block until the gateway took them all."""

    async def run() -> DeliveryStats:
        try:
            return await client.send_all(batches_to_send, progress)
        finally:
            await client.aclose()

    return asyncio.run(run())
