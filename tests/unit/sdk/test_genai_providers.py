"""Which requests are GenAI calls: host map (defaults, env, overrides, wildcards, ports)
and API paths; malformed map entries fail with the entry named."""

from __future__ import annotations

import httpx
import pytest

from caret_otel.sdk.genai.providers import (
    PROVIDER_HOSTS_ENV,
    ApiShape,
    ProviderHostError,
    ProviderRouter,
    parse_provider_hosts,
    shape_for_path,
)


def post(url: str) -> httpx.Request:
    return httpx.Request("POST", url, json={"model": "m"})


@pytest.mark.parametrize(
    ("url", "provider", "shape", "port"),
    [
        ("https://api.anthropic.com/v1/messages", "anthropic", ApiShape.ANTHROPIC_MESSAGES, 443),
        (
            "https://api.openai.com/v1/chat/completions",
            "openai",
            ApiShape.OPENAI_CHAT_COMPLETIONS,
            443,
        ),
        ("https://api.openai.com/v1/responses", "openai", ApiShape.OPENAI_RESPONSES, 443),
        (
            "https://myres.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=1",
            "azure.ai.openai",
            ApiShape.OPENAI_CHAT_COMPLETIONS,
            443,
        ),
        (
            "https://api.deepseek.com/anthropic/v1/messages",
            "deepseek",
            ApiShape.ANTHROPIC_MESSAGES,
            443,
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions/",
            "gcp.gemini",
            ApiShape.OPENAI_CHAT_COMPLETIONS,
            443,
        ),
    ],
)
def test_default_hosts(url: str, provider: str, shape: ApiShape, port: int) -> None:
    route = ProviderRouter(environ={}).resolve(post(url))
    assert route is not None
    assert (route.provider, route.shape, route.operation, route.server_port) == (
        provider,
        shape,
        "chat",
        port,
    )
    assert route.server_address == httpx.URL(url).host


@pytest.mark.parametrize(
    "request_",
    [
        httpx.Request("GET", "https://api.openai.com/v1/chat/completions"),
        post("https://api.openai.com/v1/embeddings"),
        post("https://api.anthropic.com/v1/messages/count_tokens"),
        post("https://api.anthropic.com/v1/messages/batches"),
        post("https://example.com/v1/chat/completions"),
        post("https://openai.azure.com.evil.example/v1/chat/completions"),
    ],
)
def test_not_genai_calls(request_: httpx.Request) -> None:
    assert ProviderRouter(environ={}).resolve(request_) is None


def test_host_port_entry_beats_host_entry_and_overrides_beat_env() -> None:
    router = ProviderRouter(
        {"llm-proxy:8080": "anthropic", "API.OpenAI.com": "openai-proxy"},
        environ={PROVIDER_HOSTS_ENV: "llm-proxy=openai, *.corp.example=mistral_ai"},
    )
    assert router.provider_for("llm-proxy", 8080) == "anthropic"
    assert router.provider_for("llm-proxy", 80) == "openai"
    assert router.provider_for("a.b.corp.example", 443) == "mistral_ai"
    assert router.provider_for("corp.example", 443) is None
    assert router.provider_for("api.openai.com", 443) == "openai-proxy"
    route = router.resolve(post("http://llm-proxy:8080/v1/messages"))
    assert route is not None
    assert (route.server_address, route.server_port) == ("llm-proxy", 8080)


def test_longest_wildcard_wins() -> None:
    router = ProviderRouter(
        {"*.example.com": "openai", "*.eu.example.com": "mistral_ai"}, environ={}
    )
    assert router.provider_for("x.eu.example.com", 443) == "mistral_ai"
    assert router.provider_for("x.us.example.com", 443) == "openai"


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ({"https://api.example.com": "openai"}, "'https://api.example.com'"),
        ({"api.example.com/v1": "openai"}, "no scheme, no path"),
        ({"api.example.com": "Open AI"}, "provider 'Open AI'"),
        ({"api.example.com": ""}, "lower-case"),
    ],
)
def test_malformed_entries_name_the_entry(hosts: dict[str, str], message: str) -> None:
    with pytest.raises(ProviderHostError, match=message):
        ProviderRouter(hosts, environ={})


def test_env_format_errors_name_the_variable() -> None:
    with pytest.raises(ProviderHostError, match=f"{PROVIDER_HOSTS_ENV}: entry 2"):
        parse_provider_hosts("a.example=openai,b.example")
    assert parse_provider_hosts(" , a.example = openai ,") == {"a.example": "openai"}


def test_paths() -> None:
    assert shape_for_path("/v1/messages/") is ApiShape.ANTHROPIC_MESSAGES
    assert shape_for_path("/api/v1/chat/completions") is ApiShape.OPENAI_CHAT_COMPLETIONS
    assert shape_for_path("/v1/completions") is None
