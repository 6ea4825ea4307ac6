"""Caret semantic conventions (installed as ``caret_otel.semconv``)."""
