"""A PostgreSQL panel query for the Grafana Foundation SDK.

The SDK ships query types for Prometheus, Loki, Tempo and others but not for the
PostgreSQL datasource, so this adds one with the SDK's own extension points (a
``Dataquery`` variant plus its builder), serialised the way Grafana stores it.
"""

from __future__ import annotations

from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants

from caret_otel.dashboards.datasources import POSTGRES

TABLE_FORMAT = "table"
TIME_SERIES_FORMAT = "time_series"


class SqlQuery(cogvariants.Dataquery):
    """A raw-SQL query of the ``grafana-postgresql-datasource`` plugin."""

    def __init__(self, raw_sql: str, ref_id: str, fmt: str) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.format = fmt

    def to_json(self) -> dict[str, Any]:
        return {
            "datasource": {"type": POSTGRES.type, "uid": POSTGRES.ref.uid},
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class Sql(cogbuilder.Builder[SqlQuery]):
    """Builder: ``Sql(query).time_series()`` for a time axis, table format otherwise."""

    def __init__(self, raw_sql: str) -> None:
        self._query = SqlQuery(raw_sql.strip(), "A", TABLE_FORMAT)

    def ref_id(self, ref_id: str) -> Self:
        self._query.ref_id = ref_id
        return self

    def time_series(self) -> Self:
        """Rows of (time, value[, metric]) drawn as series."""
        self._query.format = TIME_SERIES_FORMAT
        return self

    def build(self) -> SqlQuery:
        return self._query
