"""``caret-otel gateway``: run the ingestion gateway (the only public door)."""

from __future__ import annotations

import logging

import click
import psycopg

from caret_otel.receivers.gateway.config import ENV_HELP, GatewayConfig, GatewayConfigError

_ENV_LINES = "\n".join(f"  {name:<38} {text}" for name, text in ENV_HELP)


@click.command(
    "gateway",
    epilog="\b\nConfiguration (environment variables):\n" + _ENV_LINES,
    context_settings={"max_content_width": 140},
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on (0.0.0.0 in a container).",
)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--migrate/--no-migrate",
    default=True,
    show_default=True,
    help="With DATABASE_URL: apply the business schema's migrations first (creates privacy.consent).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option("--check", is_flag=True, help="Validate the configuration, print it and exit.")
def gateway(host: str, port: int, migrate: bool, log_level: str, check: bool) -> None:
    """Serve POST /telemetry/events, OTLP/HTTP (/v1/traces|metrics|logs), consent,
    deletion, schema, health and metrics; export OTLP to the Collector.

    Refuses to start without an ingest token or pseudonym keys, saying how to make them.
    Without DATABASE_URL, opt-outs live in memory only and deletion answers 503.
    SIGTERM drains the export queue to the Collector before exiting.

    \b
    Examples:
      export CARET_OTEL_INGEST_TOKENS=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
      export CARET_OTEL_PSEUDONYM_KEYS=$(caret-otel privacy keygen)
      caret-otel gateway --check                       # print the effective configuration
      caret-otel gateway --port 8080                   # serve on 127.0.0.1:8080
      OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 DATABASE_URL=postgresql://... \\
        caret-otel gateway --host 0.0.0.0
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = GatewayConfig.from_env()
    except GatewayConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if log_level != "debug":
        # httpx logs every export request to the Collector at INFO: hundreds of lines of
        # success. Failures are logged by the exporter itself.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    _describe(config, host, port)
    if check:
        _check_keys()
        if config.database_url:
            _check_database(config.database_url)
        click.echo("configuration ok")
        return
    if migrate and config.database_url:
        click.echo("applying database migrations ...")
        from caret_otel.exporters.postgres.schema import migrate as apply_migrations

        try:
            applied = apply_migrations(config.database_url)
        except psycopg.Error as exc:
            raise click.ClickException(_database_problem(exc)) from None
        click.echo(f"  {len(applied)} migration(s) applied" if applied else "  schema is current")
    from caret_otel.processors.privacy.consent import ConsentStoreError
    from caret_otel.processors.privacy.pseudonyms import PseudonymKeyError
    from caret_otel.receivers.gateway.runtime import build_gateway
    from caret_otel.receivers.gateway.server import serve

    click.echo("loading the privacy policy and pseudonym keys ...")
    try:
        runtime = build_gateway(config)
    except (PseudonymKeyError, ConsentStoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except psycopg.Error as exc:
        raise click.ClickException(_database_problem(exc)) from None
    if config.database_url:
        _register_key_fingerprints(config.database_url)
    click.echo(f"listening on http://{host}:{port} (Ctrl-C to stop)")
    serve(runtime, host, port, log_level=log_level)


def _database_problem(exc: psycopg.Error) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"the database of DATABASE_URL is not usable: {first}"


def _check_database(url: str) -> None:
    """--check connects: a configuration whose database is unreachable is not fine."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise click.ClickException(_database_problem(exc)) from None
    click.echo("  database:          reachable")


def _register_key_fingerprints(url: str) -> None:
    """Record which keys write here, so `caret-otel forget` can refuse other keys."""
    from caret_otel.exporters.postgres.key_fingerprints import register
    from caret_otel.processors.privacy.pseudonyms import Pseudonymizer

    try:
        register(url, Pseudonymizer.from_env())
    except psycopg.Error as exc:  # an older schema: forget falls back to key ids
        logging.getLogger(__name__).warning(
            "pseudonym key fingerprints not recorded: %s", _database_problem(exc)
        )


def _check_keys() -> None:
    from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, PseudonymKeyError

    try:
        keys = Pseudonymizer.from_env().key_ids
    except PseudonymKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"  pseudonym keys:    {', '.join(keys)} (signing: {keys[-1]})")


def _describe(config: GatewayConfig, host: str, port: int) -> None:
    limits = config.limits
    click.echo(f"caret-otel gateway on {host}:{port}")
    click.echo(f"  ingest tokens:     {len(config.ingest_tokens)}")
    click.echo(
        f"  admin token:       {'set' if config.admin_token else 'unset (deletion disabled)'}"
    )
    for signal, url in config.otlp.endpoints.items():
        click.echo(f"  collector {signal + ':':<8} {url}")
    click.echo(
        "  consent store:     "
        + ("PostgreSQL (DATABASE_URL)" if config.database_url else "in memory (DATABASE_URL unset)")
    )
    click.echo(f"  country header:    {config.country_header or 'none'}")
    click.echo(
        f"  limits:            body {limits.max_body_bytes} B, {limits.max_events_per_request} events/request, "
        f"{limits.max_inflight_requests} in flight, queue {limits.queue_max_bytes} B/signal"
    )
