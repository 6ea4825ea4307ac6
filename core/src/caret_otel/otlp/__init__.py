"""The one OTLP toolkit of caret-otel, used by the gateway, the privacy processors and
the business exporter alike:

- :mod:`~caret_otel.otlp.values`: ``AnyValue``/``KeyValue`` to Python and back, time;
- :mod:`~caret_otel.otlp.json_format`: OTLP/JSON decoding (hex ids, iterative);
- :mod:`~caret_otel.otlp.body`: OTLP/HTTP request bodies (media types, gzip and zstd
  within limits, decoding) and responses;
- :mod:`~caret_otel.otlp.wire`: a minimal protobuf writer for the records the gateway
  builds;
- :mod:`~caret_otel.otlp.build`: OTLP requests of business events, for tests and tools.
"""
