"""A private Prometheus server (Debian's 2.42) and small HTTP-API helpers.

Prometheus is the metrics store of the stack: the Collector pushes to it with remote
write (``--web.enable-remote-write-receiver``; 2.42 has no OTLP receiver). It listens
on 127.0.0.1 only and keeps its TSDB in a directory we own. ``--web.enable-lifecycle``
is on so rule/config changes can be applied with :meth:`PrometheusServer.reload`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from caret_otel.contracts.checkout import repo_root
from caret_otel.core.environment_variables import CARET_OTEL_PROMETHEUS_BIN
from caret_otel.core.errors import ServiceError
from caret_otel.stack.process import ManagedProcess, ServiceRunner, resolve_executable

INSTALL_HINT = "run `make services` (or: apt-get install -y prometheus)"

#: A minimal config for a remote-write-only Prometheus. The out-of-order window lets
#: samples that arrive late (Collector retries after an outage) still be stored.
MINIMAL_CONFIG = """\
# Written by caret_otel.stack.prometheus: remote-write receiver only, no scraping.
global:
  scrape_interval: 15s
  evaluation_interval: 15s
storage:
  tsdb:
    out_of_order_time_window: 30m
"""


class PrometheusQueryError(ServiceError):
    """The query API answered with an error (bad PromQL, server trouble)."""


def unpacked_binary(name: str) -> Path:
    """Where ``make services`` unpacks Debian's prometheus package when the machine has
    none: ``<checkout>/build/prometheus/usr/bin/<name>`` (``prometheus``, ``promtool``)."""
    return repo_root() / "build" / "prometheus" / "usr" / "bin" / name


def binary_path() -> Path:
    """The ``prometheus`` executable: ``$CARET_OTEL_PROMETHEUS_BIN``, ``PATH``, or the
    copy ``make services`` unpacked into ``build/``."""
    override = os.environ.get(CARET_OTEL_PROMETHEUS_BIN)
    if override is None and shutil.which("prometheus") is None:
        override = str(unpacked_binary("prometheus"))
    return resolve_executable(override or "prometheus", install_hint=INSTALL_HINT)


def write_minimal_config(path: Path, *, extra: str = "") -> Path:
    """Write :data:`MINIMAL_CONFIG` (plus ``extra`` YAML, e.g. ``rule_files``) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MINIMAL_CONFIG + extra)
    return path


def query(
    base_url: str, promql: str, *, at: float | None = None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Run an instant query; return ``data.result`` (one dict per series:
    ``{"metric": {labels}, "value": [ts, "value"]}``).

    Raises :class:`PrometheusQueryError` with Prometheus' own message on failure.
    """
    params: dict[str, str] = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    # A proxy from the environment must not capture our own loopback server.
    local = urlsplit(base_url).hostname in {"127.0.0.1", "localhost", "::1"}
    response = httpx.get(
        f"{base_url.rstrip('/')}/api/v1/query", params=params, timeout=timeout, trust_env=not local
    )
    try:
        body = response.json()
    except ValueError:
        raise PrometheusQueryError(
            f"{promql!r}: HTTP {response.status_code}, not JSON: {response.text[:200]}"
        ) from None
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusQueryError(
            f"{promql!r}: HTTP {response.status_code} {body.get('errorType', '')}: "
            f"{body.get('error', body)}"
        )
    result = body["data"]["result"]
    if body["data"].get("resultType") == "scalar":  # [ts, "value"] -> one pseudo-series
        return [{"metric": {}, "value": result}]
    return list(result)


def wait_for_query(
    base_url: str,
    promql: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool] = bool,
    timeout: float = 30.0,
    interval: float = 0.25,
) -> list[dict[str, Any]]:
    """Poll ``query`` until ``until(result)`` holds (default: non-empty); return the result.

    On timeout the error shows the last result, which usually tells why.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = query(base_url, promql)
        if until(result):
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{promql!r} did not match within {timeout:.0f}s; last: {result}")
        time.sleep(interval)


class PrometheusServer(ServiceRunner):
    """Prometheus with the remote-write receiver, listening on 127.0.0.1:``port``.

    Args:
        data_dir: TSDB directory (created if missing).
        port: listen port; a free one when None.
        config_path: ``--config.file``; when it does not exist, :data:`MINIMAL_CONFIG`
            is written there.
        log_path: server log; defaults to ``<data_dir>/../prometheus.log``.
        retention: ``--storage.tsdb.retention.time``.
        extra_args: more command-line flags.
    """

    service = "prometheus"
    install_hint = INSTALL_HINT

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        config_path: Path | None = None,
        *,
        log_path: Path | None = None,
        retention: str = "15d",
        extra_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> None:
        super().__init__(data_dir, port, log_path=log_path, ready_timeout=ready_timeout)
        self.config_path = (
            Path(config_path).absolute() if config_path else self.data_dir.parent / "prometheus.yml"
        )
        self.retention = retention
        self.extra_args = list(extra_args)

    @property
    def remote_write_url(self) -> str:
        """Where the Collector's ``prometheus_remote_write`` exporter sends samples."""
        return f"{self.base_url}/api/v1/write"

    def _command(self) -> ManagedProcess:
        """Prometheus, ready once ``/-/ready`` answers 200."""
        binary = binary_path()
        if not self.config_path.exists():
            write_minimal_config(self.config_path)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]
        return self._managed(argv, ready=f"{self.base_url}/-/ready")

    def reload(self) -> None:
        """Re-read the config and rule files (``POST /-/reload``)."""
        response = httpx.post(f"{self.base_url}/-/reload", timeout=30.0, trust_env=False)
        if response.status_code != 200:
            raise RuntimeError(f"prometheus reload failed: {response.status_code} {response.text}")

    def query(self, promql: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """:func:`query` against this server."""
        return query(self.base_url, promql, at=at)

    def wait_for(
        self,
        promql: str,
        *,
        until: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """:func:`wait_for_query` against this server."""
        return wait_for_query(self.base_url, promql, until=until, timeout=timeout)
