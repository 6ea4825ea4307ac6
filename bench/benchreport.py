"""Shared by every bench/ script: write one delimited section of docs/benchmarks.md.

Each benchmark owns the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
so scripts can be rerun one at a time without clobbering each other's results.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every number here is written by a script in `bench/` that anyone can rerun (`make bench`
runs them all; each script also runs alone). Machines are noisy, so every result is
reported as a ratio against a baseline measured in the same run on the same machine;
absolute numbers are given for context only.
"""


def machine_line() -> str:
    """One line naming the machine and the commit the numbers come from."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=BENCHMARKS_MD.parent,
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"_Measured {when} on {platform.machine()} with {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, commit {commit or 'unknown'}._"
    )


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``markdown``."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n\n{machine_line()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
