"""``caret-otel sdk``: tools for services that use ``caret_otel.sdk``."""

from __future__ import annotations

import click

from caret_otel.devtools.provider_stub import ProviderStub


@click.group()
def sdk() -> None:
    """Tools for Caret services instrumented with caret_otel.sdk.

    \b
    Examples:
      caret-otel sdk provider-stub --port 8765   # a local stand-in for the provider APIs
    """


@sdk.command("provider-stub")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="0: any free port.",
)
def provider_stub_command(host: str, port: int) -> None:
    """Answer like the Anthropic Messages and OpenAI Chat Completions / Responses APIs.

    Plain and streamed (SSE) responses, with token usage, so the GenAI instrumentation
    can be tried without calling a provider. Map the stub to a provider in the service
    with CARET_OTEL_GENAI_PROVIDER_HOSTS=<host>:<port>=anthropic. Request headers choose
    errors and delays (x-stub-scenario: error-429, slow, stream-error, ...; see
    docs/sdk.md). Stops on Ctrl-C.

    \b
    Examples:
      caret-otel sdk provider-stub
      caret-otel sdk provider-stub --port 0       # pick a free port, print it
      curl -s localhost:8765/v1/messages -d '{"model": "claude-sonnet-4", "max_tokens": 64}'
    """
    try:
        stub = ProviderStub(host, port).start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"provider stub listening on {stub.url} (Ctrl-C stops it)")
    click.echo(f"  Anthropic Messages        POST {stub.url}/v1/messages")
    click.echo(f"  OpenAI Chat Completions   POST {stub.url}/v1/chat/completions")
    click.echo(f"  OpenAI Responses          POST {stub.url}/v1/responses")
    stub.wait()
