"""``GET /readyz``: can this gateway take data right now?

Two checks: the Collector accepts an (empty) OTLP export, and the consent store is
current (a PostgreSQL store whose background refresh keeps failing is stale: opt-outs
taken by other gateway processes would not be honoured).
"""

from __future__ import annotations

from caret_otel.receivers.gateway.runtime import Gateway

OK = "ok"


async def check(gateway: Gateway) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    problem = await gateway.exporter.probe()
    checks["collector"] = OK if problem is None else problem
    healthy = getattr(gateway.consent, "healthy", True)
    if not healthy:
        checks["consent_store"] = "opt-outs could not be refreshed from PostgreSQL recently"
    else:
        checks["consent_store"] = (
            OK if gateway.config.database_url else "ok (in memory: DATABASE_URL unset)"
        )
    ready = problem is None and bool(healthy)
    return ready, checks
