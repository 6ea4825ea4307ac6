"""The ``caret-otel`` command line."""
