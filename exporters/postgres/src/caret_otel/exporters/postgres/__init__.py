"""PostgreSQL business exporter (installed as ``caret_otel.exporters.postgres``).

An OTLP/HTTP server (``caret-otel exporter``) that the Collector's business leg targets:
business events and metrics go into PostgreSQL exactly once, roll up into the analyst
tables, and age out through the retention tiers. ``docs/data-dictionary.md`` describes
every table and view.

Entry points other parts call:

- :func:`caret_otel.exporters.postgres.schema.migrate` - apply the schema migrations (idempotent,
  safe in parallel);
- :func:`caret_otel.exporters.postgres.deletion.forget` - delete a user everywhere, with an audit
  row;
- :func:`caret_otel.exporters.postgres.retention.run_retention` - the retention job;
- :func:`caret_otel.exporters.postgres.report.build_report` - the analyst report;
- :class:`caret_otel.exporters.postgres.service.ExporterService` and
  :func:`caret_otel.exporters.postgres.app.create_app` - the server itself.
"""
