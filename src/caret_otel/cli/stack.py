"""``caret-otel up``, ``simulate``, ``replay`` and ``demo``: the local stack and its traffic."""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import click
import orjson
from click.decorators import FC
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from caret_otel.core.environment_variables import DATABASE_URL
from caret_otel.stack.credentials import masked
from caret_otel.stack.local import LOCK_FILE, LocalStack, StackPorts, StackStartError
from caret_otel.stack.state import (
    DEFAULT_DATA_DIR,
    StackInfo,
    StackNotRunningError,
    read_stack_info,
)

if TYPE_CHECKING:  # the simulator pulls in the OTel SDK: import it only when it runs
    from caret_otel.simulator.run import RunOptions, SimulationSummary, Target
    from caret_otel.simulator.scenario import Scenario

DEMO_DATA_DIR = DEFAULT_DATA_DIR / "demo"
DEMO_USERS = 300
DEMO_DAYS = 28
DEMO_PROVIDER_CALL_SHARE = 0.35
"""The demo replays about a third of the tasks' provider calls: the simulated server
shares this process (and its GIL) with the clients, and a third is plenty for the
GenAI dashboards while keeping `make demo` near two minutes on two cores."""

# soft_wrap: commands and paths stay on one line (copyable) whatever the terminal width.
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)


