"""Compile the gateway's hot path with mypyc and place the extensions next to their sources.

    .venv/bin/python receivers/gateway/compile_hot_path.py          # what `make install` runs
    .venv/bin/python receivers/gateway/compile_hot_path.py --remove # back to pure Python

The modules are ``caret_otel.receivers.gateway.hot_path.MODULES`` (why: that module's
docstring). mypy analyses them as the repository's configuration does (one
``caret_otel`` namespace over the distributions' ``src/`` folders, the ``mypy_path`` of
``pyproject.toml``); the C build runs in ``build/hot-path/`` and each extension is then copied beside its ``.py`` (the editable
installs put those folders on ``sys.path``), the shared ``caret_otel_hot_path__mypyc``
library beside the gateway's package root. Without a C compiler nothing is built and
the pure-Python modules stay in use (exit status 0, with a note).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path

from caret_otel.receivers.gateway.hot_path import GROUP, MODULES

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [REPO / p for p in ("core/src", "processors/privacy/src", "receivers/gateway/src")]
GROUP_HOME = REPO / "receivers/gateway/src"
BUILD = REPO / "build/hot-path"
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")

_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
options = ["--explicit-package-bases", "--namespace-packages"]
paths = sys.argv.pop(1).split(",")
setup(name="{group}", ext_modules=mypycify([*options, *paths], group_name="{group}"))
"""


def source_of(module: str) -> Path:
    relative = Path(*module.split(".")).with_suffix(".py")
    for root in SOURCE_ROOTS:
        if (root / relative).exists():
            return root / relative
    raise SystemExit(f"error: no source for {module} under {', '.join(map(str, SOURCE_ROOTS))}")


def mypy_path() -> list[str]:
    """The ``mypy_path`` of the repository's ``pyproject.toml``, as absolute folders."""
    with (REPO / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    return [str(REPO / folder) for folder in config["tool"]["mypy"]["mypy_path"]]


def installed_extensions() -> list[Path]:
    found = [source_of(m).with_suffix(SUFFIX) for m in MODULES]
    found.append(GROUP_HOME / f"{GROUP}__mypyc{SUFFIX}")
    return [path for path in found if path.exists()]


def remove() -> None:
    for path in installed_extensions():
        path.unlink()
        print(f"removed {path.relative_to(REPO)}")


def build() -> int:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        print(
            "note: no C compiler: the gateway runs its pure-Python hot path "
            "(install gcc and python3.11-dev, then make install, for the compiled one)",
            file=sys.stderr,
        )
        return 0
    sources = [str(source_of(m)) for m in MODULES]
    lib, temp = BUILD / "lib", BUILD / "temp"
    shutil.rmtree(lib, ignore_errors=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=BUILD, delete=False) as f:
        f.write(_SETUP.format(group=GROUP))
        setup = Path(f.name)
    print(f"compiling {len(MODULES)} hot-path modules with mypyc (~30 s) ...", flush=True)
    try:
        done = subprocess.run(
            [sys.executable, str(setup), ",".join(sources), "build_ext",
             f"--build-lib={lib}", f"--build-temp={temp}"],
            cwd=BUILD, env={**os.environ, "MYPYPATH": os.pathsep.join(mypy_path())},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        setup.unlink()
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        print(
            "error: mypyc failed (see above); `make pure-python` runs without it", file=sys.stderr
        )
        return done.returncode
    remove()  # no mix of old and new extensions
    for module in MODULES:
        built = lib / Path(*module.split(".")).with_suffix(SUFFIX)
        shutil.copy2(built, source_of(module).with_suffix(SUFFIX))
    shutil.copy2(lib / f"{GROUP}__mypyc{SUFFIX}", GROUP_HOME / f"{GROUP}__mypyc{SUFFIX}")
    print(f"hot path compiled: {', '.join(MODULES)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        epilog="example: .venv/bin/python receivers/gateway/compile_hot_path.py --remove",
    )
    parser.add_argument(
        "--remove", action="store_true", help="delete the compiled modules (pure Python)"
    )
    args = parser.parse_args()
    if args.remove:
        remove()
        return 0
    BUILD.mkdir(parents=True, exist_ok=True)
    return build()


if __name__ == "__main__":
    sys.exit(main())
