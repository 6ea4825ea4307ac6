"""The example service of docs/sdk.md runs as written: against the provider stub, with
its telemetry exported over OTLP to a real receiver (in a fresh process, because it
configures the global providers)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from caret_otel.devtools.provider_stub import ProviderStub
from caret_otel.processors.privacy.pseudonyms import KEY_FILE_ENV, KEYS_ENV, generate_key_entry
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs

from .conftest import OtlpReceiver

DOC = Path(__file__).resolve().parents[3] / "docs" / "sdk.md"
RUNNER = textwrap.dedent(
    """
    import json, sys, types
    from pathlib import Path
    from starlette.testclient import TestClient

    module = types.ModuleType("llm_proxy")
    sys.modules["llm_proxy"] = module
    exec(compile(Path(sys.argv[1]).read_text(), "llm_proxy.py", "exec"), module.__dict__)
    with TestClient(module.app) as client:
        response = client.post(
            "/v1/ask", json={"user_id": "u-doc-1", "plan": "pro", "prompt": "PROMPT-SECRET-doc"}
        )
    json.dump({"status": response.status_code, "body": response.json()}, sys.stdout)
    """
)


def example_code() -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: llm-proxy -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/sdk.md lost its example block"
    return match.group(1)


def test_docs_example_service_runs_and_exports(
    tmp_path: Path, provider_stub: ProviderStub, otlp_receiver: OtlpReceiver
) -> None:
    source = tmp_path / "llm_proxy.py"
    source.write_text(example_code(), encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != KEY_FILE_ENV},
        KEYS_ENV: generate_key_entry("doc"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
        "ANTHROPIC_BASE_URL": provider_stub.url,
        "CARET_OTEL_GENAI_PROVIDER_HOSTS": f"{provider_stub.authority}=anthropic",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(source)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["status"] == 200
    assert out["body"]["credits"] == (11 + 7) / 1000 * 0.5  # the stub: 11 uncached in, 7 out

    spans = [
        span
        for request in otlp_receiver.requests("/v1/traces")
        for rs in request.decoded().resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    [genai] = [s for s in spans if s.name == "chat claude-sonnet-4"]
    genai_attributes = {kv.key: kv.value for kv in genai.attributes}
    assert genai_attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS].int_value == 7
    [record] = [
        record
        for request in otlp_receiver.requests("/v1/logs")
        for rl in request.decoded().resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]
    assert record.event_name == event_specs.CARET_CREDITS_CONSUMED.name
    everything = b"".join(r.body for r in otlp_receiver.received)
    assert b"PROMPT-SECRET-doc" not in everything
    assert b"u-doc-1" not in everything
