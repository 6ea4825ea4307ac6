"""The client side of the simulator against a real HTTP server: retries on 429/503 with
Retry-After, stops with the gateway's message on a refusal, keeps each user's order;
and the replay file format."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caret_otel.simulator.replay import ReplayFileError, batches, read_events, write_events
from caret_otel.simulator.scenario import ScenarioSettings, build_scenario
from caret_otel.simulator.sender import DeliveryError, DeliveryStats, GatewayClient

TOKEN = "t" * 32


@dataclass
class FakeGatewayState:
    """What the test server saw; ``busy`` answers 503 to the first N requests."""

    busy: int = 0
    bodies: list[list[dict[str, object]]] = field(default_factory=list)
    countries: list[str | None] = field(default_factory=list)


def make_app(state: FakeGatewayState) -> Starlette:
    async def events(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse(
                {"error": "unauthorized", "message": "unknown bearer token"}, status_code=401
            )
        if state.busy > 0:
            state.busy -= 1
            return JSONResponse(
                {"error": "overloaded", "message": "busy"}, 503, {"Retry-After": "1"}
            )
        body = orjson.loads(await request.body())
        state.bodies.append(body["events"])
        state.countries.append(request.headers.get("cf-ipcountry"))
        return JSONResponse(
            {
                "accepted": len(body["events"]),
                "rejected": [],
                "opted_out": 0,
                "dropped_attributes": 0,
            },
            status_code=202,
        )

    return Starlette(routes=[Route("/telemetry/events", events, methods=["POST"])])


@pytest.fixture
def server() -> Iterator[tuple[str, FakeGatewayState]]:
    state = FakeGatewayState()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(make_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", state
    instance.should_exit = True
    thread.join(10)
    sock.close()


SCENARIO = build_scenario(ScenarioSettings(users=12, days=2, seed=4))


def send(url: str, token: str) -> tuple[DeliveryStats, list[int]]:
    requests = SCENARIO.requests()
    client = GatewayClient(url, token, concurrency=4)
    progress: list[int] = []

    async def run() -> DeliveryStats:
        try:
            return await client.send_all(requests, progress.append)
        finally:
            await client.aclose()

    return asyncio.run(run()), progress


def test_everything_arrives_once_in_each_users_order_with_the_country_header(
    server: tuple[str, FakeGatewayState],
) -> None:
    url, state = server
    state.busy = 2  # two 503s with Retry-After: 1 -> retried, nothing lost
    stats, progress = send(url, TOKEN)
    scenario = SCENARIO
    assert stats.accepted == scenario.event_count == sum(progress)
    assert stats.retries == 2
    received: dict[str, list[str]] = {}
    for body in state.bodies:
        for event in body:
            received.setdefault(str(event["user_id_hash"]), []).append(orjson.dumps(event).decode())
    for traffic in scenario.traffic:
        sent = [orjson.dumps(e.to_json()).decode() for e in traffic.events]
        assert received.get(traffic.user.user_id_hash, []) == sent
    assert set(state.countries) <= {u.user.country.code for u in scenario.traffic}


def test_a_refusal_stops_the_run_with_the_gateways_message(
    server: tuple[str, FakeGatewayState],
) -> None:
    url, _ = server
    with pytest.raises(DeliveryError, match="answered 401: unknown bearer token"):
        send(url, "wrong-token-" + "x" * 20)


def test_replay_file_round_trip_keeps_each_users_order(tmp_path: Path) -> None:
    scenario = build_scenario(ScenarioSettings(users=8, days=2, seed=6))
    path = tmp_path / "events.jsonl"
    assert write_events(path, scenario.requests()) == scenario.event_count
    grouped = batches(read_events(path), batch_size=7, country="KR")
    assert all(b.size <= 7 and b.country == "KR" for b in grouped)
    per_user: dict[int, list[object]] = {}
    for batch in grouped:
        per_user.setdefault(batch.user_index, []).extend(batch.events)
    by_hash = {str(events[0]["user_id_hash"]): events for events in per_user.values()}  # type: ignore[index]
    for traffic in scenario.traffic:
        if traffic.events:
            assert by_hash[traffic.user.user_id_hash] == [e.to_json() for e in traffic.events]


def test_a_bad_replay_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_type": "task.created"}\n\nnot json\n')
    with pytest.raises(ReplayFileError, match=r"events.jsonl:3: not valid JSON"):
        list(read_events(path))
    path.write_text("[1, 2]\n")
    with pytest.raises(ReplayFileError, match=r":1: expected a JSON object"):
        list(read_events(path))
