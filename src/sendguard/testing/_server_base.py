"""Shared machinery of the test-bed servers: errors, binary lookup, ports, the base class."""

from __future__ import annotations

import abc
import atexit
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

__all__ = ["ServerBinaryMissing", "ServerStartError", "free_port"]

StrPath = str | os.PathLike[str]
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_POLL = 0.02
_PG_WAIT = ("-w", "-t", "10")  # pg_ctl: wait for the outcome, at most 10 s
_PG_GLOB = "usr/lib/postgresql/*/bin"
_live: set[_Server] = set()


class ServerBinaryMissing(RuntimeError):
    """A server binary was not found; the message says where we looked and what to install."""


class ServerStartError(RuntimeError):
    """A server did not come up in time; the message ends with the tail of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _search_dirs(search_path: Sequence[StrPath] | None, extra: Sequence[Path] = ()) -> list[Path]:
    if search_path is not None:
        return [Path(d) for d in search_path]
    return [Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d] + list(extra)


def _pg_version_dirs() -> list[Path]:
    """`/usr/lib/postgresql/<major>/bin` directories, newest major first."""
    dirs = Path("/").glob(_PG_GLOB)
    return sorted(dirs, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1)[::-1]


def _missing(what: str, dirs: Sequence[Path], install: str) -> ServerBinaryMissing:
    looked = ", ".join(map(str, dirs)) or "nowhere (the search path is empty)"
    return ServerBinaryMissing(f"{what} not found; looked in: {looked}. Install it: {install}")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an un-reaped orphan in a container)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _tail(path: Path | None, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace") if path else ""
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _wait_until(check: Callable[[], bool], timeout: float, give_up: Callable[[], bool]) -> bool:
    """Poll `check` every few ms until it is true (True) or time or `give_up` says stop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if give_up():
            return False
        time.sleep(_POLL)
    return False


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


class _Server(abc.ABC):
    """Shared bookkeeping: temp dir, port, log, context manager, atexit registry."""

    _prefix = "sendguard-"
    _log_name = "server.log"

    def __init__(self, port: int | None) -> None:
        self._port = port
        self._dir: Path | None = None

    @property
    def port(self) -> int:
        """The TCP port on 127.0.0.1 (picked at the first `start()`, then kept for good)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} has not been started yet")
        return self._port

    @property
    def log_path(self) -> Path | None:
        """The server log, while the temp dir exists."""
        return self._dir / self._log_name if self._dir else None

    @property
    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the server process is alive."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server and wait until it answers."""

    @abc.abstractmethod
    def stop(self, *, cleanup: bool = True) -> None:
        """Stop the server; with `cleanup` (default) also delete its temp dir."""

    def restart(self) -> None:
        """Stop the server and start it again on the same port, keeping its temp dir."""
        self.stop(cleanup=False)
        self.start()

    def _make_dir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=self._prefix))
        if self._port is None:
            self._port = free_port()
        _live.add(self)
        return self._dir

    def _remove_dir(self) -> None:
        _live.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
