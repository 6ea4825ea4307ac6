"""A Caret service that wants only ``caret_otel.sdk`` gets only what the SDK needs.

A fresh virtualenv installs the SDK distribution from this checkout, with the two lower
floors it depends on (core, semconv, the privacy processor) and nothing else of the
project; its dependencies come from the package index as for any user. The server side
(FastAPI, uvicorn, the embedded PostgreSQL, psycopg, Cython) must not come along, and
the SDK must work: a span with an identifier leaves the privacy processor pseudonymised.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from caret_otel.contracts.checkout import repo_root

pytestmark = pytest.mark.integration

ROOT = repo_root()
SDK_FLOORS = ("core", "semconv", "processors/privacy", "sdk")
SERVER_ONLY = {"fastapi", "uvicorn", "pgserver", "psycopg", "psycopg-binary", "psycopg-pool",
               "cython", "starlette", "caret-otel", "caret-otel-gateway",
               "caret-otel-exporter-postgres"}  # fmt: skip

SCRIPT = """
import base64, json
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from caret_otel import sdk
from caret_otel.semconv import attributes as attrs

exporter = InMemorySpanExporter()
handle = sdk.configure("caret-billing", span_exporters=[exporter], instrument_httpx=False,
                       set_global=False, batch=False)
with handle.tracer_provider.get_tracer("t").start_as_current_span("work") as span:
    span.set_attribute(attrs.USER_ID, "alice@example.com")
handle.shutdown()
[finished] = exporter.get_finished_spans()
print(json.dumps(dict(finished.attributes)))
"""


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("sdk-only-venv")
    # Copies: a build from a source folder leaves build/ and *.egg-info behind in it.
    sources = tmp_path_factory.mktemp("sdk-sources")
    for folder in SDK_FLOORS:
        shutil.copytree(
            ROOT / folder,
            sources / folder,
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
        )
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *(str(sources / f) for f in SDK_FLOORS)],
        check=True,
        timeout=900,
    )
    return python


def test_the_sdk_installs_without_any_server_dependency(sdk_venv: Path) -> None:
    listed = subprocess.run(
        [str(sdk_venv), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert {"caret-otel-sdk", "caret-otel-processor-privacy", "opentelemetry-sdk"} <= installed
    assert not installed & SERVER_ONLY, sorted(installed & SERVER_ONLY)


def test_the_sdk_works_with_its_privacy_processor(sdk_venv: Path, tmp_path: Path) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    result = subprocess.run(
        [str(sdk_venv), "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # not the checkout: only the installed distributions count
        env={"CARET_OTEL_PSEUDONYM_KEYS": f"1:{key}", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    attributes = json.loads(result.stdout.strip().splitlines()[-1])
    values = [v for v in attributes.values() if isinstance(v, str)]
    assert "alice@example.com" not in values
    assert any(v.startswith("v1:") for v in values), attributes
