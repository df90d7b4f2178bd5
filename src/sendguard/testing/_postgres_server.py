"""A private Postgres cluster for tests (see `sendguard.testing.servers`)."""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import re
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from sendguard.testing._server_base import (
    _PG_WAIT,
    _START_TIMEOUT,
    _STOP_TIMEOUT,
    ServerStartError,
    StrPath,
    _alive,
    _executable,
    _missing,
    _pg_version_dirs,
    _search_dirs,
    _Server,
    _tail,
    _wait_until,
)

__all__ = ["PostgresServer"]


class PostgresServer(_Server):
    """A throwaway Postgres cluster (`initdb` + `pg_ctl`) on 127.0.0.1 with trust auth.

    The superuser is `sendguard`; `dsn` connects to the `postgres` database. `restart()`
    and `stop(cleanup=False)` keep the data; `stop()` deletes the cluster (a later
    `start()` creates a fresh one on the same port).

    Args:
        bindir: directory holding `initdb` and `pg_ctl`; default: looked up in `search_path`.
        search_path: directories to search instead of PATH + `/usr/lib/postgresql/*/bin`.
        port: a fixed port; default: a free one picked at the first `start()`.
        max_connections: the server's `max_connections` setting.
        superuser_reserved_connections: the server's `superuser_reserved_connections`
            setting (slots only a superuser may take).
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
