"""Helpers of the exporter's integration tests: building events, loading them through the
real decode/load/rollup path, dumping tables, and running the real HTTP server."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

import httpx
import psycopg
import uvicorn
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.exporters.postgres import rollup
from caret_otel.exporters.postgres.app import create_app
from caret_otel.exporters.postgres.config import ExporterSettings
from caret_otel.exporters.postgres.event_rows import AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import Loader
from caret_otel.exporters.postgres.service import ExporterService
from caret_otel.otlp.build import AttributeValue, event_record, logs_request
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv.events import EventSpec
from caret_otel.stack.ports import free_port

KEY_ENTRIES = (
    "1:"
    + base64.b64encode(b"old-key-" * 4).decode()
    + ",2:"
    + base64.b64encode(b"new-key-" * 4).decode()
)
PSEUDONYMIZER = Pseudonymizer(parse_keys(KEY_ENTRIES, source="tests"))
SCHEMAS = ("raw", "core", "agg", "trends", "privacy", "meta")


def pseudonym(name: str) -> str:
    return PSEUDONYMIZER.pseudonymize(name)


def at(day: date, hh_mm: str) -> datetime:
    hour, minute = map(int, hh_mm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


_ids = count(1)


def event(
    user: str | None,
    when: datetime,
    spec: EventSpec,
    attributes: dict[str, AttributeValue] | None = None,
) -> LogRecord:
    """A business event of ``user`` (a name, pseudonymized here) with a unique event id;
    ``attributes`` keys are registry constants."""
    values: dict[str, AttributeValue] = {attrs.CARET_EVENT_ID: f"ev-{next(_ids):06d}"}
    if user is not None:
        values[attrs.ENDUSER_PSEUDO_ID] = pseudonym(user)
    values.update(attributes or {})
    return event_record(spec.name, when, values)


def load(url: str, records: Sequence[LogRecord], *, now: datetime, batch: int = 1000) -> None:
    """Store ``records`` through the real decode, load and rollup path, ``batch`` per
    request."""
    builder = EventRowBuilder(AcceptWindow.at(now, 30))
    loader = Loader()
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(0, len(records), batch):
            decoded = builder.decode(logs_request(records[start : start + batch]))
            assert decoded.refusals.total == 0, decoded.refusals.summary()
            loader.store_events(conn, decoded.rows)
            rollup.roll_up(conn)  # after every batch: the rollups grow incrementally


def tables(url: str, schemas: Iterable[str] = SCHEMAS) -> list[str]:
    """Every table of ``schemas`` (partitioned parents, not their partitions)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
               ORDER BY 1""",
            (list(schemas),),
        ).fetchall()
    return [r[0] for r in rows]


def dump(
    url: str, names: Iterable[str] | None = None, *, skip_columns: Sequence[str] = ()
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sorted), for comparing whole databases."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(url) as conn:
        for name in names if names is not None else tables(url):
            cur = conn.execute(f"SELECT * FROM {name}")
            keep = [i for i, d in enumerate(cur.description or ()) if d.name not in skip_columns]
            out[name] = sorted((tuple(row[i] for i in keep) for row in cur.fetchall()), key=repr)
    return out


def query(
    url: str, sql: str, params: Any = None, *, as_of: date | None = None
) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        if as_of is not None:
            conn.execute("SELECT set_config('caret.as_of', %s, false)", (as_of.isoformat(),))
        return conn.execute(sql, params).fetchall()


@dataclass
class RunningExporter:
    url: str
    service: ExporterService
    server: uvicorn.Server
    thread: threading.Thread

    def post(
        self, path: str, body: bytes, content_type: str = "application/x-protobuf", **headers: str
    ) -> httpx.Response:
        return httpx.post(
            self.url + path,
            content=body,
            headers={"Content-Type": content_type, **headers},
            timeout=30,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)


@contextmanager
def running_exporter(
    database_url: str,
    *,
    now: datetime | None = None,
    db_timeout: float = 2.0,
    wait_ready: bool = True,
) -> Iterator[RunningExporter]:
    """The real exporter app under uvicorn on a free port, in a thread."""
    settings = ExporterSettings(
        database_url=database_url, db_timeout=db_timeout, retry_after=1, rollup_interval=0.2
    )
    service = ExporterService(settings, clock=_clock(now))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="exporter-under-test", daemon=True)
    thread.start()
    running = RunningExporter(f"http://127.0.0.1:{port}", service, server, thread)
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "exporter did not start"
        time.sleep(0.02)
    if wait_ready:
        while running.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "exporter did not become ready"
            time.sleep(0.05)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _clock(now: datetime | None) -> Any:
    if now is None:
        return lambda: datetime.now(UTC)
    return lambda: now


def wait_rolled_up(url: str, timeout: float = 20.0) -> None:
    """Until the exporter's maintenance loop has folded every stored event in."""
    deadline = time.monotonic() + timeout
    while query(url, "SELECT count(*) FROM raw.rollup_batches")[0][0]:
        assert time.monotonic() < deadline, "rollup queue did not drain"
        time.sleep(0.1)


DAY = timedelta(days=1)
