"""The one build step ``pyproject.toml`` cannot declare: the exporter's two Cython
extensions (why they exist: their module docstrings).

They are optional: without a C compiler or Python's headers the build goes on, and
``caret_otel.exporters.postgres.fast_paths`` falls back to the pure-Python twins at
import (with a logged notice). Both paths pass the same tests.
"""

from setuptools import Extension, setup

PACKAGE = "caret_otel.exporters.postgres"
SOURCE = "src/caret_otel/exporters/postgres"

setup(
    ext_modules=[
        Extension(f"{PACKAGE}.{name}", [f"{SOURCE}/{name}.pyx"], optional=True)
        for name in ("_log_records_scan", "_attribute_fast_paths")
    ]
)
