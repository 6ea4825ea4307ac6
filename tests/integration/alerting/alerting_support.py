"""A webhook receiver for the alerting tests: a tiny HTTP server on 127.0.0.1 that keeps
every JSON body Alertmanager posts to it (``/page``, ``/chat``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from caret_otel.stack.ports import LOOPBACK


@dataclass(frozen=True)
class Notification:
    path: str
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return list(self.body.get("alerts", []))

    def alertnames(self) -> set[str]:
        return {a["labels"].get("alertname", "") for a in self.alerts}


class WebhookReceiver:
    """``with WebhookReceiver() as hook:`` - ``hook.url("/page")``, ``hook.wait_for(...)``."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.notifications.append(Notification(self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def wait_for(
        self, match: Callable[[Notification], bool], *, timeout: float, what: str
    ) -> Notification:
        deadline = time.monotonic() + timeout
        while True:
            found = next((n for n in self.received() if match(n)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                seen = [(n.path, n.status, sorted(n.alertnames())) for n in self.received()]
                raise TimeoutError(f"no {what} within {timeout:.0f}s; received: {seen}")
            time.sleep(0.2)
