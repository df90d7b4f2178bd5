"""A private `redis-server` for tests (see `sendguard.testing.servers`)."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from sendguard.testing._server_base import (
    _START_TIMEOUT,
    _STOP_TIMEOUT,
    ServerStartError,
    StrPath,
    _executable,
    _missing,
    _search_dirs,
    _Server,
    _tail,
    _wait_until,
)

__all__ = ["RedisServer"]


class RedisServer(_Server):
    """A private `redis-server` on 127.0.0.1 without persistence (data does not survive
    a restart).

    Args:
        binary: path to `redis-server`; default: looked up in `search_path`.
        search_path: directories to search instead of PATH (`[]` searches nowhere).
        port: a fixed port; default: a free one picked at the first `start()`.
        args: extra `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`.
    """

    _prefix = "sendguard-redis-"
    _log_name = "redis.log"
    install_hint = "on Debian/Ubuntu `apt-get install redis-server` (macOS: `brew install redis`)"

    def __init__(
        self,
        binary: StrPath | None = None,
        *,
        search_path: Sequence[StrPath] | None = None,
        port: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        super().__init__(port)
        dirs = [Path(binary).parent] if binary else _search_dirs(search_path)
        name = Path(binary).name if binary else "redis-server"
        found = [d / name for d in dirs if _executable(d / name)]
        if not found:
            raise _missing(name, dirs, self.install_hint)
        self.binary = found[0]
        self._args = list(args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def is_running(self) -> bool:
        """Whether the `redis-server` process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def ping(self, timeout: float = 0.5) -> bool:
        """Send PING over a raw socket; True if the server answered PONG."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        """Start `redis-server` and wait (up to ~10 s) until it answers PING."""
        if self.is_running:
            return
        directory = self._make_dir()
        cmd = [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(directory), "--save", "", "--appendonly", "no",
            "--protected-mode", "no", "--daemonize", "no", *self._args,
        ]  # fmt: skip
        with open(directory / self._log_name, "ab") as log:  # the log and any config error
            proc = self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        if _wait_until(self.ping, _START_TIMEOUT, give_up=lambda: proc.poll() is not None):
            return
        code = proc.poll()
        self._kill()
        raise ServerStartError(
            f"redis-server on port {self.port} did not answer PING within {_START_TIMEOUT:.0f}s"
            f" (exit code {code}); command: {cmd}\n--- {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # no save points are configured, so SIGTERM exits at once
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
        if proc is not None:
            proc.wait()

    def stop(self, *, cleanup: bool = True) -> None:
        """SIGTERM the server (SIGKILL after 5 s); with `cleanup`, remove its temp dir."""
        self._kill()
        if cleanup:
            self._remove_dir()
