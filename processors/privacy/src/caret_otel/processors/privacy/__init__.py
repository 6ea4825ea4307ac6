"""Privacy processors (installed as ``caret_otel.processors.privacy``)."""
