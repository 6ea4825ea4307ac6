"""PostgreSQL business exporter (installed as ``caret_otel.exporters``)."""
