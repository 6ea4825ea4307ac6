"""Where the checked-in files this package generates and reads live.

Dashboards, provisioning and rules are repository files (Grafana and Prometheus read
them from disk), not package data; :func:`caret_otel.contracts.checkout.repo_root` locates the
checkout (``$CARET_OTEL_REPO`` or a search upwards) for the whole package.
"""

from __future__ import annotations

from caret_otel.contracts.checkout import repo_root

__all__ = ["repo_root"]
