"""Runners for the real services of the local stack.

Used by the test fixtures (``tests/fixtures/services.py``) and by ``caret-otel up``.
Each runner starts one real program on 127.0.0.1, waits until it answers, and stops
it with its whole process group:

============================  ====================================================
:class:`PostgresServer`       PostgreSQL from the ``pgserver`` wheel (or the system)
:class:`PrometheusServer`     Debian's Prometheus 2.42, remote-write receiver on
:class:`AlertmanagerServer`   Debian's Alertmanager 0.25, routing of ``alertmanager/``
:class:`CollectorProcess`     ``build/otelcol-caret`` running a config
:class:`ManagedProcess`       the supervisor under all of them
============================  ====================================================

A missing program raises :class:`MissingBinaryError` whose message is the command
that installs it (``make collector``, ``apt-get install -y prometheus``,
``pip install pgserver``).

Typical use::

    from caret_otel.stack import CollectorConfigEnv, CollectorProcess, PrometheusServer
    from caret_otel.stack import collector

    prom = PrometheusServer(data / "prometheus")
    prom.start()
    env = CollectorConfigEnv.with_free_ports(
        prometheus_remote_write_url=prom.remote_write_url, storage_dir=str(data / "queue")
    )
    col = CollectorProcess(collector.binary_path(), collector.default_config_path(),
                           env.as_env(), data / "collector.log", env.health_port)
    col.start()
    ...
    col.stop(); prom.stop()
"""

from caret_otel.stack.alertmanager import AlertmanagerServer
from caret_otel.stack.collector import (
    CollectorConfigEnv,
    CollectorConfigError,
    CollectorProcess,
    SinkConfigEnv,
)
from caret_otel.stack.ports import PortInUseError, ensure_port_free, free_port, is_port_free
from caret_otel.stack.postgres import PostgresBinaries, PostgresServer
from caret_otel.stack.process import (
    ManagedProcess,
    MissingBinaryError,
    ProcessStartError,
    http_probe,
)
from caret_otel.stack.prometheus import PrometheusQueryError, PrometheusServer

__all__ = [
    "AlertmanagerServer",
    "CollectorConfigEnv",
    "CollectorConfigError",
    "CollectorProcess",
    "ManagedProcess",
    "MissingBinaryError",
    "PortInUseError",
    "PostgresBinaries",
    "PostgresServer",
    "ProcessStartError",
    "PrometheusQueryError",
    "PrometheusServer",
    "SinkConfigEnv",
    "ensure_port_free",
    "free_port",
    "http_probe",
    "is_port_free",
]
