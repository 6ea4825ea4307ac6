"""The Grafana datasources the dashboards use, by the fixed uids of our provisioning.

``grafana/provisioning/datasources/datasources.yaml`` creates them with these uids; the
dashboards never name a uid directly but go through a datasource *variable* whose
default is the provisioned uid, so an operator can point a dashboard at another
Prometheus or PostgreSQL without editing it (the lint test enforces both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model


@dataclass(frozen=True)
class Datasource:
    """One provisioned datasource and the dashboard variable that selects it."""

    uid: str
    type: str
    variable: str
    label: str

    @property
    def ref(self) -> model.DataSourceRef:
        """What a panel or query carries: the type plus the *variable*, never the uid."""
        return model.DataSourceRef(type_val=self.type, uid="${" + self.variable + "}")

    def variable_builder(self) -> dash.DatasourceVariable:
        """The dashboard variable, defaulting to the provisioned uid."""
        return (
            dash.DatasourceVariable(self.variable)
            .label(self.label)
            .type(self.type)
            .current(model.VariableOption(text=self.uid, value=self.uid, selected=True))
        )


PROMETHEUS: Final = Datasource(
    uid="prometheus", type="prometheus", variable="prometheus_ds", label="Prometheus"
)
POSTGRES: Final = Datasource(
    uid="postgres",
    type="grafana-postgresql-datasource",
    variable="postgres_ds",
    label="Analytics DB",
)
# Provisioned for Explore and the trace/log/metric links; no dashboard panel queries them
# (Tempo and Loki cannot run here, so no test could prove such a panel returns data).
TEMPO: Final = Datasource(uid="tempo", type="tempo", variable="tempo_ds", label="Tempo")
LOKI: Final = Datasource(uid="loki", type="loki", variable="loki_ds", label="Loki")

ALL: Final = (PROMETHEUS, POSTGRES, TEMPO, LOKI)
BY_TYPE: Final = {ds.type: ds for ds in ALL}