class Terminated(BaseException):
    """SIGTERM arrived: stop as after Ctrl-C."""


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` (raised in the main thread) inside the block."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A shutdown in progress finishes: a second Ctrl-C must not leave half a stack."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _say(message: str) -> None:
    _err.print(f"[dim]·[/dim] {escape(message)}")


def _fail(message: str, code: int = 1) -> NoReturn:
    # escape(): log tails and URLs hold brackets that rich would read as markup.
    _err.print(f"[bold red]error:[/bold red] {escape(message)}")
    raise SystemExit(code)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="The local stack's folder (data, logs, secrets, stack.json).",
)


# --- up ---------------------------------------------------------------------------------------
def _port(name: str) -> Callable[[FC], FC]:
    return click.option(
        f"--{name}-port",
        type=click.IntRange(1, 65535),
        default=None,
        help=f"Fixed port for the {name} [default: a free one].",
    )


def _print_ready(stack: LocalStack, info: StackInfo) -> None:
    credentials = info.credentials
    db = info.database
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "gateway", f"{info.gateway_url}  (POST /telemetry/events, OTLP /v1/*, /openapi.json)"
    )
    table.add_row("exporter", f"{info.exporter_url}  (OTLP in, /metrics)")
    table.add_row(
        "collector",
        f"OTLP {info.collector_otlp_http_url}, gRPC {info.collector_otlp_grpc_endpoint}",
    )
    table.add_row("prometheus", info.prometheus_url or "not running (not installed)")
    if info.prometheus_url:
        table.add_row(
            "alertmanager",
            f"{stack.alertmanager_url}  (alerts, silences; routing: docs/alerts.md)"
            if stack.alertmanager_url
            else "not running (not installed)",
        )
    table.add_row("postgresql", f"{db.host}:{db.port}/{db.dbname}")
    table.add_row("traces/logs", f"{Path(info.sink_traces_path).parent}/ (Tempo/Loki stand-in)")
    table.add_row("logs", info.logs_dir)
    table.add_row(
        "tokens",
        f"ingest {credentials.ingest_token_file} ({masked(credentials.ingest_token)}), "
        f"admin {credentials.admin_token_file}",
    )
    _out.print("[bold green]caret-otel stack is ready[/bold green]")
    _out.print(table)
    for warning in stack.warnings:
        _out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    data_dir = info.data_dir
    example = _write_example_event(Path(data_dir))
    _out.print("\n[bold]Try next[/bold] (in another terminal):")
    _out.print(f"  {command_path()} simulate --data-dir {data_dir} --users 50 --days 7")
    _out.print(
        f'  curl -H "Authorization: Bearer $(cat {credentials.ingest_token_file})" '
        f"-H 'Content-Type: application/json' {info.gateway_url}/telemetry/events -d @{example}"
    )
    _out.print(f"  {command_path()} report --data-dir {data_dir}")
    _out.print(
        f'  eval "$({command_path()} env --data-dir {data_dir})"   # exports for a service (docs/sdk.md)'
    )
    if info.prometheus_url:
        _out.print(
            f"  open {info.prometheus_url}/graph  (e.g. gen_ai_client_operation_duration_seconds_count)"
        )
    _out.print(
        "  dashboards: the local stack runs no Grafana; to see them in one of your own, "
        "see docs/local-stack.md (Dashboards)"
    )
    _out.print("Ctrl-C stops everything.")


def _write_example_event(data_dir: Path) -> Path:
    """One client event in the telemetry plan's format (section 2.1), to post with curl."""
    from caret_otel.semconv import attributes as attrs
    from caret_otel.semconv import events
    from caret_otel.simulator.fields import client_info_key, property_key
    from caret_otel.simulator.traffic import ClientEvent

    event = ClientEvent(
        at=datetime.now(UTC),
        event_type=events.CARET_TASK_CREATED.client_event or "",
        user_id_hash="hashed_user_id",
        session_id="session_uuid",
        properties={
            property_key(attrs.CARET_TASK_ID): "task-1",
            property_key(attrs.GEN_AI_PROVIDER_NAME): "anthropic",
            property_key(attrs.GEN_AI_REQUEST_MODEL): "claude-sonnet-4",
            property_key(attrs.CARET_CONTEXT_WINDOW_SIZE): 128000,
        },
        client_info={
            client_info_key(attrs.CARET_CLIENT_VERSION): "1.0.0",
            client_info_key(attrs.CARET_CLIENT_PLATFORM): "vscode",
            client_info_key(attrs.CARET_CLIENT_LANGUAGE): "ko",
        },
    )
    path = data_dir / "example-event.json"
    path.write_bytes(orjson.dumps(event.to_json(), option=orjson.OPT_INDENT_2))
    return path


@click.command("up")
@data_dir_option
@_port("gateway")
@_port("exporter")
@_port("prometheus")
@_port("postgres")
@_port("collector")
@click.option(
    "--database-url",
    envvar=DATABASE_URL,
    default=None,
    help="Use this PostgreSQL instead of the embedded one [env: DATABASE_URL].",
)
@click.option("--no-prometheus", is_flag=True, help="Run without Prometheus.")
@click.option(
    "--kafka",
    is_flag=True,
    help="Two Collector tiers with Kafka (KRaft) between them instead of one Collector "
    "(edge: privacy pass -> Kafka; processing: Kafka -> the stores). Needs `make kafka`.",
)
@click.option(
    "--no-fsync",
    is_flag=True,
    help="Throw-away data: embedded PostgreSQL without fsync (faster; tests, demos).",
)
def up(
    data_dir: Path,
    gateway_port: int | None,
    exporter_port: int | None,
    prometheus_port: int | None,
    postgres_port: int | None,
    collector_port: int | None,
    database_url: str | None,
    no_prometheus: bool,
    kafka: bool,
    no_fsync: bool,
) -> None:
    """Start the whole local stack and supervise it until Ctrl-C or SIGTERM.

    Gateway, business exporter, PostgreSQL (embedded unless DATABASE_URL), our
    Collector, Prometheus and Alertmanager (when installed; alert receivers from the
    CARET_OTEL_ALERT_* variables, see docs/alerts.md) and the sink Collector standing in
    for Tempo and Loki. Ingest/admin tokens and the pseudonym key are generated into DATA_DIR/secrets
    on first run. If a part crashes, the stack is shut down and the exit status is 1.

    \b
    Examples:
      caret-otel up                                  # free ports, data in .caret-otel/
      caret-otel up --gateway-port 8080              # a fixed gateway port
      caret-otel up --kafka                          # edge and processing Collectors, Kafka between
      DATABASE_URL=postgresql://admin:...@db/caret caret-otel up
    """
    ports = StackPorts(gateway_port, exporter_port, prometheus_port, postgres_port, collector_port)
    stack = LocalStack(
        data_dir,
        ports=ports,
        database_url=database_url,
        prometheus=False if no_prometheus else None,
        fsync=not no_fsync,
        kafka=kafka,
        say=_say,
    )
    crash = None
    try:
        with _sigterm_stops():
            try:
                info = stack.start()
            except StackStartError as exc:
                _fail(str(exc))
            _print_ready(stack, info)
            crash = stack.wait(threading.Event())
    except (KeyboardInterrupt, Terminated):
        _say("stopping (signal received)")
    finally:
        with _signals_ignored():
            stack.stop()
    if crash is not None:
        _fail(crash.message() + "\nthe stack was shut down")
    _say("stopped")


# --- simulate ---------------------------------------------------------------------------------
def _read_token(path: Path, what: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path} ({exc.strerror})", param_hint=what) from None
    if not token:
        raise click.BadParameter(f"{path} is empty", param_hint=what)
    return token


def _stack_or_none(data_dir: Path, needed: bool) -> StackInfo | None:
    try:
        return read_stack_info(data_dir)
    except StackNotRunningError as exc:
        if needed:
            _fail(str(exc))
        return None


@click.command("simulate")
@data_dir_option
@click.option("--users", type=click.IntRange(1, 100_000), default=DEMO_USERS, show_default=True)
@click.option("--days", type=click.IntRange(1, 29), default=DEMO_DAYS, show_default=True,
              help="History to simulate, ending now (inside the 30-day raw window).")  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same traffic.")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Events per request (a client flushes at least at every session end).")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Clients sending at the same time.")  # fmt: skip
@click.option("--plant-secrets", is_flag=True,
              help="Put e-mails, paths, tokens, card numbers, PEM keys and IPs into every "
              "client field (none may reach a sink).")  # fmt: skip
@click.option("--endpoint", metavar="URL", default=None,
              help="Gateway base URL [default: the running stack's].")  # fmt: skip
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with the ingest token [default: the running stack's].")  # fmt: skip
@click.option("--admin-token-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="File with the admin token, for the deletion requests.")  # fmt: skip
@click.option("--otlp-endpoint", metavar="URL", default=None,
              help="Collector OTLP/HTTP URL for the simulated server [default: the stack's].")  # fmt: skip
@click.option("--pseudonym-key-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The deployment's pseudonym keys (server side).")  # fmt: skip
@click.option("--no-server-side", is_flag=True,
              help="Client events only: no GenAI calls, no billing events.")  # fmt: skip
@click.option("--no-deletions", is_flag=True, help="Send no deletion requests.")
@click.option("--provider-call-share", type=click.FloatRange(0.0, 1.0), default=1.0,
              show_default=True, help="Share of the tasks' provider requests to replay.")  # fmt: skip
@click.option("--pace", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="SECONDS", help="Spread the traffic over at least this long (live-looking "
              "rates on dashboards) instead of sending it as fast as possible.")  # fmt: skip
@click.option("--dump-events", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the client events as JSON lines (input for `replay`).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Generate (and dump) only; send nothing.")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the run's counts as JSON (for scripts and tests).")  # fmt: skip
@click.option("--experiment", metavar="KEY", default=None,
              help="Experiment under experiments/ the simulated clients take part in "
              "[default: demo-plan-hint]; docs/experiments.md.")  # fmt: skip
@click.option("--no-experiment", is_flag=True, help="Simulate no experiment.")
@click.option("--true-lift", "true_lifts", metavar="VARIANT=LIFT", multiple=True,
              help="Known true relative lift of the task success rate for a variant (repeat "
              "per variant; none given: the experiment's default, 0 for an A/A test).")  # fmt: skip
def simulate(
    data_dir: Path,
    users: int,
    days: int,
    seed: int,
    batch_size: int,
    concurrency: int,
    plant_secrets: bool,
    endpoint: str | None,
    token_file: Path | None,
    admin_token_file: Path | None,
    otlp_endpoint: str | None,
    pseudonym_key_file: Path | None,
    no_server_side: bool,
    no_deletions: bool,
    provider_call_share: float,
    pace: float,
    dump_events: Path | None,
    dry_run: bool,
    summary_json: Path | None,
    experiment: str | None = None,
    no_experiment: bool = False,
    true_lifts: tuple[str, ...] = (),
) -> None:
    """Send realistic, deterministic Caret traffic: N users over D days, back-dated.

    Sign-ups over time, free and paid plans with conversions, countries and UI
    languages (Korean first), sessions 30+ minutes apart, tasks with popular models,
    tokens and credits, provider errors at provider-specific rates, browser/MCP/focus
    chain use, opt-outs and a few deletion requests. Client events go to the gateway;
    the simulated Caret server makes the tasks' provider calls through the SDK's
    instrumented httpx (GenAI spans and metrics) and records billing events.

    \b
    Examples:
      caret-otel simulate                              # against `caret-otel up`
      caret-otel simulate --users 500 --days 28 --seed 42
      caret-otel simulate --plant-secrets --summary-json run.json
      caret-otel simulate --users 50 --days 3 --pace 600   # ten minutes of live-looking traffic
      caret-otel simulate --dry-run --dump-events events.jsonl
      caret-otel simulate --endpoint https://gw.example --token-file token --no-server-side
      caret-otel simulate --experiment demo-plan-hint --true-lift hint=0.05
      caret-otel simulate --experiment demo-plan-hint --true-lift hint=0   # an A/A test
    """
    from caret_otel.simulator.run import RunOptions
    from caret_otel.simulator.scenario import ScenarioSettings, build_scenario

    # Find the stack first: generating the traffic takes a while, and is wasted without it.
    info = None
    if not dry_run:
        info = _stack_or_none(data_dir, needed=endpoint is None or token_file is None)
    from caret_otel.cli.experiments import parse_true_lifts
    from caret_otel.simulator.experiments import DEMO_EXPERIMENT

    settings = ScenarioSettings(
        users, days, seed, plant_secrets, batch_size,
        experiment=None if no_experiment else experiment or DEMO_EXPERIMENT,
        true_lifts=parse_true_lifts(true_lifts),
    )  # fmt: skip
    with _err.status("generating traffic..."):
        scenario = build_scenario(settings)
    _say(
        f"{scenario.event_count:,} client events, {scenario.provider_call_count:,} provider "
        f"calls and {scenario.billing_count:,} billing events for {users} users over {days} "
        f"days (seed {seed}, fingerprint {scenario.fingerprint()[:12]})"
    )
    if dump_events is not None:
        from caret_otel.simulator.replay import write_events

        count = write_events(dump_events, scenario.requests())
        _say(f"wrote {count:,} events to {dump_events}")
    if dry_run:
        return
    target = _target(
        info, endpoint, token_file, admin_token_file, otlp_endpoint, pseudonym_key_file,
        server_side=not no_server_side,
    )  # fmt: skip
    options = RunOptions(
        concurrency, not no_server_side, not no_deletions, provider_call_share, pace
    )
    summary = _run(scenario, target, options)
    _print_summary(summary)
    if summary_json is not None:
        summary_json.write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))


def _target(
    info: StackInfo | None,
    endpoint: str | None,
    token_file: Path | None,
    admin_token_file: Path | None,
    otlp_endpoint: str | None,
    pseudonym_key_file: Path | None,
    *,
    server_side: bool,
) -> Target:
    from caret_otel.processors.privacy.pseudonyms import (
        Pseudonymizer,
        PseudonymKeyError,
        parse_keys,
    )
    from caret_otel.simulator.run import Target

    credentials = info.credentials if info is not None else None
    gateway_url = endpoint or (info.gateway_url if info else None)
    assert gateway_url is not None
    ingest = (
        _read_token(token_file, "--token-file")
        if token_file is not None
        else credentials.ingest_token  # type: ignore[union-attr]
    )
    admin: str | None = None
    if admin_token_file is not None:
        admin = _read_token(admin_token_file, "--admin-token-file")
    elif credentials is not None:
        admin = credentials.admin_token
    pseudonymizer = None
    otlp = otlp_endpoint or (info.collector_otlp_http_url if info else None)
    if server_side:
        try:
            if pseudonym_key_file is not None:
                text = _read_token(pseudonym_key_file, "--pseudonym-key-file")
                pseudonymizer = Pseudonymizer(parse_keys(text, source=str(pseudonym_key_file)))
            elif credentials is not None:
                pseudonymizer = credentials.pseudonymizer()
        except PseudonymKeyError as exc:
            raise click.BadParameter(str(exc), param_hint="--pseudonym-key-file") from None
        if otlp is None or pseudonymizer is None:
            _say("no Collector endpoint or pseudonym key: the simulated server side is skipped")
    return Target(
        gateway_url, ingest, admin, otlp, pseudonymizer, info.country_header if info else None
    )


def _run(scenario: Scenario, target: Target, options: RunOptions) -> SimulationSummary:
    from caret_otel.simulator.progress import BarProgress
    from caret_otel.simulator.run import provider_calls_to_replay, run_simulation
    from caret_otel.simulator.sender import DeliveryError

    calls = 0
    if options.server_side and target.otlp_endpoint and target.pseudonymizer:
        calls = len(provider_calls_to_replay(scenario, options.provider_call_share))
    try:
        with BarProgress(scenario.event_count, calls, _err) as progress:
            return run_simulation(scenario, target, options, progress)
    except DeliveryError as exc:
        _fail(f"the gateway refused the traffic: {exc}")


def _print_summary(summary: SimulationSummary) -> None:
    table = Table(title="simulation", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = f"{summary.events_per_second:,.0f} events/s"
    rows = [
        (
            "client events sent",
            f"{summary.events_sent:,} in {summary.requests:,} requests ({rate})",
        ),
        ("accepted", f"{summary.accepted:,}"),
        (
            "dropped: user opted out",
            f"{summary.opted_out:,} (expected {summary.expected_opted_out:,})",
        ),
        ("rejected", f"{summary.rejected:,} (expected {summary.expected_rejected:,})"),
        ("attributes dropped", f"{summary.dropped_attributes:,}"),
        (
            "request latency p50/p99",
            f"{summary.request_p50_ms:.1f} / {summary.request_p99_ms:.1f} ms",
        ),
        ("billing events (SDK)", f"{summary.billing_events:,}"),
        (
            "provider calls (GenAI)",
            f"{summary.provider_calls:,} ({summary.provider_errors:,} errors)",
        ),
        (
            "deletion requests",
            f"{summary.deletion_requests} ({summary.deleted_rows:,} rows removed)",
        ),
        ("rows raw.events must hold", f"{summary.expected_stored_events:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    _out.print(table)
    if not summary.as_expected:
        _out.print(
            "[yellow]warning:[/yellow] the gateway's opt-out drops or rejections differ from "
            "what the simulator planted (consent left over from an earlier run on this stack?)"
        )


# --- replay -----------------------------------------------------------------------------------
@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
@click.option("--endpoint", metavar="URL", default=None,
              help="Gateway base URL [default: the running stack's].")  # fmt: skip
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File with the ingest token [default: the running stack's].")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--country", metavar="CC", default=None,
              help="Value of the trusted country header for every request (e.g. KR).")  # fmt: skip
def replay(
    file: Path,
    data_dir: Path,
    endpoint: str | None,
    token_file: Path | None,
    batch_size: int,
    concurrency: int,
    country: str | None,
) -> None:
    """Post a JSON-lines file of client events (one event object per line) to a gateway.

    Each user's events keep their order in the file. Endpoint and token come from the
    flags or from the stack running in --data-dir.

    \b
    Examples:
      caret-otel replay events.jsonl                       # to `caret-otel up`
      caret-otel replay events.jsonl --country KR --batch-size 100
      caret-otel replay events.jsonl --endpoint https://gw.example --token-file token
    """
    from caret_otel.simulator.progress import BarProgress
    from caret_otel.simulator.replay import ReplayFileError, batches, read_events
    from caret_otel.simulator.replay import replay as replay_batches
    from caret_otel.simulator.sender import DeliveryError, GatewayClient

    info = _stack_or_none(data_dir, needed=endpoint is None or token_file is None)
    url = endpoint or (info.gateway_url if info else "")
    token = (
        _read_token(token_file, "--token-file")
        if token_file is not None
        else info.credentials.ingest_token  # type: ignore[union-attr]
    )
    try:
        work = batches(read_events(file), batch_size, country)
    except ReplayFileError as exc:
        _fail(str(exc))
    total = sum(batch.size for batch in work)
    client = GatewayClient(
        url,
        token,
        concurrency=concurrency,
        country_header=info.country_header if info else None,
    )
    try:
        with BarProgress(total, 0, _err) as progress:
            stats = replay_batches(client, work, progress.events_sent)
    except DeliveryError as exc:
        _fail(f"the gateway refused the traffic: {exc}")
    _out.print(
        f"sent {stats.events_sent:,} events in {stats.requests:,} requests: "
        f"{stats.accepted:,} accepted, {stats.rejected:,} rejected, "
        f"{stats.opted_out:,} dropped (opted out), {stats.dropped_attributes:,} attributes dropped"
    )
    for field_name, count in stats.rejected_by_field.most_common(10):
        _out.print(f"  rejected for {escape(field_name)}: {count:,}")


# --- demo -------------------------------------------------------------------------------------
PROMETHEUS_EXAMPLES = (
    "sum by (gen_ai_provider_name) (rate(gen_ai_client_operation_duration_seconds_count[5m]))",
    "histogram_quantile(0.99, sum by (le, gen_ai_request_model) "
    "(rate(gen_ai_client_operation_duration_seconds_bucket[5m])))",
    "sum by (caret_feature_name) (caret_feature_uses_total)",
)


@click.command("demo")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEMO_DATA_DIR, show_default=True,
              help="Folder of the demo stack (emptied first unless --keep-data).")  # fmt: skip
@click.option("--users", type=click.IntRange(1, 100_000), default=DEMO_USERS, show_default=True)
@click.option("--days", type=click.IntRange(1, 29), default=DEMO_DAYS, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--keep-data", is_flag=True, help="Reuse the folder's data from an earlier demo.")
@click.option("--timeout", type=click.FloatRange(min=10), default=300.0, show_default=True,
              help="Seconds to wait for the business tables to catch up.")  # fmt: skip
def demo(data_dir: Path, users: int, days: int, seed: int, keep_data: bool, timeout: float) -> None:
    """The whole pipeline on embedded defaults: start the stack, send simulated traffic,
    wait until PostgreSQL has caught up, print the analyst report and a summary, stop.

    \b
    Examples:
      caret-otel demo                        # about a minute on a 2-core machine
      caret-otel demo --users 500 --days 28  # more history
      make demo                              # venv, Collector build, Prometheus, then this
    """
    from caret_otel.simulator.experiments import DEMO_EXPERIMENT
    from caret_otel.simulator.run import RunOptions
    from caret_otel.simulator.scenario import ScenarioSettings, build_scenario

    if not keep_data:
        _empty_demo_dir(data_dir)
    stack = LocalStack(data_dir, fsync=False, say=_say)
    code = 0
    try:
        with _sigterm_stops():
            try:
                info = stack.start()
            except StackStartError as exc:
                _fail(str(exc))
            _say(
                f"stack ready: gateway {info.gateway_url}, prometheus {info.prometheus_url or '-'}"
            )
            for warning in stack.warnings:
                _err.print(f"[yellow]warning:[/yellow] {escape(warning)}")
            with _err.status("generating traffic..."):
                scenario = build_scenario(
                    ScenarioSettings(users, days, seed, experiment=DEMO_EXPERIMENT)
                )
            target = _target(info, None, None, None, None, None, server_side=True)
            options = RunOptions(provider_call_share=DEMO_PROVIDER_CALL_SHARE)
            summary = _run(scenario, target, options)
            _print_summary(summary)
            code = _demo_results(info, scenario, summary, timeout)
    except (KeyboardInterrupt, Terminated):
        _say("interrupted")
        code = 130
    finally:
        with _signals_ignored():
            stack.stop()
    if code:
        raise SystemExit(code)
    _say("demo finished; the stack is stopped")


def _empty_demo_dir(data_dir: Path) -> None:
    """Remove an earlier demo's folder - only one that a stack made and none still runs."""
    if not data_dir.exists():
        return
    if not (data_dir / LOCK_FILE).exists() and any(data_dir.iterdir()):
        _fail(f"{data_dir} is not empty and was not made by caret-otel; choose another --data-dir")
    with contextlib.suppress(StackNotRunningError):
        info = read_stack_info(data_dir)
        _fail(f"a stack is running in {data_dir} (pid {info.pid}); stop it first")
    shutil.rmtree(data_dir)


def _demo_results(
    info: StackInfo, scenario: Scenario, summary: SimulationSummary, timeout: float
) -> int:
    from caret_otel.cli.exporter import report
    from caret_otel.exporters.postgres.retention import run_retention
    from caret_otel.stack.catchup import CatchUpTimeout, wait_for_catch_up

    expected = summary.expected_stored_events
    dsn = info.database.superuser_dsn()
    try:
        with _err.status("waiting for the business tables to catch up...") as status:
            caught = wait_for_catch_up(
                dsn,
                expected,
                timeout_s=timeout,
                on_poll=lambda stored, pending: status.update(
                    f"waiting for the business tables: raw.events {stored:,}/{expected:,}, "
                    f"{pending:,} event(s) waiting for the rollups"
                ),
            )
    except CatchUpTimeout as exc:
        _err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        return 1
    # The exporter rebuilds the anonymised monthly trends hourly; the demo does not wait.
    run_retention(dsn)
    click.get_current_context().invoke(
        report,
        start=scenario.window_start.date(),
        end=datetime.now(UTC).date(),
        tables=(),
        output="table",
        output_dir=None,
        database_url=info.database.analyst_dsn(),
        data_dir=None,
    )
    _print_experiment(info)
    from caret_otel.cli.behaviour import print_demo_behaviour

    print_demo_behaviour(
        info.database.analyst_dsn(),
        scenario.window_start,
        datetime.now(UTC),
        writer_dsn=info.database.writer_dsn(),
    )
    genai_series = _prometheus_series(info)
    table = Table(title="demo summary", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("events sent / accepted", f"{summary.events_sent:,} / {summary.accepted:,}")
    table.add_row("dropped (opted out)", f"{summary.opted_out:,}")
    table.add_row("billing events (SDK)", f"{summary.billing_events:,}")
    table.add_row("stored in raw.events", f"{caught.stored_events:,} (expected {expected:,})")
    lag = caught.lag_since(summary.client_finished_unix)
    table.add_row("pipeline lag", f"{lag:.1f} s (last client event sent -> tables complete)")
    table.add_row("GenAI series in Prometheus", genai_series)
    _out.print(table)
    if info.prometheus_url:
        _out.print("Queries to try in Prometheus (caret-otel up keeps it running):")
        for query in PROMETHEUS_EXAMPLES:
            _out.print(f"  {escape(query)}")
    if caught.stored_events != expected:
        _err.print(
            f"[bold red]error:[/bold red] raw.events holds {caught.stored_events:,} rows, "
            f"expected {expected:,}"
        )
        return 1
    return 0


def _print_experiment(info: StackInfo) -> None:
    """The simulated experiment's result (docs/experiments.md), as `experiments analyze`."""
    from caret_otel.cli.experiments import analyze
    from caret_otel.simulator.experiments import DEMO_EXPERIMENT

    click.get_current_context().invoke(
        analyze, key=DEMO_EXPERIMENT, directory=None, output="table", no_cuped=False,
        database_url=info.database.analyst_dsn(), data_dir=None,
    )  # fmt: skip


def _prometheus_series(info: StackInfo) -> str:
    if not info.prometheus_url:
        return "Prometheus is not running"
    from caret_otel.stack.prometheus import PrometheusQueryError, wait_for_query

    query = "count(gen_ai_client_operation_duration_seconds_count)"
    try:
        result = wait_for_query(info.prometheus_url, query, timeout=60.0)
    except (PrometheusQueryError, TimeoutError) as exc:
        return f"none yet ({exc})"
    return f"{result[0]['value'][1]} (gen_ai_client_operation_duration_seconds)"


# --- env --------------------------------------------------------------------------------------
def command_path() -> str:
    """How to call caret-otel as the README does: ``.venv/bin/caret-otel`` from the
    checkout when this is that virtualenv's script, else plain ``caret-otel``."""
    import sys

    script = Path(sys.executable).with_name("caret-otel")
    if script.is_file():
        with contextlib.suppress(ValueError):
            return str(script.relative_to(Path.cwd()))
    return "caret-otel"


def stack_exports(info: StackInfo, *, grafana: bool) -> list[tuple[str, str]]:
    """The variables a service (or a Grafana) needs for the running local stack."""
    from caret_otel.core import environment_variables as names

    credentials = info.credentials
    exports = [
        (names.OTEL_EXPORTER_OTLP_ENDPOINT, info.collector_otlp_http_url),
        (names.CARET_OTEL_PSEUDONYM_KEY_FILE, str(credentials.pseudonym_key_file)),
    ]
    if grafana:
        db = info.database
        exports += [
            (names.CARET_GRAFANA_PROMETHEUS_URL, info.prometheus_url or ""),
            (names.CARET_GRAFANA_POSTGRES_HOST, f"{db.host}:{db.port}"),
            (names.CARET_GRAFANA_POSTGRES_DB, db.dbname),
        ]
    return exports


@click.command("env")
@data_dir_option
@click.option("--grafana", is_flag=True,
              help="Also the datasource variables of grafana/provisioning (Prometheus, "
              "PostgreSQL) and the analyst password, for a Grafana of your own.")  # fmt: skip
def env(data_dir: Path, grafana: bool) -> None:
    """Print shell exports for talking to the running local stack (`caret-otel up`).

    The Collector's OTLP/HTTP endpoint (its port is chosen at start) and the pseudonym
    key file the stack's gateway uses, so a service's telemetry pseudonymises users as
    the gateway does. Secrets are referenced by file, or read with $(cat FILE), never
    printed.

    \b
    Examples:
      eval "$(caret-otel env)"                       # then run a service using caret_otel.sdk
      eval "$(caret-otel env --grafana)"             # then start Grafana (docs/local-stack.md)
      caret-otel env --data-dir /tmp/stack
    """
    from shlex import quote

    from caret_otel.core import environment_variables as names

    info = _stack_or_none(data_dir, needed=True)
    assert info is not None
    for name, value in stack_exports(info, grafana=grafana):
        click.echo(f"export {name}={quote(value)}")
    if grafana:
        password_file = info.database.analyst_password_file
        if password_file:
            click.echo(f'export {names.CARET_ANALYST_PASSWORD}="$(cat {quote(password_file)})"')
        if not info.prometheus_url:
            click.echo("# Prometheus is not running: the Prometheus panels stay empty", err=True)
