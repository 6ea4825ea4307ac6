"""Serving the gateway with uvicorn (httptools, uvloop), in the foreground or a thread.

``serve`` is what ``caret-otel gateway`` runs. :class:`BackgroundServer` runs the same
app on a loopback port in a thread of the current process, for tests and tools that
need a real HTTP gateway next to their own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Iterator

import uvicorn

from caret_otel.receivers.gateway.app import create_app
from caret_otel.receivers.gateway.runtime import Gateway

LOOPBACK = "127.0.0.1"


def uvicorn_config(
    gateway: Gateway, host: str, port: int, *, log_level: str = "info"
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(gateway),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=log_level,
        access_log=False,  # request metrics replace it; an access log line costs ~20 µs
        server_header=False,
        proxy_headers=False,  # the client IP is never used, so never trusted either
        timeout_graceful_shutdown=math.ceil(gateway.config.otlp.timeout_s),
    )


def serve(gateway: Gateway, host: str, port: int, *, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM; queued data is flushed to the Collector on the way out."""
    uvicorn.Server(uvicorn_config(gateway, host, port, log_level=log_level)).run()


class BackgroundServer:
    """The gateway on ``127.0.0.1:<port>`` in a daemon thread (``with`` starts and stops it)."""

    def __init__(self, gateway: Gateway, port: int, *, log_level: str = "warning") -> None:
        self.gateway = gateway
        self.port = port
        self._server = uvicorn.Server(uvicorn_config(gateway, LOOPBACK, port, log_level=log_level))
        self._thread = threading.Thread(target=self._run, name=f"gateway-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self, timeout_s: float = 15.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)

    @contextlib.contextmanager
    def running(self) -> Iterator[BackgroundServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
