"""Caret semantic conventions (installed as ``caret_otel.semconv``).

The registry under ``registry/`` (Weaver syntax) is the single source of truth. From it
``caret-otel semconv generate`` writes:

- ``attributes``, ``metrics``, ``events``, ``spans``: Python constants; use these, never
  string literals, for every attribute, metric, event and span name;
- ``policy.json`` (read with :func:`caret_otel.semconv.policy.load_policy`): what the
  privacy processors keep, pseudonymise, coarsen or drop;
- ``schema.json``: the transparency document served at ``GET /telemetry/schema``;
- ``docs/semantic-conventions.md``.
"""
