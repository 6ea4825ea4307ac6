"""Apache Kafka 4 in KRaft mode (no ZooKeeper) as a managed process.

The jars come from Maven Central: ``make kafka`` runs ``mvn dependency:copy-dependencies``
on ``kafka/pom.xml`` into ``build/kafka/``. :class:`KafkaBroker` runs one process that is
both broker and controller (``process.roles=broker,controller``), listening on two free
loopback ports, with its log directory formatted once by ``kafka.tools.StorageTool`` (what
``kafka-storage.sh format`` runs). It is the Kafka tier between the edge and processing
Collectors (``collector/edge-config.yaml``, ``collector/processing-config.yaml``) for the
tests and ``caret-otel up --kafka``; production runs a real cluster (``deploy/``).

Readiness is the broker's own "Kafka Server started" log line for this start (it is
written once the broker is unfenced and serves clients). ``stop()`` sends SIGTERM (a
controlled shutdown); ``kill()`` SIGKILLs it; ``start()`` again reuses the log directory,
so everything written before is still there.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from caret_otel.contracts.checkout import repo_root
from caret_otel.core.environment_variables import CARET_OTEL_KAFKA_JARS
from caret_otel.core.errors import ServiceError
from caret_otel.stack.ports import free_port
from caret_otel.stack.process import ManagedProcess, MissingBinaryError, Probe, ServiceRunner

INSTALL_HINT = "fetch the jars with: make kafka (needs Maven and Java 17)"
#: The broker's main class and the class behind ``kafka-storage.sh``.
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
#: Logged by the broker once it serves clients.
STARTED_LINE = "Kafka Server started"
TOPIC_COMMAND_MAIN = "org.apache.kafka.tools.TopicCommand"
GROUP_COMMAND_MAIN = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
#: Partitions of an automatically created topic (the Collectors' topics in tests).
DEFAULT_PARTITIONS = 4


class KafkaStorageError(ServiceError):
    """``kafka-storage format`` failed; the message has its output."""


class KafkaToolError(ServiceError):
    """A Kafka admin tool (topics, consumer groups) failed; the message has its output."""


def jars_dir() -> Path:
    """Where the Kafka jars are: ``$CARET_OTEL_KAFKA_JARS`` or ``<repo>/build/kafka``."""
    override = os.environ.get(CARET_OTEL_KAFKA_JARS)
    return Path(override) if override else repo_root() / "build" / "kafka"


def java_binary() -> Path:
    """``java`` from ``JAVA_HOME`` or ``PATH`` (Kafka 4 needs Java 17 or newer)."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate is not None and candidate.is_file():
        return candidate
    found = shutil.which("java")
    if found is None:
        raise MissingBinaryError(
            "java not found; install it with: apt-get install -y openjdk-17-jre-headless"
        )
    return Path(found)


def classpath(directory: Path | None = None) -> str:
    """The broker's class path (every jar of :func:`jars_dir`), or
    :class:`MissingBinaryError` naming ``make kafka``."""
    directory = directory or jars_dir()
    if not any(directory.glob("kafka_2.13-*.jar")):
        raise MissingBinaryError(f"Kafka jars not found in {directory}; {INSTALL_HINT}")
    return str(directory / "*")


