"""The Collector's privacy pass on its own: our Collector binary running exactly the
generated ``collector/privacy-pass.yaml`` processors of each ingress pipeline
(``INGRESS_PROCESSORS``), with a file exporter behind them, so a test reads what the pass
lets out and nothing else (no Prometheus, no sinks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from fixtures.services import Signal, read_json_lines
from integration.pipeline.pipeline_support import HMAC_KEY, HMAC_KEY_ID

from caret_otel.registry.collector_privacy import INGRESS_PROCESSORS
from caret_otel.stack import CollectorConfigEnv, CollectorProcess
from caret_otel.stack import collector as collector_mod
from caret_otel.stack.ports import LOOPBACK, free_port

SIGNALS: tuple[Signal, ...] = ("traces", "logs", "metrics")


@dataclass
class PrivacyPassCollector:
    process: CollectorProcess
    http_url: str
    directory: Path

    def output(self, signal: Signal) -> Path:
        return self.directory / f"{signal}.jsonl"

    def post(self, signal: Signal, body: dict[str, Any]) -> None:
        """One OTLP/HTTP JSON export the pass must accept whole."""
        response = httpx.post(f"{self.http_url}/v1/{signal}", json=body, timeout=30)
        assert response.status_code == 200, response.text

    def requests(self, signal: Signal) -> list[dict[str, Any]]:
        """Every export request the pass let out for ``signal`` (OTLP/JSON)."""
        return read_json_lines(self.output(signal))


def start_privacy_pass(binary: Path, directory: Path, name: str) -> PrivacyPassCollector:
    directory.mkdir(parents=True, exist_ok=True)
    health, http = free_port(), free_port()
    exporters = {
        f"file/{signal}": {
            "path": str(directory / f"{signal}.jsonl"),
            "format": "json",
            "flush_interval": "100ms",
        }
        for signal in SIGNALS
    }
    config = {
        "extensions": {"health_check": {"endpoint": f"{LOOPBACK}:{health}"}},
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"{LOOPBACK}:{http}"}}}},
        "exporters": exporters,
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"logs": {"level": "warn"}, "metrics": {"level": "none", "readers": []}},
            "pipelines": {
                signal: {
                    "receivers": ["otlp"],
                    "processors": list(INGRESS_PROCESSORS[signal]),
                    "exporters": [f"file/{signal}"],
                }
                for signal in SIGNALS
            },
        },
    }
    path = directory / "privacy-only.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    names = CollectorConfigEnv.ENV_NAMES
    env = {names["hmac_key"]: HMAC_KEY, names["hmac_key_id"]: HMAC_KEY_ID}
    process = CollectorProcess(
        binary,
        (path, collector_mod.privacy_pass_path()),
        env,
        directory / f"{name}.log",
        health,
        name=name,
        cwd=directory,
    )
    process.start()
    return PrivacyPassCollector(process, f"http://{LOOPBACK}:{http}", directory)
