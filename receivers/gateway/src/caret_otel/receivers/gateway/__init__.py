"""The ingestion gateway: the only public door for Caret telemetry.

Caret client events (``POST /telemetry/events``) and services' OTLP/HTTP come in; they
are authenticated, validated against the registry, checked against consent, scrubbed
by the privacy processor and exported as OTLP to the Collector. See docs/gateway.md.
"""
