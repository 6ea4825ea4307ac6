"""Run every benchmark in bench/ one after the other (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"run_all.py", "benchreport.py"}


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name not in NOT_BENCHMARKS)
    failed = []
    for number, script in enumerate(scripts, start=1):
        print(f"[{number}/{len(scripts)}] {script.name}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], check=False)
        print(f"    exit {result.returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("docs/benchmarks.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
