"""Which HTTP requests are GenAI calls: the host -> provider map and the API routes.

A request is a GenAI operation when it is a ``POST`` to a host in the provider map and
its path ends like one of the supported APIs. The API shape (not the provider) decides
how the bodies are read, so an OpenAI-compatible endpoint of any provider works as long
as its host is mapped.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from caret_otel.core.environment_variables import CARET_OTEL_GENAI_PROVIDER_HOSTS
from caret_otel.core.errors import ConfigurationError

PROVIDER_HOSTS_ENV = CARET_OTEL_GENAI_PROVIDER_HOSTS
"""Extra ``host=provider`` entries (comma-separated), merged over the defaults."""

OPERATION_CHAT = "chat"
"""Upstream's operation name for chat-style inference (Messages, Chat Completions, Responses)."""

DEFAULT_PROVIDER_HOSTS: Mapping[str, str] = {
    "api.anthropic.com": "anthropic",
    "api.openai.com": "openai",
    "*.openai.azure.com": "azure.ai.openai",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "generativelanguage.googleapis.com": "gcp.gemini",
}
"""Public provider API hosts and their upstream ``gen_ai.provider.name`` values."""

_HOST_KEY_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
_PROVIDER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ApiShape(enum.Enum):
    """The wire format of a provider API: it decides how request and response are read."""

    ANTHROPIC_MESSAGES = "anthropic_messages"
    OPENAI_CHAT_COMPLETIONS = "openai_chat_completions"
    OPENAI_RESPONSES = "openai_responses"


# Path suffix -> shape. Suffixes (not whole paths) so that prefixed deployments match too:
# Azure's /openai/deployments/<name>/chat/completions, DeepSeek's /anthropic/v1/messages.
_PATH_SUFFIXES: tuple[tuple[str, ApiShape], ...] = (
    ("/v1/messages", ApiShape.ANTHROPIC_MESSAGES),
    ("/chat/completions", ApiShape.OPENAI_CHAT_COMPLETIONS),
    ("/responses", ApiShape.OPENAI_RESPONSES),
)


@dataclass(frozen=True)
class GenAIRoute:
    """A request recognised as a GenAI operation."""

    provider: str
    shape: ApiShape
    operation: str
    server_address: str
    server_port: int


class ProviderHostError(ConfigurationError):
    """An entry of the host -> provider map is malformed; the message names it."""


def _validated(hosts: Mapping[str, str], source: str) -> dict[str, str]:
    checked: dict[str, str] = {}
    for raw_host, raw_provider in hosts.items():
        if not isinstance(raw_host, str) or not isinstance(raw_provider, str):
            raise ProviderHostError(f"{source}: keys and values must be strings, got {raw_host!r}")
        host, provider = raw_host.strip().lower(), raw_provider.strip()
        if not _HOST_KEY_RE.match(host):
            raise ProviderHostError(
                f"{source}[{raw_host!r}]: expected a host name, 'host:port' or '*.domain' "
                "(no scheme, no path)"
            )
        if not _PROVIDER_RE.match(provider):
            raise ProviderHostError(
                f"{source}[{raw_host!r}]: provider {raw_provider!r} must be a lower-case "
                "name such as 'openai', 'anthropic' or 'azure.ai.openai'"
            )
        checked[host] = provider
    return checked


def parse_provider_hosts(text: str, *, source: str = PROVIDER_HOSTS_ENV) -> dict[str, str]:
    """Parse ``host=provider`` entries separated by commas (the env-var format)."""
    entries: dict[str, str] = {}
    for number, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        host, sep, provider = entry.partition("=")
        if not sep:
            raise ProviderHostError(f"{source}: entry {number} ({entry!r}) is not 'host=provider'")
        entries[host] = provider
    return _validated(entries, source)


class ProviderRouter:
    """Resolves requests to :class:`GenAIRoute` (or ``None`` for ordinary HTTP calls).

    ``hosts`` keys are ``host``, ``host:port`` (more specific, wins) or ``*.domain``
    (any sub-domain). Entries given here and in ``$CARET_OTEL_GENAI_PROVIDER_HOSTS`` are
    merged over :data:`DEFAULT_PROVIDER_HOSTS`; later sources win.
    """

    def __init__(
        self,
        hosts: Mapping[str, str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        merged = dict(DEFAULT_PROVIDER_HOSTS)
        if env.get(PROVIDER_HOSTS_ENV):
            merged.update(parse_provider_hosts(env[PROVIDER_HOSTS_ENV]))
        if hosts is not None:
            merged.update(_validated(hosts, "provider_hosts"))
        self._exact = {k: v for k, v in merged.items() if not k.startswith("*.")}
        # Longest suffix first, so "*.eu.example.com" beats "*.example.com".
        self._wildcards = sorted(
            ((k[1:], v) for k, v in merged.items() if k.startswith("*.")),
            key=lambda item: -len(item[0]),
        )

    @property
    def hosts(self) -> dict[str, str]:
        """The effective map (for diagnostics and docs)."""
        return {**self._exact, **{"*" + suffix: p for suffix, p in self._wildcards}}

    def provider_for(self, host: str, port: int) -> str | None:
        host = host.lower()
        provider = self._exact.get(f"{host}:{port}") or self._exact.get(host)
        if provider is not None:
            return provider
        for suffix, wildcard_provider in self._wildcards:
            if host.endswith(suffix):
                return wildcard_provider
        return None

    def resolve(self, request: httpx.Request) -> GenAIRoute | None:
        if request.method != "POST":
            return None
        url = request.url
        shape = shape_for_path(url.path)
        if shape is None:
            return None
        port = url.port or _DEFAULT_PORTS.get(url.scheme, 0)
        provider = self.provider_for(url.host, port)
        if provider is None:
            return None
        return GenAIRoute(
            provider=provider,
            shape=shape,
            operation=OPERATION_CHAT,
            server_address=url.host,
            server_port=port,
        )


def shape_for_path(path: str) -> ApiShape | None:
    """The API shape a request path belongs to, if any."""
    trimmed = path.rstrip("/")
    for suffix, shape in _PATH_SUFFIXES:
        if trimmed.endswith(suffix):
            return shape
    return None
