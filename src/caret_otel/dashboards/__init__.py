"""Prometheus rules, Grafana provisioning and dashboards, generated from the registry.

Everything here derives metric and label names from ``caret_otel.semconv`` through
:mod:`caret_otel.dashboards.promnames`, so a rename in the registry changes every
query, rule and panel at once (``caret-otel dashboards check`` keeps the checked-in
files fresh).
"""
