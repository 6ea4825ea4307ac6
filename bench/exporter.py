"""Benchmark: the business exporter's load path against a raw COPY of the same rows.

    .venv/bin/python bench/exporter.py              # ~1-2 minutes; rewrites its section of docs/benchmarks.md
    .venv/bin/python bench/exporter.py --no-write   # print only
    .venv/bin/python bench/exporter.py --database-url postgresql://...   # an existing, empty database

What is measured, in one PostgreSQL (embedded, default settings: fsync on) and one run:

* **our load path**: for each OTLP/HTTP request body the Collector would send (protobuf,
  zstd, 1,000 business events): inflate, decode (the compiled scanner), privacy pass and
  row mapping (``EventRowBuilder.decode_serialized``), then ``Loader.store_events`` -
  one transaction per request that takes the deletion lock, reads recent deletions and
  COPYs the rows straight into the day-partitioned ``raw.events``, whose trigger queues
  their keys for the rollup (a request holding a stored row falls back to the staging
  table and ``INSERT … ON CONFLICT DO NOTHING``). HTTP framing is left out (it is the
  same for any server).
* **raw COPY** (the baseline): the very rows our path produced, already built as Python
  tuples, COPYed with psycopg in the same 1,000-row transactions into a table with the
  same columns, primary key and index as ``raw.events`` (``LIKE raw.events INCLUDING
  ALL``); and, for context, into the same table without any index.
* **redelivery**: the same requests sent again (every row a duplicate: the COPY fails
  on the first one and the request takes the staging path).
* **rollup**: folding the stored events into ``core.users`` and every daily rollup.

Each round truncates the tables and runs every variant; the order alternates between
rounds and the median of the rounds is reported. Ratios are within the same run.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import zstandard
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from psycopg import sql
from psycopg_pool import ConnectionPool

from caret_otel.exporters.postgres import rollup
from caret_otel.exporters.postgres.event_rows import EVENT_COLUMNS, AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import Loader
from caret_otel.exporters.postgres.schema import migrate
from caret_otel.otlp import body as otlp_body
from caret_otel.otlp.build import event_record, logs_request
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev
from caret_otel.stack import PostgresServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchreport

BENCH_NAME = "exporter"
BATCH = 1_000
CONCURRENCY = 4
CHUNK = 5
"""Requests per interleaving step."""
ALL_TABLES = (
    "raw.events", "raw.rollup_batches", "core.users", "agg.user_daily_activity",
    "agg.user_daily_region", "agg.user_daily_language", "agg.user_daily_feature",
    "agg.user_daily_usage", "agg.sessions", "agg.model_latency_daily",
)  # fmt: skip
"""Requests in flight, as the exporter's default pool size (the Collector sends with
several consumers)."""
KINDS = [
    (ev.CARET_TASK_TOKENS, 5),
    (ev.CARET_TASK_CREATED, 1),
    (ev.CARET_TASK_COMPLETED, 1),
    (ev.CARET_TASK_TOOL_USED, 2),
    (ev.CARET_TASK_CONVERSATION_TURN, 2),
    (ev.CARET_TASK_PROVIDER_API_ERROR, 1),
    (ev.CARET_UI_MODEL_SELECTED, 1),
]
MODELS = [("anthropic", "claude-sonnet-4"), ("openai", "gpt-5"), ("gcp.gemini", "gemini-2.5-pro")]
PLACES = [("KR", "AS", "ko"), ("US", "NA", "en"), ("DE", "EU", "de"), ("JP", "AS", "ja")]


def make_events(count: int, users: int, now: datetime, seed: int = 11) -> list[LogRecord]:
    """``count`` realistic business events (~17 attributes each, as the gateway sends)."""
    rng = random.Random(seed)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    pseudonyms = Pseudonymizer(parse_keys(f"1:{key}", source="bench"))
    people = [pseudonyms.pseudonymize(f"user-{n}") for n in range(users)]
    sessions = [pseudonyms.pseudonymize(f"session-{n}") for n in range(users)]
    specs = [spec for spec, weight in KINDS for _ in range(weight)]
    records = []
    for n in range(count):
        who = rng.randrange(users)
        spec = rng.choice(specs)
        provider, model = rng.choice(MODELS)
        country, continent, language = PLACES[who % len(PLACES)]
        values: dict[str, Any] = {
            attrs.CARET_EVENT_ID: f"{n:012d}-{secrets.token_hex(8)}",
            attrs.CARET_EVENT_CLIENT_TYPE: spec.client_event or "",
            attrs.ENDUSER_PSEUDO_ID: people[who],
            attrs.SESSION_ID: sessions[who],
            attrs.CARET_CLIENT_VERSION: "1.4.2",
            attrs.CARET_CLIENT_PLATFORM: "vscode",
            attrs.CARET_CLIENT_LANGUAGE: language,
            attrs.GEO_COUNTRY_ISO_CODE: country,
            attrs.GEO_CONTINENT_CODE: continent,
            attrs.CARET_PLAN_NAME: "pro" if who % 5 == 0 else "free",
            attrs.OS_TYPE: "linux",
            attrs.GEN_AI_PROVIDER_NAME: provider,
            attrs.GEN_AI_REQUEST_MODEL: model,
        }
        if spec is ev.CARET_TASK_TOKENS:
            values[attrs.GEN_AI_USAGE_INPUT_TOKENS] = rng.randrange(100, 20_000)
            values[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = rng.randrange(10, 4_000)
            values[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = rng.randrange(0, 10_000)
            values[attrs.CARET_CREDITS_AMOUNT] = rng.randrange(1, 400) / 10
            values[attrs.CARET_API_DURATION] = rng.randrange(200, 30_000) / 1000
            values[attrs.CARET_API_COST] = rng.randrange(1, 900) / 1000
        elif spec is ev.CARET_TASK_PROVIDER_API_ERROR:
            values[attrs.ERROR_TYPE] = rng.choice(["timeout", "429", "500"])
        elif spec is ev.CARET_TASK_TOOL_USED:
            values[attrs.GEN_AI_TOOL_NAME] = rng.choice(["read_file", "execute_command"])
        when = now - timedelta(seconds=rng.randrange(0, 36 * 3600))
        records.append(event_record(spec.name, when, values))
    return records


@dataclass
class Round:
    """Seconds each variant took for all the events of one round."""

    ours: float
    ours_sequential: float
    copy_indexed: float
    copy_sequential_pass: float
    copy_bare: float
    redelivery: float
    rollup: float
    ours_sequential_cpu: float
    """CPU seconds of the exporter's own process (decoding, row building, COPY
    formatting) in the one-at-a-time pass; the rest of the wall time is PostgreSQL."""
    copy_sequential_cpu: float

    @property
    def ratio(self) -> float:
        return self.copy_indexed / self.ours

    @property
    def ratio_sequential(self) -> float:
        return self.copy_sequential_pass / self.ours_sequential


def zstd(body: bytes) -> bytes:
    """Compressed as the Collector's zstd encoder streams it (default level, no content
    size in the frame header)."""
    stream = zstandard.ZstdCompressor(level=3).compressobj()
    return stream.compress(body) + stream.flush()


def rows_of(builder: EventRowBuilder, body: bytes) -> list[tuple[Any, ...]]:
    """What the exporter does with a protobuf request body before it stores it: inflate
    (the HTTP layer), then read the records straight from the bytes (the service)."""
    return builder.decode_serialized(
        otlp_body.inflate(body, "zstd", max_bytes=otlp_body.MAX_INFLATED_BYTES)
    ).rows


def _with_connection(
    pool: ConnectionPool[psycopg.Connection[Any]],
    work: Callable[[Loader, psycopg.Connection[Any], bytes], None],
    loader: Loader,
    body: bytes,
) -> None:
    with pool.connection() as connection:
        work(loader, connection, body)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def cpu_timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``action``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(database_url: str, total: int, users: int, rounds: int) -> tuple[list[Round], int]:
    now = datetime.now(UTC)
    records = make_events(total, users, now)
    bodies = [
        zstd(logs_request(records[i : i + BATCH]).SerializeToString())
        for i in range(0, total, BATCH)
    ]
    window = AcceptWindow.at(now, 30)
    builder = EventRowBuilder(window)
    row_batches = [rows_of(builder, b) for b in bodies]
    rows = sum(len(b) for b in row_batches)
    assert rows == total, "every generated event must be accepted"
    del records
    # The inputs (hundreds of thousands of objects) would otherwise be traversed by every
    # full garbage collection the measured code triggers - a cost the exporter's process,
    # which holds no such heap, does not pay.
    gc.collect()
    gc.freeze()
    columns = sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS))

    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        database_url, min_size=CONCURRENCY, max_size=CONCURRENCY, kwargs={"autocommit": True}
    )
    with (
        pool,
        ThreadPoolExecutor(max_workers=CONCURRENCY) as workers,
        psycopg.connect(database_url, autocommit=True) as conn,
    ):
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench.copy_indexed (LIKE raw.events INCLUDING ALL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench.copy_bare"
            " (LIKE raw.events INCLUDING DEFAULTS INCLUDING GENERATED)"
        )

        def copy_into(table: str, chunk: list[int]) -> None:
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.SQL(table), columns)
            for index in chunk:
                with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                    for row in row_batches[index]:
                        copy.write_row(row)

        def handle(loader: Loader, connection: psycopg.Connection[Any], body: bytes) -> None:
            # what the exporter does with one request body (HTTP framing aside)
            loader.store_events(connection, rows_of(EventRowBuilder(window), body))

        def load(loader: Loader, chunk: list[int]) -> None:
            for index in chunk:
                handle(loader, conn, bodies[index])

        def load_concurrently(loader: Loader, chunk: list[int]) -> None:
            # as deployed: requests in parallel on the server's worker threads, each with
            # a pooled connection (the Collector sends with several consumers)
            futures = [
                workers.submit(_with_connection, pool, handle, loader, bodies[i]) for i in chunk
            ]
            for future in futures:
                future.result()

        def interleaved(steps: dict[str, Callable[[list[int]], object]]) -> dict[str, float]:
            """Run the steps chunk by chunk, rotating their order, so that a burst of
            load from elsewhere on the machine hits every step alike. Wall seconds per
            step, and this process's CPU seconds as ``<name>_cpu``."""
            seconds = dict.fromkeys([*steps, *(f"{n}_cpu" for n in steps)], 0.0)
            names = list(steps)
            for number, start in enumerate(range(0, len(bodies), CHUNK)):
                chunk = list(range(start, min(start + CHUNK, len(bodies))))
                shift = number % len(names)
                for name in names[shift:] + names[:shift]:
                    wall, cpu = cpu_timed(lambda name=name, chunk=chunk: steps[name](chunk))
                    seconds[name] += wall
                    seconds[f"{name}_cpu"] += cpu
            return seconds

        def reset(*tables: str) -> None:
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.SQL, tables))))
            conn.execute("CHECKPOINT")

        everything = list(range(len(bodies)))
        results: list[Round] = []
        for number in range(rounds):
            reset(*ALL_TABLES, "bench.copy_indexed", "bench.copy_bare")
            loader = Loader()
            seconds = interleaved(
                {
                    "copy_indexed": lambda chunk: copy_into("bench.copy_indexed", chunk),
                    "ours": lambda chunk, loader=loader: load_concurrently(loader, chunk),
                    "copy_bare": lambda chunk: copy_into("bench.copy_bare", chunk),
                }
            )
            stored = conn.execute("SELECT count(*) FROM raw.events").fetchone()
            assert stored is not None
            assert stored[0] == total, "every event must be stored"
            seconds["redelivery"] = timed(lambda loader=loader: load(loader, everything))
            seconds["rollup"] = timed(lambda: rollup.roll_up(conn))
            reset("raw.events", "raw.rollup_batches", "bench.copy_indexed")
            fresh = Loader()
            sequential = interleaved(
                {
                    "copy": lambda chunk: copy_into("bench.copy_indexed", chunk),
                    "ours": lambda chunk, loader=fresh: load(loader, chunk),
                }
            )
            result = Round(
                ours=seconds["ours"],
                ours_sequential=sequential["ours"],
                copy_indexed=seconds["copy_indexed"],
                copy_sequential_pass=sequential["copy"],
                ours_sequential_cpu=sequential["ours_cpu"],
                copy_sequential_cpu=sequential["copy_cpu"],
                copy_bare=seconds["copy_bare"],
                redelivery=seconds["redelivery"],
                rollup=seconds["rollup"],
            )
            results.append(result)
            print(
                f"round {number + 1}: ours {total / result.ours:,.0f} rows/s "
                f"vs COPY {total / result.copy_indexed:,.0f} ({result.ratio:.0%}); "
                f"one request at a time {total / result.ours_sequential:,.0f} "
                f"vs COPY {total / result.copy_sequential_pass:,.0f} "
                f"({result.ratio_sequential:.0%}); "
                f"COPY bare {total / result.copy_bare:,.0f}; "
                f"redelivery {total / result.redelivery:,.0f} rows/s; "
                f"rollup {total / result.rollup:,.0f} events/s",
                flush=True,
            )
    return results, total