def new_cluster_id() -> str:
    """A random cluster id in Kafka's form (URL-safe base64 of 16 bytes, no padding)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker(ServiceRunner):
    """One KRaft broker+controller on ``127.0.0.1:port`` (controller on ``controller_port``).

    Args:
        data_dir: the log directory (formatted on first start, reused afterwards).
        port: client listener; free when None.
        controller_port: the KRaft controller listener; free when None.
        partitions: ``num.partitions`` of automatically created topics.
        heap_mb: the JVM's ``-Xmx`` (the broker needs little for tests).
        log_path: the broker's log; ``<data_dir>/../kafka.log`` by default.
    """

    service = "kafka"
    install_hint = INSTALL_HINT

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        heap_mb: int = 512,
        log_path: Path | None = None,
        ready_timeout: float = 90.0,
    ) -> None:
        super().__init__(data_dir, port, log_path=log_path, ready_timeout=ready_timeout)
        self.controller_port = controller_port if controller_port is not None else free_port()
        self.partitions = partitions
        self.heap_mb = heap_mb
        self.properties_path = self.data_dir.parent / "kafka-server.properties"

    @property
    def bootstrap_servers(self) -> str:
        """What clients (the Collectors' ``brokers``) connect to: ``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap_servers

    def server_properties(self) -> str:
        """The broker's ``server.properties`` (single node: replication factor 1)."""
        return "\n".join(
            [
                "# Written by caret_otel.stack.kafka: one KRaft node, broker and controller.",
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
                f"listeners=PLAINTEXT://{self.host}:{self.port},"
                f"CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data_dir}",
                f"num.partitions={self.partitions}",
                "auto.create.topics.enable=true",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            str(java_binary()),
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            # slf4j-simple: warnings and up, plus the broker's "started" line.
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
            "-cp",
            classpath(),
            main,
            *args,
        ]

    def format(self) -> None:
        """``kafka-storage format`` the log directory unless it already is."""
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self._java(
            STORAGE_TOOL_MAIN,
            "format",
            f"--cluster-id={new_cluster_id()}",
            f"--config={self.properties_path}",
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise KafkaStorageError(f"formatting {self.data_dir} failed:\n{output}")

    def run_tool(self, main: str, *args: str, timeout: float = 120.0) -> str:
        """Run a Kafka command-line tool class against this broker; its stdout.

        Raises :class:`KafkaToolError` with the tool's output when it fails.
        """
        argv = self._java(main, "--bootstrap-server", self.bootstrap_servers, *args)
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise KafkaToolError(f"{main} {' '.join(args)} failed:\n{output}")
        return result.stdout

    def create_topics(self, names: list[str], *, partitions: int | None = None) -> None:
        """Create ``names`` (if missing) with ``partitions`` each, in parallel (one JVM each:
        ``kafka-topics --create --if-not-exists``)."""
        count = str(partitions or self.partitions)
        procs = [
            subprocess.Popen(
                self._java(
                    TOPIC_COMMAND_MAIN,
                    *("--bootstrap-server", self.bootstrap_servers, "--create", "--if-not-exists"),
                    *("--topic", name, "--partitions", count, "--replication-factor", "1"),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in names
        ]
        failures = []
        for name, proc in zip(names, procs, strict=True):
            output, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures.append(f"{name}: {output.strip()[-1000:]}")
        if failures:
            raise KafkaToolError("creating topics failed:\n" + "\n".join(failures))

    def group_members(self, group: str) -> list[int]:
        """How many partitions each member of consumer ``group`` holds now (``kafka-consumer-
        groups --describe --members``); empty when the group has no members."""
        text = self.run_tool(GROUP_COMMAND_MAIN, "--describe", "--members", "--group", group)
        counts: list[int] = []
        header: list[str] | None = None
        for line in text.splitlines():
            fields = line.split()
            if "#PARTITIONS" in fields:
                header = fields
            elif header is not None and len(fields) == len(header):
                counts.append(int(fields[header.index("#PARTITIONS")]))
        return counts

    def _started_count(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(STARTED_LINE)
        except FileNotFoundError:
            return 0

    def _ready_probe(self) -> Probe:
        before = self._started_count()
        return lambda: self._started_count() > before

    def _command(self) -> ManagedProcess:
        """Format if needed; the broker, ready at its "Kafka Server started" line."""
        self.properties_path.parent.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(self.server_properties())
        self.format()
        return self._managed(
            self._java(BROKER_MAIN, str(self.properties_path)),
            ready=self._ready_probe(),
            ports=(self.port, self.controller_port),
            stop_signal=signal.SIGTERM,  # controlled shutdown
            stop_timeout=60.0,
        )
