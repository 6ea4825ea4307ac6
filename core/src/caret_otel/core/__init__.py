"""caret-otel's ground floor, shared by every other distribution.

- :mod:`caret_otel.core.environment_variables`: the name of every environment variable
  any part of caret-otel reads (as ``opentelemetry.sdk.environment_variables`` does);
- :mod:`caret_otel.core.errors`: the exception hierarchy, all under
  :class:`~caret_otel.core.errors.CaretOtelError`;
- :mod:`caret_otel.core.version`: the release.

The OTLP helpers (values, OTLP/JSON, HTTP bodies, wire format) are the sibling package
:mod:`caret_otel.otlp` of the same distribution.
"""
