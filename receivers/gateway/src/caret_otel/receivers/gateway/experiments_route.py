"""``GET /telemetry/experiments``: the active A/B experiments, for clients to evaluate.

The definitions live as code under ``experiments/``; ``caret-otel experiments export``
writes them as one JSON file, named to the gateway by ``CARET_OTEL_EXPERIMENTS_FILE``.
The gateway answers with those that are running today (UTC), in GrowthBook's experiment
shape (``key``, ``variations``, ``weights``, ``coverage``, ``seed``, ``hashAttribute``,
``hashVersion`` 2, ``condition``), so a GrowthBook SDK in the client and
``caret_otel.sdk.experiments`` in a service assign every user alike. A client or service
token may read it. Without the variable the list is empty; a file that cannot be read
or parsed answers 503 (it never echoes the file).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caret_otel.core.environment_variables import CARET_OTEL_EXPERIMENTS_FILE
from caret_otel.core.errors import InputError
from caret_otel.receivers.gateway import openapi_spec as spec
from caret_otel.receivers.gateway.auth import Role
from caret_otel.receivers.gateway.errors import JSON_MEDIA_TYPE, RequestError
from caret_otel.receivers.gateway.runtime import Gateway

log = logging.getLogger(__name__)

EXPERIMENTS_PATH: Final = "/telemetry/experiments"
RETRY_AFTER_S: Final = 30.0
HASH_VERSION: Final = 2
"""GrowthBook's hash version 2 (``caret_otel.sdk.experiments`` implements it)."""
_EXTRA_FIELDS: Final = ("status", "start", "end")
_REQUIRED: Final = {"key": str, "variations": list, "weights": list, "seed": str,
                    "condition": dict, "status": str, "start": str}  # fmt: skip


class DefinitionsFileError(InputError):
    """The exported file does not have the expected shape (logged, answered with 503)."""


def _check(item: object, index: int) -> None:
    if not isinstance(item, dict):
        raise DefinitionsFileError(f"experiments[{index}]: not an object")
    for name, kind in _REQUIRED.items():
        if not isinstance(item.get(name), kind):
            raise DefinitionsFileError(f"experiments[{index}].{name}: missing or wrong type")
    if len(item["variations"]) != len(item["weights"]) or item.get("hashVersion") != HASH_VERSION:
        raise DefinitionsFileError(f"experiments[{index}]: weights or hashVersion do not fit")


class DefinitionsFile:
    """The exported definitions, re-read when the file changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._items: list[dict[str, Any]] = []

    def _load(self) -> list[dict[str, Any]]:
        assert self.path is not None
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            document = orjson.loads(self.path.read_bytes())
            items = document.get("experiments") if isinstance(document, dict) else None
            if not isinstance(items, list):
                raise DefinitionsFileError("experiments: must be a list")
            for index, item in enumerate(items):
                _check(item, index)
            self._items, self._stamp = items, stamp
        return self._items

    def active(self, today: date) -> list[dict[str, Any]]:
        """The running definitions whose dates hold ``today``, without the extra fields."""
        if self.path is None:
            return []
        served = []
        for item in self._load():
            start = date.fromisoformat(item["start"])
            end = date.fromisoformat(item["end"]) if item.get("end") else None
            if item["status"] == "running" and start <= today and (end is None or today <= end):
                served.append({k: v for k, v in item.items() if k not in _EXTRA_FIELDS})
        return served


def add_route(app: FastAPI, gateway: Gateway) -> None:
    configured = os.environ.get(CARET_OTEL_EXPERIMENTS_FILE, "").strip()
    definitions = DefinitionsFile(Path(configured) if configured else None)

    async def get_experiments(request: Request) -> Response:
        gateway.auth.require(request.headers.get("authorization"), Role.CLIENT, Role.SERVICE)
        today = datetime.now(UTC).date()
        try:
            items = await run_in_threadpool(definitions.active, today)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("experiment definitions unusable: %s", type(exc).__name__)
            raise RequestError.unavailable(
                "the experiment definitions cannot be read; retry later", RETRY_AFTER_S
            ) from None
        answer = {"hashVersion": HASH_VERSION, "experiments": items}
        return Response(
            orjson.dumps(answer),
            media_type=JSON_MEDIA_TYPE,
            headers={"Cache-Control": "private, max-age=60"},
        )

    app.add_api_route(
        EXPERIMENTS_PATH,
        get_experiments,
        methods=["GET"],
        operation_id="getExperiments",
        summary="The active A/B experiments (GrowthBook experiment shape)",
        description="Running experiments whose dates include today (UTC), each with its "
        "variations, weights, coverage, hash seed and targeting condition, for the client's "
        "GrowthBook SDK (hash version 2, hash attribute `id` = the user id the client "
        "hashes into user_id_hash). Record `experiment.exposure` when a variant is shown.",
        tags=["experiments"],
        openapi_extra={"security": spec.INGEST_SECURITY},
        responses={
            200: {
                "description": "The active experiments.",
                "content": {JSON_MEDIA_TYPE: {"schema": {"type": "object"}}},
            },
            **spec.errors(401, 403, 503),
        },
    )
