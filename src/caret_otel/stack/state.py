"""``<data dir>/stack.json``: how to reach a running local stack.

``caret-otel up`` writes it once every part is healthy and removes it on shutdown;
``simulate``, ``replay`` and the tests read it to find the gateway, the tokens and the
database. It holds URLs and file paths only - secrets stay in their 0600 files and
are read through :class:`StackInfo` methods when needed.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import orjson

from caret_otel.core.errors import ServiceError
from caret_otel.stack.credentials import StackCredentials

STATE_FILE: Final = "stack.json"
DEFAULT_DATA_DIR: Final = Path(".caret-otel")
"""Where `caret-otel up` keeps data, logs and secrets unless told otherwise."""


class StackNotRunningError(ServiceError):
    """No running stack was found in the data directory; the message says what to do."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class DatabaseInfo:
    """Where the business database is. Passwords are read from their files on demand."""

    host: str
    port: int
    dbname: str
    superuser: str | None
    superuser_password_file: str | None
    writer_password_file: str | None
    analyst_password_file: str | None
    url_from_environment: bool = False
    """True when ``DATABASE_URL`` named an external database (no role passwords known)."""

    def _url(self, user: str, password_file: str | None) -> str:
        password = Path(password_file).read_text().strip() if password_file else None
        auth = quote(user, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    def superuser_dsn(self) -> str:
        if self.superuser is None:
            raise StackNotRunningError("this stack uses an external database: no superuser known")
        return self._url(self.superuser, self.superuser_password_file)

    def writer_dsn(self) -> str:
        return self._url("caret_writer", self.writer_password_file)

    def analyst_dsn(self) -> str:
        return self._url("caret_analyst", self.analyst_password_file)

    def login_dsn(self, role: str, password_file: Path) -> str:
        """The URL for another login of this database (e.g. ``caret_gateway``)."""
        return self._url(role, str(password_file))


@dataclass(frozen=True)
class StackInfo:
    """Everything a client of the local stack needs (no secret values)."""

    data_dir: str
    pid: int
    gateway_url: str
    exporter_url: str
    collector_otlp_http_url: str
    collector_otlp_grpc_endpoint: str
    collector_health_url: str
    collector_metrics_url: str
    prometheus_url: str | None
    sink_traces_path: str
    sink_logs_path: str
    sink_metrics_path: str
    logs_dir: str
    secrets_dir: str
    database: DatabaseInfo
    country_header: str

    @property
    def credentials(self) -> StackCredentials:
        return StackCredentials(Path(self.secrets_dir))

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> StackInfo:
        raw: dict[str, Any] = orjson.loads(data)
        database = DatabaseInfo(**raw.pop("database"))
        return cls(database=database, **raw)

    def write(self) -> Path:
        """Write ``stack.json`` (0600) atomically."""
        path = Path(self.data_dir) / STATE_FILE
        temporary = path.with_suffix(".json.tmp")
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(self.to_json())
        temporary.replace(path)
        return path


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


def read_stack_info(data_dir: Path) -> StackInfo:
    """The running stack of ``data_dir``; :class:`StackNotRunningError` when there is none."""
    path = state_path(data_dir)
    try:
        info = StackInfo.from_json(path.read_bytes())
    except FileNotFoundError:
        raise StackNotRunningError(
            f"no running stack in {data_dir} ({path} is missing): start one with "
            f"`caret-otel up --data-dir {data_dir}`, or pass --endpoint and --token-file"
        ) from None
    except (ValueError, TypeError) as exc:
        raise StackNotRunningError(
            f"{path} is unreadable ({exc}); restart `caret-otel up`"
        ) from None
    if not _pid_alive(info.pid):
        raise StackNotRunningError(
            f"the stack recorded in {path} (pid {info.pid}) is not running any more: "
            f"start it again with `caret-otel up --data-dir {data_dir}`"
        )
    return info


def remove_state(data_dir: Path) -> None:
    state_path(data_dir).unlink(missing_ok=True)
