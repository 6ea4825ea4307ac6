"""Loopback port helpers for the local stack and the test fixtures.

Every service we start (PostgreSQL, Prometheus, both Collectors) listens on
127.0.0.1 only: the local stack is a developer/CI tool, never a public endpoint.
Ports are picked by the kernel (bind to port 0) so parallel test sessions and a
running ``caret-otel up`` never fight over a fixed number.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading

from caret_otel.core.errors import ServiceError

LOOPBACK = "127.0.0.1"

# Ports handed out by this process. The kernel may return a port we released a
# moment ago to the next bind(0); a service that has not bound its port yet would
# then share it with the next one. Remembering what we gave out avoids that.
_handed_out: set[int] = set()
_lock = threading.Lock()


class PortInUseError(ServiceError):
    """A port that must be free for a service to start is already taken."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free now and not handed out before.

    There is an unavoidable window between this call and the service binding
    the port; callers start the service soon after, and the readiness probe of
    :class:`caret_otel.stack.process.ManagedProcess` turns a lost race into a
    clear error instead of a hang.
    """
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise PortInUseError(f"could not find a free TCP port on {host} after 64 attempts")


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it.

    ``SO_REUSEADDR`` mirrors what servers do, so a port left in TIME_WAIT by a
    service we just stopped counts as free (the restarted service can bind it).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def ensure_port_free(port: int, host: str = LOOPBACK, *, service: str = "service") -> None:
    """Raise :class:`PortInUseError` naming the service when ``host:port`` is taken."""
    if not is_port_free(port, host):
        raise PortInUseError(
            f"{service}: {host}:{port} is already in use; stop whatever listens there "
            f"(e.g. `ss -ltnp 'sport = :{port}'`) or choose another port"
        )


def is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds (something accepts there)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False