def report(results: list[Round], total: int, load: tuple[float, float]) -> str:
    def rate(attr: str) -> float:
        return total / statistics.median(getattr(r, attr) for r in results)

    def median_ratio(numerator: str, denominator: str = "copy_indexed") -> float:
        return statistics.median(getattr(r, denominator) / getattr(r, numerator) for r in results)

    ratio = statistics.median(r.ratio for r in results)
    ratio_sequential = statistics.median(r.ratio_sequential for r in results)
    spread = f"{min(r.ratio for r in results):.0%} to {max(r.ratio for r in results):.0%}"
    end_to_end = statistics.median(r.copy_indexed / (r.ours + r.rollup) for r in results)

    def per_row(values: list[float]) -> float:
        return statistics.median(values) / total * 1e6

    ours_cpu = per_row([r.ours_sequential_cpu for r in results])
    ours_wall = per_row([r.ours_sequential for r in results])
    copy_cpu = per_row([r.copy_sequential_cpu for r in results])
    copy_wall = per_row([r.copy_sequential_pass for r in results])
    verdict = "met" if ratio >= 0.40 and ratio_sequential >= 0.40 else "**not met**"
    return f"""## Business exporter load path (`bench/exporter.py`)

{total:,} business events (~17 attributes each, over 36 hours, 2,000 users) in OTLP
requests of {BATCH:,} events (protobuf, zstd), as the Collector's business leg sends them,
into one embedded PostgreSQL 16 with default settings (fsync on). *Our load path* is what
the exporter does per request, HTTP framing aside: inflate, read the records straight from
the protobuf bytes (the compiled scanner), privacy pass and row mapping, then one
transaction that takes the deletion lock, reads recent deletions and `COPY`s the rows
straight into the day-partitioned `raw.events`, whose statement trigger queues their keys
for the rollup (a request holding an already-stored row falls back to a staging table and
`INSERT … ON CONFLICT DO NOTHING`: the *redelivery* line) -
with {CONCURRENCY} requests in flight as deployed (the Collector sends with several
consumers; the exporter's pool has {CONCURRENCY} connections), and one at a time. *Raw
COPY* (the baseline) sends the very same rows, already built as Python tuples, in the same
1,000-row transactions over one connection into a table shaped like `raw.events` (same
primary key and index). The variants run interleaved in steps of {CHUNK} requests (so load
from elsewhere on the machine hits them alike); ratios are per round, median of
{len(results)} rounds. The machine's load average was {load[0]:.1f} at the start and
{load[1]:.1f} at the end (2 cores, shared with other work).

| path | rows/s (median) | ratio to raw COPY |
|---|---|---|
| raw COPY into a `raw.events`-shaped table (same PK and index) - baseline | {rate("copy_indexed"):,.0f} | 1.00 |
| **our load path, {CONCURRENCY} requests in flight** (OTLP bytes in, idempotent insert) | **{rate("ours"):,.0f}** | **{ratio:.2f}** |
| our load path, one request at a time | {rate("ours_sequential"):,.0f} | {ratio_sequential:.2f} |
| raw COPY into the same table without indexes (context) | {rate("copy_bare"):,.0f} | {median_ratio("copy_bare"):.2f} |
| redelivery of the same requests, one at a time (every row a duplicate) | {rate("redelivery"):,.0f} | {median_ratio("redelivery"):.2f} |
| rollup (users and every daily rollup; events/s) | {rate("rollup"):,.0f} | {median_ratio("rollup"):.2f} |
| load and rollup together | - | {end_to_end:.2f} |

Where the time goes, one request at a time (median µs per row): our load path
{ours_wall:.1f} µs, of which {ours_cpu:.1f} µs is the exporter's own CPU (zstd, the
scanner, privacy pass and row building, COPY formatting) and {ours_wall - ours_cpu:.1f} µs
PostgreSQL (lock and deletions lookup, COPY with partition routing, the rollup-queue
trigger, commit); raw COPY {copy_wall:.1f} µs, of which {copy_cpu:.1f} µs in Python and
{copy_wall - copy_cpu:.1f} µs PostgreSQL.

Target: our load path at ≥ 40 % of raw COPY for the same rows — {verdict} here:
**{ratio:.0%}** with requests in flight as deployed (rounds ranged {spread}),
{ratio_sequential:.0%} one request at a time. What we add per row is the exporter's own
decoding ({ours_cpu - copy_cpu:.1f} µs more CPU than the baseline's formatting: it starts
from ready tuples) and {(ours_wall - ours_cpu) - (copy_wall - copy_cpu):.1f} µs more in
PostgreSQL (the deletion lock and lookup, partition routing, the rollup-queue trigger).
Requests in flight overlap decoding with PostgreSQL only when a core is free, which on a
shared two-core machine is seldom the case. Before the compiled scanner, the fast
paths and the straight COPY, this benchmark gave 30 % (OTLP attributes read through
protobuf objects, ~21 µs of exporter CPU per row, and every batch through the staging
table). The rollup runs in the exporter's background loop, not in the request's
transaction; its queue depth and lag are the `caret_exporter_rollup_*` metrics."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="an existing, empty database (default: embedded PostgreSQL)"
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-write", action="store_true", help="print, do not update docs/benchmarks.md"
    )
    args = parser.parse_args()

    server: PostgresServer | None = None
    root: Path | None = None
    url = args.database_url
    if url is None:
        root = Path(tempfile.mkdtemp(prefix="caret-bench-exporter-"))
        root.chmod(0o755)
        server = PostgresServer(root / "data", log_path=root / "postgres.log")
        print("starting an embedded PostgreSQL ...", flush=True)
        server.start()
        url = server.create_database("bench_exporter")
    try:
        migrate(url)
        load_before = os.getloadavg()[0]
        results, total = run(url, args.events, args.users, args.rounds)
        load_after = os.getloadavg()[0]
    finally:
        if server is not None:
            server.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    text = report(results, total, (load_before, load_after))
    print(text)
    if not args.no_write:
        benchreport.write_section(BENCH_NAME, text)
        print(f"wrote {benchreport.BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
