"""A deterministic synthetic event stream for the idempotency and ordering tests: users
with sign-ups, plan changes, tokens, errors, features, and gaps that make sessions."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from integration.exporter.exporter_helpers import event
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev

COUNTRIES = [("KR", "AS", "ko"), ("US", "NA", "en"), ("DE", "EU", "de"), ("JP", "AS", "ja")]
MODELS = [("anthropic", "claude-sonnet-4"), ("openai", "gpt-5"), ("gcp.gemini", "gemini-2.5-pro")]
ACTIVITY = [
    ev.CARET_TASK_CREATED,
    ev.CARET_TASK_TOKENS,
    ev.CARET_TASK_TOKENS,
    ev.CARET_TASK_TOKENS,
    ev.CARET_TASK_PROVIDER_API_ERROR,
    ev.CARET_TASK_TOOL_USED,
    ev.CARET_TASK_BROWSER_TOOL_START,
    ev.CARET_TASK_BROWSER_TOOL_END,
    ev.CARET_TASK_FOCUS_CHAIN,
    ev.CARET_TASK_COMPLETED,
    ev.CARET_CREDITS_CONSUMED,
]


def synthetic_events(
    end: datetime, *, users: int = 12, days: int = 6, seed: int = 7
) -> list[LogRecord]:
    """Events of ``users`` users over the ``days`` days before ``end``, in time order."""
    rng = random.Random(seed)
    records: list[tuple[datetime, LogRecord]] = []
    for n in range(users):
        name = f"user-{n}"
        country, continent, language = COUNTRIES[n % len(COUNTRIES)]
        common: dict[str, Any] = {
            attrs.GEO_COUNTRY_ISO_CODE: country,
            attrs.GEO_CONTINENT_CODE: continent,
            attrs.CARET_CLIENT_LANGUAGE: language,
            attrs.CARET_CLIENT_PLATFORM: "vscode",
        }
        plan = "free"
        first = end - timedelta(days=days) + timedelta(minutes=rng.randrange(0, 600))
        if n % 3 == 0:
            records.append(
                (
                    first,
                    event(
                        name,
                        first,
                        ev.CARET_USER_SIGNED_UP,
                        {**common, attrs.CARET_PLAN_NAME: plan},
                    ),
                )
            )
        ts = first
        while True:
            ts += timedelta(minutes=rng.choice([1, 5, 12, 29, 30, 31, 45, 200, 900]))
            if ts >= end:
                break
            if n % 4 == 1 and plan == "free" and rng.random() < 0.05:
                plan = "pro"
                records.append(
                    (
                        ts,
                        event(
                            name, ts, ev.CARET_PLAN_CHANGED, {**common, attrs.CARET_PLAN_NAME: plan}
                        ),
                    )
                )
                continue
            spec = rng.choice(ACTIVITY)
            provider, model = rng.choice(MODELS)
            values: dict[str, Any] = {
                **common,
                attrs.CARET_PLAN_NAME: plan,
                attrs.GEN_AI_PROVIDER_NAME: provider,
                attrs.GEN_AI_REQUEST_MODEL: model,
            }
            if spec is ev.CARET_TASK_TOKENS:
                values[attrs.GEN_AI_USAGE_INPUT_TOKENS] = rng.randrange(100, 5000)
                values[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = rng.randrange(10, 900)
                values[attrs.CARET_CREDITS_AMOUNT] = rng.randrange(1, 40) / 4
                values[attrs.CARET_API_DURATION] = rng.randrange(100, 9000) / 1000
            elif spec is ev.CARET_CREDITS_CONSUMED:
                values[attrs.CARET_CREDITS_AMOUNT] = rng.randrange(1, 20) / 2
            elif spec is ev.CARET_TASK_PROVIDER_API_ERROR:
                values[attrs.ERROR_TYPE] = rng.choice(["timeout", "429", "500"])
            elif spec is ev.CARET_TASK_FOCUS_CHAIN:
                values[attrs.CARET_FEATURE_NAME] = "focus_chain"
                values[attrs.CARET_FEATURE_ACTION] = rng.choice(["enabled", "progress_update"])
            record = event(name, ts, spec, values)
            if rng.random() < 0.05:
                del record.attributes[0]  # no caret.event.id: the exporter hashes the record
            records.append((ts, record))
    records.sort(key=lambda pair: pair[0])
    return [record for _, record in records]
