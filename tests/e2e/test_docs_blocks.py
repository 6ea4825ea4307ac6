"""Every shell block of README.md and docs/*.md runs as written against the local stack.

The blocks are extracted from the Markdown (fenced ``sh``, ``bash``, ``shell`` and
``console`` blocks) and each one runs in ``bash -e -o pipefail``, in a folder laid out
like the checkout after ``make demo`` with ``caret-otel up`` running: every entry of this
checkout (``.venv`` included) linked in, and ``.caret-otel``, the data directory of the
session's running stack (see conftest.py). The environment is a fresh shell's: no ``CARET_OTEL_*``,
``OTEL_*`` or ``DATABASE_URL`` variables, no virtualenv on ``PATH``.

A block that cannot run there is marked, on the line(s) just above it, with
``<!-- docs-test: skip REASON -->``; the reason is required (a test fails without one)
and is printed by this module's first test. A block that needs a file from a code
example of the same page says ``<!-- docs-test: file NAME = example EXAMPLE -->``
(the ``<!-- example: EXAMPLE -->`` block is written to NAME first). Any other marker is
an error, so a typo cannot silently skip a block.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from e2e.conftest import RunningStack

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "zsh"})
BLOCK_TIMEOUT_S = 180
MIN_REASON_CHARS = 20

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"^<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
_FILE = re.compile(r"^file\s+(?P<name>[\w.-]+)\s*=\s*example\s+(?P<example>[\w-]+)$")
_SKIP = re.compile(r"^skip(?:\s+(?P<reason>.*))?$")
# Variables of the developer's shell that would change what a block does.
_FOREIGN_ENV = re.compile(r"^(CARET_OTEL_|CARET_GRAFANA_|OTEL_|DATABASE_URL$|VIRTUAL_ENV$)")


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    language: str
    text: str
    skip: str | None = None
    """The reason given with a skip marker ('' when the marker has none)."""
    files: dict[str, str] = field(default_factory=dict)
    """File name -> code of the example it must hold."""

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def _examples(text: str) -> dict[str, str]:
    found = re.finditer(r"<!-- example: ([\w-]+) -->\n```\w*\n(.*?)^```", text, re.M | re.S)
    return {match[1]: match[2] for match in found}


def _markers_above(lines: list[str], fence_index: int) -> list[str]:
    """The docs-test markers on the lines just above a fence (blank lines allowed)."""
    markers: list[str] = []
    index = fence_index - 1
    while index >= 0:
        line = lines[index].strip()
        if not line:
            index -= 1
            continue
        match = _MARKER.match(line)
        if match is None:
            break
        markers.append(match[1])
        index -= 1
    return markers


def extract(document: Path) -> list[Block]:
    text = document.read_text(encoding="utf-8")
    lines = text.splitlines()
    examples = _examples(text)
    blocks: list[Block] = []
    for match in _FENCE.finditer(text):
        language = match[1].lower()
        if language not in SHELL_LANGUAGES:
            continue
        fence_index = text.count("\n", 0, match.start())
        skip: str | None = None
        files: dict[str, str] = {}
        for marker in _markers_above(lines, fence_index):
            if (found := _SKIP.match(marker)) is not None:
                skip = (found["reason"] or "").strip()
            elif (found := _FILE.match(marker)) is not None:
                assert found["example"] in examples, (
                    f"{document.name}:{fence_index + 1}: no <!-- example: {found['example']} -->"
                )
                files[found["name"]] = examples[found["example"]]
            else:
                raise AssertionError(
                    f"{document.name}:{fence_index + 1}: unknown docs-test marker {marker!r}"
                )
        blocks.append(Block(document, fence_index + 1, language, match[2], skip, files))
    return blocks


BLOCKS = [block for document in DOCUMENTS for block in extract(document)]
RUNNABLE = [block for block in BLOCKS if block.skip is None]


def test_every_shell_block_runs_or_says_why_not() -> None:
    assert len(BLOCKS) >= 15, [b.name for b in BLOCKS]  # the extraction finds the blocks
    missing = [b.name for b in BLOCKS if b.skip is not None and len(b.skip) < MIN_REASON_CHARS]
    assert not missing, f"skip markers without a reason: {missing}"
    transcripts = [b.name for b in RUNNABLE if b.language == "console"]
    assert not transcripts, f"console transcripts must be marked as such: {transcripts}"
    assert len(RUNNABLE) >= 5
    for block in BLOCKS:  # the list of what is not run, and why, in the test output
        if block.skip is not None:
            print(f"not run: {block.name}: {block.skip}")


def _count(stack: RunningStack, table: str) -> int:
    with psycopg.connect(stack.postgres_dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def _raw_events(stack: RunningStack) -> int:
    return _count(stack, "raw.events")


def _settled_raw_events(stack: RunningStack, quiet_s: float = 6.0, limit_s: float = 90.0) -> int:
    """The row count once it has stopped changing (the pipeline caught up)."""
    deadline = time.monotonic() + limit_s
    count, since = _raw_events(stack), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _raw_events(stack)
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return count


@pytest.fixture(scope="module")
def checkout(
    running_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A folder laid out like the checkout with the stack running; the events the blocks
    post (and the deletions they make) are added to what the other e2e tests expect."""
    folder = tmp_path_factory.mktemp("checkout")
    for entry in ROOT.iterdir():  # the checkout's files, read-only for the blocks' purposes
        if entry.name not in (".caret-otel", ".git"):
            (folder / entry.name).symlink_to(entry)
    (folder / ".caret-otel").symlink_to(running_stack.data_dir)
    before = _settled_raw_events(running_stack, quiet_s=2.0)
    deletions_before = _count(running_stack, "privacy.deletion_requests")
    yield folder
    running_stack.extra_stored_events += _settled_raw_events(running_stack) - before
    deletions = _count(running_stack, "privacy.deletion_requests") - deletions_before
    running_stack.extra_deletion_requests += deletions


def _fresh_shell_env() -> dict[str, str]:
    venv_bin = str(ROOT / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items() if not _FOREIGN_ENV.match(k)}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    env["COLUMNS"] = "200"
    return env


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_block_runs_as_written(block: Block, checkout: Path) -> None:
    for name, code in block.files.items():
        (checkout / name).write_text(code, encoding="utf-8")
    process = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        cwd=checkout,
        env=_fresh_shell_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: background jobs are cleaned up
    )
    try:
        output, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{block.name} ran longer than {BLOCK_TIMEOUT_S} s:\n{output.decode()}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{block.name} exited {process.returncode}:\n{text}"
    assert "Traceback (most recent call last)" not in text, f"{block.name}:\n{text}"
