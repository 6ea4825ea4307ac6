"""Root conftest: registers the shared fixtures of ``tests/fixtures`` (importable because
``pythonpath = ["tests"]`` in pyproject.toml)."""

pytest_plugins = ["fixtures.services"]
