"""A private PostgreSQL server for the local stack and the tests.

The server binaries come from the ``pgserver`` wheel (a relocatable PostgreSQL 16
build that ``pip`` installs with caret-otel), falling back to a system install
(``pg_config --bindir`` or ``/usr/lib/postgresql/<n>/bin``). Nothing is registered
with the system: one data directory, one port, one process group.

Security model of this *local* server:

* it listens on ``127.0.0.1`` only, plus a Unix socket inside the data directory;
* TCP connections need the superuser password (SCRAM-SHA-256). The password is
  generated at ``init()`` and kept next to the cluster, readable by its owner only;
* the Unix socket uses ``trust``: it lives in the 0700 data directory, so only the
  server's OS user and root can reach it. Tools like ``pg_dump`` can use it without
  a password (see :meth:`PostgresServer.socket_dsn`).

PostgreSQL refuses to run as root. When we are root (CI containers), the server runs
as a dedicated system user (``caret-otel-pg``, created on first use with ``useradd
--system``) that owns the data directory. That user must be able to reach the data
directory and the binaries, so keep them out of 0700 trees such as ``/root`` or
pytest's ``/tmp/pytest-of-root``; :meth:`PostgresServer.init` checks this and says so.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from caret_otel.core.environment_variables import CARET_OTEL_PG_BINDIR
from caret_otel.stack.ports import LOOPBACK, ensure_port_free, free_port
from caret_otel.stack.process import ManagedProcess, MissingBinaryError, ProcessStartError

#: System user that runs the server when we are root (PostgreSQL refuses root).
DEFAULT_OS_USER = "caret-otel-pg"

INSTALL_HINT = (
    "install the embedded server with: pip install pgserver (part of `make install`), "
    "or the Debian one with: apt-get install -y postgresql"
)

_SUPERUSER_LOGIN_FILE = "caret-otel-superuser-password"
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class PostgresBinaries:
    """Paths to the PostgreSQL programs of one installation (``bindir``)."""

    bindir: Path

    def program(self, name: str) -> Path:
        """Path of ``name`` in ``bindir``; :class:`MissingBinaryError` if it is not there."""
        path = self.bindir / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise MissingBinaryError(f"{path} not found; {INSTALL_HINT}")
        return path

    @property
    def initdb(self) -> Path:
        return self.program("initdb")

    @property
    def postgres(self) -> Path:
        return self.program("postgres")

    @property
    def pg_ctl(self) -> Path:
        return self.program("pg_ctl")

    @property
    def pg_dump(self) -> Path:
        return self.program("pg_dump")

    @property
    def psql(self) -> Path:
        return self.program("psql")


def find_bindir() -> Path:
    """Directory holding ``initdb``/``postgres``/``pg_dump``/``psql``.

    Order: ``$CARET_OTEL_PG_BINDIR``; the ``pgserver`` wheel; ``pg_config --bindir``;
    the newest ``/usr/lib/postgresql/*/bin``.
    """
    candidates: list[Path] = []
    override = os.environ.get(CARET_OTEL_PG_BINDIR)
    if override:
        candidates.append(Path(override))
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))

    def version_key(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)

    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version_key)[::-1])
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
    raise MissingBinaryError(f"PostgreSQL server binaries not found; {INSTALL_HINT}")


def ensure_os_user(name: str = DEFAULT_OS_USER) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating it as a system user if missing.

    Only root can create users; for anyone else a missing user is an error.
    """
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise PermissionError(f"system user {name!r} does not exist and only root can create it")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "caret-otel local PostgreSQL", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        # A concurrent session may have created it first (useradd exit 9); fine.
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(
            f"could not create system user {name!r}: {result.stderr.strip()}"
        ) from None


def _traversable_by(path: Path, uid: int, gid: int) -> Path | None:
    """First ancestor of ``path`` (inclusive) that ``uid``/``gid`` cannot enter, or None."""
    for part in [*reversed(path.parents), path]:
        try:
            st = part.stat()
        except FileNotFoundError:
            return None  # will be created by us, below an enterable parent
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return part
    return None


class PostgresServer:
    """One PostgreSQL cluster: ``init()`` once, then ``start()``/``stop()`` as needed.

    Args:
        data_dir: the cluster directory (created by ``init()``; must be empty or absent
            the first time).
        port: TCP port on 127.0.0.1; a free one is picked when None.
        superuser: name of the bootstrap superuser.
        password: superuser password; generated and stored with the cluster when None.
        log_path: server log (stderr); defaults to ``<data_dir>/../postgres.log``.
        os_user: OS user that owns the data dir and runs the server. Default: the
            current user, or :data:`DEFAULT_OS_USER` when running as root.
        fsync: False turns off ``fsync`` and ``full_page_writes`` - only for throw-away
            test clusters. ``synchronous_commit`` stays on, so every commit is written
            to the OS before it is acknowledged: a killed *server* loses nothing (crash
            tests rely on that); only an OS crash could.
        settings: extra server settings (``-c name=value``).
        bindir: PostgreSQL binaries; :func:`find_bindir` when None.
        ready_timeout: seconds ``start()`` waits for the first successful login.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        superuser: str = "postgres",
        password: str | None = None,
        log_path: Path | None = None,
        os_user: str | None = None,
        fsync: bool = True,
        settings: Mapping[str, str] | None = None,
        bindir: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port if port is not None else free_port()
        self.host = LOOPBACK
        self.superuser = superuser
        self._password = password
        self.log_path = log_path or self.data_dir.parent / "postgres.log"
        if os_user is None and os.geteuid() == 0:
            os_user = DEFAULT_OS_USER
        self.os_user = os_user
        self.fsync = fsync
        self.settings = dict(settings or {})
        self._bindir = bindir
        self.ready_timeout = ready_timeout
        self._process: ManagedProcess | None = None
        self._socket_dir: Path | None = None

    # --- facts ---------------------------------------------------------------------------
    def binaries(self) -> PostgresBinaries:
        """The PostgreSQL programs this server uses (``pg_dump``, ``psql``, ...)."""
        if self._bindir is None:
            self._bindir = find_bindir()
        return PostgresBinaries(self._bindir)

    @property
    def password_file(self) -> Path:
        return self.data_dir / _SUPERUSER_LOGIN_FILE

    @property
    def password(self) -> str:
        """The superuser password (read from the cluster once ``init()`` has run)."""
        if self._password is None:
            try:
                self._password = self.password_file.read_text().strip()
            except FileNotFoundError:
                raise RuntimeError(
                    f"no superuser password known for {self.data_dir}: run init() first, "
                    f"or pass password= (the file {self.password_file} is missing)"
                ) from None
        return self._password

    @property
    def socket_dir(self) -> Path:
        """Directory of the Unix socket (the data dir, unless that path is too long)."""
        if self._socket_dir is None:
            wanted = self.data_dir / f".s.PGSQL.{self.port}"
            if len(os.fsencode(wanted)) <= _MAX_SOCKET_PATH:
                self._socket_dir = self.data_dir
            else:
                short = Path(tempfile.mkdtemp(prefix="caret-pg-"))
                self._chown(short)
                self._socket_dir = short
        return self._socket_dir

    @property
    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running

    @property
    def process(self) -> ManagedProcess | None:
        """The supervised ``postgres`` process (for crash tests: ``.kill()``)."""
        return self._process

    def dsn(
        self, user: str | None = None, dbname: str = "postgres", *, password: str | None = None
    ) -> str:
        """``postgresql://`` URL over TCP. The superuser's password is filled in;
        for other users pass ``password``."""
        user = user or self.superuser
        if password is None and user == self.superuser:
            password = self.password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def socket_dsn(self, user: str | None = None, dbname: str = "postgres") -> str:
        """libpq key/value DSN over the Unix socket (trust auth, no password needed)."""
        return psycopg.conninfo.make_conninfo(
            host=str(self.socket_dir), port=str(self.port), user=user or self.superuser,
            dbname=dbname,
        )  # fmt: skip

    # --- lifecycle -----------------------------------------------------------------------
    def _owner(self) -> pwd.struct_passwd | None:
        if self.os_user is None:
            return None
        return ensure_os_user(self.os_user)

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner is not None and os.geteuid() == 0:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run_as_owner(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",  # the owner may not be allowed into our working directory
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )

    def _check_reachable(self) -> None:
        owner = self._owner()
        if owner is None:
            return
        for what, path in (("data directory", self.data_dir), ("binaries", self.binaries().bindir)):
            blocked = _traversable_by(path, owner.pw_uid, owner.pw_gid)
            if blocked is not None:
                raise PermissionError(
                    f"PostgreSQL runs as {owner.pw_name!r} but cannot enter {blocked} on the way "
                    f"to its {what} {path}; put it elsewhere (e.g. under /tmp or /var/lib) "
                    f"or `chmod o+x {blocked}`"
                )

    def init(self) -> None:
        """Create the cluster with ``initdb`` (no-op when it already exists)."""
        if self.is_initialized:
            _ = self.password  # fail early if we cannot log in later
            return
        binaries = self.binaries()
        initdb = binaries.initdb  # a missing installation is named before anything else
        self._check_reachable()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise RuntimeError(f"{self.data_dir} is not empty and holds no PostgreSQL cluster")
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        password = self._password or secrets.token_urlsafe(24)

        with tempfile.NamedTemporaryFile("w", prefix="caret-pg-pw-", delete=False) as pwfile:
            pwfile.write(password + "\n")
        try:
            self._chown(Path(pwfile.name))
            result = self._run_as_owner([
                str(initdb), "--pgdata", str(self.data_dir),
                "--username", self.superuser, "--pwfile", pwfile.name,
                "--auth-local=trust", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--no-locale", "--no-instructions",
                *([] if self.fsync else ["--no-sync"]),
            ])  # fmt: skip
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            raise ProcessStartError(
                f"initdb failed for {self.data_dir} (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        self._password = password

    def start(self) -> None:
        """Start the server (running ``init()`` first if needed) and wait for a login."""
        if self.is_running:
            return
        self.init()
        self._check_reachable()
        ensure_port_free(self.port, self.host, service="postgres")
        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            "logging_collector": "off",  # stderr goes to our log file
            # Never synchronous_commit=off here: it acknowledges commits still in WAL
            # buffers, which a killed server loses.
            **({} if self.fsync else {"fsync": "off", "full_page_writes": "off"}),
            **self.settings,
        }  # fmt: skip
        argv: list[str] = [str(self.binaries().postgres), "-D", str(self.data_dir)]
        argv += ["-p", str(self.port)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self._process = ManagedProcess(
            "postgres",
            argv,
            log_path=self.log_path,
            ready=self._probe,
            ready_timeout=self.ready_timeout,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back clients, checkpoint, exit
            stop_timeout=30.0,
            user=self.os_user,
            cwd=Path("/"),
            install_hint=INSTALL_HINT,
        )
        self._process.start()

    def _probe(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                raise ProcessStartError(
                    f"postgres at {self.host}:{self.port} rejects the superuser password; "
                    f"the cluster {self.data_dir} was created with another one"
                ) from exc
            return False
        return True

    def stop(self) -> None:
        """Fast shutdown (SIGINT); no-op when not running."""
        if self._process is not None:
            self._process.stop()
        if self._socket_dir is not None and self._socket_dir != self.data_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)  # the short fallback dir
            self._socket_dir = None

    def kill(self) -> None:
        """SIGKILL the server as a crash would; ``start()`` recovers from the WAL."""
        if self._process is not None:
            self._process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- helpers -------------------------------------------------------------------------
    def create_database(self, name: str, *, owner: str | None = None) -> str:
        """Create database ``name`` unless it exists; return its superuser DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if owner is not None:
                    statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
                conn.execute(statement)
        return self.dsn(dbname=name)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<PostgresServer {self.host}:{self.port} {state} data={self.data_dir}>"
