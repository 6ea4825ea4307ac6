"""The caret-otel release (every distribution of the project shares it)."""

__version__ = "0.1.0"
