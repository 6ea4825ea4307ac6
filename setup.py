"""The one build step ``pyproject.toml`` holds only as an experimental table: the
exporter's Cython extensions (why they exist: their docstrings). Everything else is in
pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(f"caret_otel.exporters.{name}", [f"exporters/{name}.pyx"])
        for name in ("_log_records_scan", "_attribute_fast_paths")
    ]
)
