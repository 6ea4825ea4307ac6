"""``GET /readyz``: can this gateway take data right now?

Two checks: the Collector accepts an (empty) OTLP export, and the consent store is
current (a PostgreSQL store whose background refresh keeps failing is stale: opt-outs
taken by other gateway processes would not be honoured).

The probe is public, so its answer is generic: ``ok`` or ``unavailable`` per check,
never an internal URL or an exception text (those go to the log, once per change). The
result is cached for :data:`CACHE_SECONDS`, so probing ``/readyz`` in a loop costs the
Collector one empty export a second at most.
"""

from __future__ import annotations

import logging
import time

from caret_otel.receivers.gateway.runtime import Gateway

log = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"
STALE = "stale"
CACHE_SECONDS = 1.0


async def check(gateway: Gateway) -> tuple[bool, dict[str, str]]:
    memo = gateway.readiness
    now = time.monotonic()
    at, ready_before, checks_before = memo.get("at"), memo.get("ready"), memo.get("checks")
    if isinstance(at, float) and now - at < CACHE_SECONDS and isinstance(checks_before, dict):
        return bool(ready_before), dict(checks_before)
    checks: dict[str, str] = {}
    problem = await gateway.exporter.probe()
    if problem != memo.get("problem"):
        if problem is None:
            log.info("readiness: the Collector takes data")
        else:
            log.warning("readiness: the Collector is not taking data: %s", problem)
        memo["problem"] = problem
    checks["collector"] = OK if problem is None else UNAVAILABLE
    healthy = bool(getattr(gateway.consent, "healthy", True))
    checks["consent_store"] = OK if healthy else STALE
    checks["consent_durable"] = "yes" if getattr(gateway.consent, "durable", False) else "no"
    ready = problem is None and healthy
    memo.update(at=now, ready=ready, checks=dict(checks))
    return ready, checks
