"""Throwaway real servers for tests: a private `redis-server` and a private Postgres cluster.

Each server lives in its own temporary directory, listens only on 127.0.0.1 on a free
port, is tuned for speed over durability, and is removed again on `stop()` (with an
`atexit` safety net for servers a test forgot to stop)::

    with RedisServer() as redis_srv, PostgresServer(max_connections=20) as pg:
        use(redis_srv.url, pg.dsn)

Binaries are looked up on PATH (and, for Postgres, under `/usr/lib/postgresql/*/bin`,
newest first); a missing one raises `ServerBinaryMissing` naming the package to install.
Postgres refuses to run as root, so under root its commands run as the `postgres` system
user (else `nobody`): `subprocess` drops uid, gid and supplementary groups in the child.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import getpass
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

__all__ = ["PostgresServer", "RedisServer", "ServerBinaryMissing", "ServerStartError", "free_port"]

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


class PostgresServer(_Server):
    """A throwaway Postgres cluster (`initdb` + `pg_ctl`) on 127.0.0.1 with trust auth.

    The superuser is `sendguard`; `dsn` connects to the `postgres` database. `restart()`
    and `stop(cleanup=False)` keep the data; `stop()` deletes the cluster (a later
    `start()` creates a fresh one on the same port).

    Args:
        bindir: directory holding `initdb` and `pg_ctl`; default: looked up in `search_path`.
        search_path: directories to search instead of PATH + `/usr/lib/postgresql/*/bin`.
        port: a fixed port; default: a free one picked at the first `start()`.
        max_connections, superuser_reserved_connections: server settings.
        settings: further postgresql.conf settings, e.g. `{"statement_timeout": "5s"}`.
        os_user: the OS user to run as when we are root (default `postgres`, else `nobody`).
    """

    _prefix = "sendguard-pg-"
    _log_name = "postgres.log"
    superuser = "sendguard"
    install_hint = (
        "on Debian/Ubuntu `apt-get install postgresql` (macOS: `brew install postgresql`)"
    )

    def __init__(
        self,
        bindir: StrPath | None = None,
        *,
        search_path: Sequence[StrPath] | None = None,
        port: int | None = None,
        max_connections: int = 50,
        superuser_reserved_connections: int = 3,
        settings: Mapping[str, str | int] | None = None,
        os_user: str | None = None,
    ) -> None:
        super().__init__(port)
        dirs = [Path(bindir)] if bindir else _search_dirs(search_path, _pg_version_dirs())
        found = [d for d in dirs if _executable(d / "initdb") and _executable(d / "pg_ctl")]
        if not found:
            raise _missing("initdb and pg_ctl", dirs, self.install_hint)
        self.bindir = found[0]
        self.settings: dict[str, str | int] = {
            "max_connections": max_connections,
            "superuser_reserved_connections": superuser_reserved_connections,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **(settings or {}),
        }
        self._user = self._pick_user(os_user) if os.geteuid() == 0 else None
        self._version: int | None = None

    @staticmethod
    def _pick_user(name: str | None) -> pwd.struct_passwd:
        for candidate in [name] if name else ["postgres", "nobody"]:
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(candidate)
        raise RuntimeError(f"running as root and no OS user {name or 'postgres/nobody'} exists")

    @property
    def dsn(self) -> str:
        """`postgresql://sendguard@127.0.0.1:PORT/postgres`."""
        return f"postgresql://{self.superuser}@127.0.0.1:{self.port}/postgres"

    @property
    def version(self) -> int:
        """The major version of the binaries, e.g. 15."""
        if self._version is None:
            out = self._run("pg_ctl", "--version").stdout
            match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
            if match is None:
                raise RuntimeError(f"cannot parse `pg_ctl --version` output: {out!r}")
            self._version = int(match.group(1))
        return self._version

    @property
    def os_user(self) -> str:
        """The OS user the cluster runs as (never root)."""
        return self._user.pw_name if self._user else getpass.getuser()

    @property
    def data_dir(self) -> Path | None:
        """The cluster's data directory, while it exists."""
        return self._dir / "data" if self._dir else None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from `postmaster.pid`, if the file exists."""
        data = self.data_dir
        with contextlib.suppress(OSError, ValueError):
            return int((data / "postmaster.pid").read_text().split("\n", 1)[0]) if data else None
        return None

    @property
    def is_running(self) -> bool:
        """Whether the postmaster is alive."""
        pid = self.pid
        return pid is not None and _alive(pid)

    def _run(self, *cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a binary from `bindir`, as the unprivileged user when we are root."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        user = self._user
        if user is not None:
            env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
        return subprocess.run(
            [str(self.bindir / cmd[0]), *cmd[1:]], env=env, cwd=self._dir or "/",
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
            check=False, user=user and user.pw_uid, group=user and user.pw_gid,
            extra_groups=None if user is None else [],
        )  # fmt: skip

    def _initdb(self, directory: Path) -> None:
        if self._user is not None:
            os.chown(directory, self._user.pw_uid, self._user.pw_gid)
        res = self._run("initdb", "-D", str(directory / "data"), "-U", self.superuser,
                        "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")  # fmt: skip
        if res.returncode != 0:
            raise ServerStartError(
                f"initdb failed (exit {res.returncode}) as OS user {self.os_user!r} in "
                f"{directory}:\n{res.stdout}\n{res.stderr}"
            )

    def _write_conf(self, data: Path) -> None:
        """(Re)write our settings to `sendguard.conf`, included from postgresql.conf."""
        conf = {**self.settings, "port": self.port, "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(self._dir)}  # fmt: skip
        lines = [f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}" for k, v in conf.items()]
        (data / "sendguard.conf").write_text("\n".join(lines) + "\n")
        if self._user is not None:
            os.chown(data / "sendguard.conf", self._user.pw_uid, self._user.pw_gid)
        main = data / "postgresql.conf"
        if "include 'sendguard.conf'" not in main.read_text():
            with main.open("a") as f:
                f.write("\ninclude 'sendguard.conf'\n")

    def start(self) -> None:
        """Create the cluster if needed, start it, and wait until it accepts connections."""
        if self.is_running:
            return
        directory = self._make_dir()
        data = directory / "data"
        if not (data / "PG_VERSION").exists():
            try:
                self._initdb(directory)
            except BaseException:
                self._remove_dir()
                raise
        self._write_conf(data)
        # -w: pg_ctl returns once postmaster.pid says "ready" (accepting connections).
        res = self._run("pg_ctl", "start", "-D", str(data), "-l", str(self.log_path), *_PG_WAIT)
        ok = res.returncode == 0 and _wait_until(
            self._accepts_tcp, _START_TIMEOUT, give_up=lambda: not self.is_running
        )
        if ok:
            return
        self._force_stop()
        raise ServerStartError(
            f"Postgres from {self.bindir} on port {self.port} did not start (pg_ctl exit "
            f"{res.returncode}): {res.stdout.strip()} {res.stderr.strip()}\n"
            f"--- {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _force_stop(self) -> None:
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_until(lambda: not self.is_running, _STOP_TIMEOUT, give_up=lambda: False)
        if self.data_dir is not None and not self.is_running:  # a stale pid file could lie
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def stop(self, *, cleanup: bool = True) -> None:
        """`pg_ctl stop -m fast` (SIGKILL fallback); with `cleanup`, delete the cluster."""
        if self.is_running:
            try:
                res = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", *_PG_WAIT)
                if res.returncode != 0:
                    self._force_stop()
            except subprocess.TimeoutExpired:
                self._force_stop()
        if cleanup:
            self._remove_dir()
