"""GenAI telemetry for model-provider calls made with httpx.

``instrument_httpx()`` gives every ``POST`` to a known provider API (Anthropic Messages,
OpenAI Chat Completions and Responses, OpenAI-compatible endpoints) a CLIENT span named
``{operation} {model}`` with the upstream GenAI attributes, and records the upstream
operation-duration and token-usage histograms. Message content is never recorded.
See ``docs/sdk.md``.
"""

from caret_otel.sdk.genai.instrumentor import (
    instrument_httpx,
    is_instrumented,
    uninstrument_httpx,
)
from caret_otel.sdk.genai.providers import (
    DEFAULT_PROVIDER_HOSTS,
    PROVIDER_HOSTS_ENV,
    ApiShape,
    ProviderHostError,
)

__all__ = [
    "DEFAULT_PROVIDER_HOSTS",
    "PROVIDER_HOSTS_ENV",
    "ApiShape",
    "ProviderHostError",
    "instrument_httpx",
    "is_instrumented",
    "uninstrument_httpx",
]
