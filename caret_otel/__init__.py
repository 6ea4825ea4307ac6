"""caret-otel: OpenTelemetry-native server-side telemetry for Caret."""

__version__ = "0.1.0"
