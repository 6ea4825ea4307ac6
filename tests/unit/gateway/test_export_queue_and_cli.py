"""The export queue's accounting and batching, and `caret-otel gateway` start-up checks."""

from __future__ import annotations

import asyncio

from click.testing import CliRunner

from caret_otel.cli.gateway import gateway
from caret_otel.processors.privacy.pseudonyms import generate_key_entry
from caret_otel.receivers.gateway.export import SignalQueue
from caret_otel.receivers.gateway.self_metrics import GatewayMetrics


def test_queue_batches_within_the_byte_limit_and_counts_until_delivered() -> None:
    metrics = GatewayMetrics()
    queue = SignalQueue("logs", max_bytes=25, metrics=metrics)
    assert queue.has_room()
    for payload in (b"a" * 10, b"b" * 10, b"c" * 10):
        queue.put(payload, items=2)
    # Over the bound only by the last request: the next admission is refused.
    assert (queue.size_bytes, queue.items) == (30, 6)
    assert not queue.has_room()

    async def take() -> list[bytes]:
        before = queue.size_bytes
        batch = await queue.take(max_batch_bytes=20)
        assert queue.size_bytes == before  # in flight still counts against the bound
        queue.done(batch)
        return [entry.payload for entry in batch]

    assert asyncio.run(take()) == [b"a" * 10, b"b" * 10]
    assert (queue.size_bytes, queue.items) == (10, 2)
    assert asyncio.run(take()) == [b"c" * 10]
    assert (queue.size_bytes, queue.items) == (0, 0)
    exposition = metrics.exposition().decode()
    assert 'caret_gateway_export_queue_bytes{signal="logs"} 0.0' in exposition


def test_a_batch_always_holds_at_least_one_request() -> None:
    queue = SignalQueue("traces", max_bytes=1000, metrics=GatewayMetrics())
    queue.put(b"x" * 500, items=1)

    async def take() -> int:
        return len(await queue.take(max_batch_bytes=10))

    assert asyncio.run(take()) == 1


def test_cli_refuses_to_start_without_tokens() -> None:
    result = CliRunner().invoke(gateway, ["--check"], env={"CARET_OTEL_INGEST_TOKENS": ""})
    assert result.exit_code == 1
    assert "CARET_OTEL_INGEST_TOKENS" in result.output


def test_cli_refuses_to_start_without_pseudonym_keys() -> None:
    env = {"CARET_OTEL_INGEST_TOKENS": "ingest-token-0123456789", "CARET_OTEL_PSEUDONYM_KEYS": "",
           "CARET_OTEL_PSEUDONYM_KEY_FILE": ""}  # fmt: skip
    result = CliRunner().invoke(gateway, ["--check"], env=env)
    assert result.exit_code == 1
    assert "caret-otel privacy keygen" in result.output


def test_cli_check_prints_the_configuration_without_secrets() -> None:
    token = "ingest-token-0123456789"
    env = {"CARET_OTEL_INGEST_TOKENS": token, "CARET_OTEL_PSEUDONYM_KEYS": generate_key_entry("k7"),
           "DATABASE_URL": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}  # fmt: skip
    result = CliRunner().invoke(gateway, ["--check", "--port", "9999"], env=env)
    assert result.exit_code == 0, result.output
    assert "http://collector:4318/v1/logs" in result.output
    assert "pseudonym keys:    k7" in result.output
    assert "configuration ok" in result.output
    assert token not in result.output
