"""Our OpenTelemetry Collector distribution as a managed process.

``build/otelcol-caret`` is built by ``make collector`` from
``collector/builder-config.yaml``. Two configs run on it:

* ``otel-collector-config.yaml`` (repo root) - the production pipeline. Every
  endpoint is an ``${env:NAME:-default}`` placeholder; :class:`CollectorConfigEnv`
  is the one place in Python that knows those names, so the test-suite, ``caret-otel
  up`` and the docs cannot drift apart (a test compares it with the YAML).
* ``collector/privacy-pass.yaml`` - the Collector's privacy pass, generated from the
  semantic-conventions registry (``caret-otel generate``). The production
  config's pipelines use its processors, so the two files always run together:
  :func:`config_files` adds it whenever the production config is named.
* ``collector/sink-config.yaml`` - the stand-in for Tempo and Loki in tests and the
  local stack: OTLP in, one JSON-lines file per signal out (:class:`SinkConfigEnv`).

Readiness is the ``health_check`` extension answering 200, which it does only once
every pipeline has started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from caret_otel.contracts.checkout import repo_root as repo_root  # public here too
from caret_otel.contracts.collector import (
    CollectorConfigEnv as CollectorConfigEnv,
)
from caret_otel.contracts.collector import (
    ConfigFiles,
    config_files,
)
from caret_otel.contracts.collector import (
    SinkConfigEnv as SinkConfigEnv,
)
from caret_otel.contracts.collector import (
    default_config_path as default_config_path,
)
from caret_otel.contracts.collector import (
    privacy_pass_path as privacy_pass_path,
)
from caret_otel.contracts.collector import (
    sink_config_path as sink_config_path,
)
from caret_otel.core.environment_variables import CARET_OTEL_COLLECTOR_BIN
from caret_otel.core.errors import ServiceError
from caret_otel.stack.ports import LOOPBACK
from caret_otel.stack.process import ManagedProcess, MissingBinaryError

INSTALL_HINT = "build it with: make collector"


def _config_flags(config: ConfigFiles) -> list[str]:
    return [f"--config={path}" for path in config_files(config)]


class CollectorConfigError(ServiceError):
    """``otelcol-caret validate`` rejected a config; the message has its output."""


def binary_path() -> Path:
    """Our Collector binary: ``$CARET_OTEL_COLLECTOR_BIN`` or ``<repo>/build/otelcol-caret``.

    Raises :class:`MissingBinaryError` naming ``make collector`` when it is not built.
    """
    override = os.environ.get(CARET_OTEL_COLLECTOR_BIN)
    path = Path(override) if override else repo_root() / "build" / "otelcol-caret"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(f"Collector binary {path} not found; {INSTALL_HINT}")
    return path


def components(binary: Path | None = None) -> dict[str, Any]:
    """Parsed output of ``otelcol-caret components`` (receivers, processors, ...)."""
    result = subprocess.run(
        [str(binary or binary_path()), "components"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def validate_config(
    config_path: ConfigFiles, env: Mapping[str, str] | None = None, *, binary: Path | None = None
) -> str:
    """Dry-run ``config_path`` (see :func:`config_files`) with ``otelcol-caret validate``
    under ``env``.

    Returns the validator's output (warnings, e.g. deprecations); raises
    :class:`CollectorConfigError` when the config is rejected.
    """
    names = ", ".join(str(p) for p in config_files(config_path))
    result = subprocess.run(
        [str(binary or binary_path()), "validate", *_config_flags(config_path)],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise CollectorConfigError(f"{names} is invalid:\n{output}")
    return output


class CollectorProcess:
    """``otelcol-caret --config <file> ...`` with ``env``, ready when healthy.

    Args:
        binary: the Collector executable (see :func:`binary_path`).
        config_path: the YAML config to run, or several files merged in order; the
            production config brings its privacy pass along (:func:`config_files`).
        env: variables for the config's ``${env:...}`` placeholders (on top of
            ``os.environ``); must point the ``health_check`` endpoint at ``health_port``.
        log_path: the Collector's own log.
        health_port: port of the ``health_check`` extension on 127.0.0.1.
        name: used in logs and errors.
        extra_args: more flags (e.g. ``--feature-gates=...``).
    """

    def __init__(
        self,
        binary: Path,
        config_path: ConfigFiles,
        env: Mapping[str, str],
        log_path: Path,
        health_port: int,
        *,
        name: str = "otelcol-caret",
        extra_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        cwd: Path | None = None,
    ) -> None:
        self.binary = Path(binary)
        self.config_files = config_files(config_path)
        self.config_path = self.config_files[0]
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.health_port = health_port
        self.name = name
        self.process = ManagedProcess(
            name,
            [self.binary, *_config_flags(self.config_files), *extra_args],
            log_path=self.log_path,
            env=self.env,
            cwd=cwd,
            ready=self.health_url,
            ready_timeout=ready_timeout,
            stop_signal=signal.SIGTERM,  # drains pipelines; the persistent queue keeps the rest
            stop_timeout=stop_timeout,
            install_hint=INSTALL_HINT,
        )

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/"

    @property
    def is_running(self) -> bool:
        return self.process.is_running

    def validate(self) -> str:
        """``otelcol-caret validate`` on this config and env (see :func:`validate_config`)."""
        return validate_config(self.config_files, self.env, binary=self.binary)

    def start(self) -> None:
        if not self.binary.is_file():
            raise MissingBinaryError(f"Collector binary {self.binary} not found; {INSTALL_HINT}")
        if not self.is_running:
            self.process.start()

    def stop(self) -> int | None:
        return self.process.stop()

    def kill(self) -> int | None:
        return self.process.kill()

    def restart(self) -> None:
        self.process.restart()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def __repr__(self) -> str:
        return f"<CollectorProcess {self.name} {self.config_path.name} {self.process!r}>"
