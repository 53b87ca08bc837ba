"""Running one described service as a plain local process: the machinery under the `local` backend
(sealgate/backends/local.py), and under a check that starts a service on its own (env_config).

What is here knows one process at a time, never a whole stack:
  - addresses: a service's compose address (`api:8000`, `http://receiver:5001/...`) rewritten to 127.0.0.1 and the
    local port chosen for it (`rewrite_address`, `rewrite_tree`); a secret's container path (/run/secrets/<name>)
    pointed at the host file holding it (`rewrite_secret_paths`);
  - ports: whether one is still free to bind (`port_free`), whether something listens on it (`tcp_answers`);
  - access: whether another user (PostgreSQL, run as `postgres` under root) can reach a directory
    (`traversal_problem`);
  - commands: how a Python service runs as its container runs it (`python_command`); where PostgreSQL's server
    binaries are (`find_pg_bin_dir`);
  - processes: `Proc`, one service's process — started in its own process group with its output appended to its log
    after a start line (`LOG_RUN_MARKER`), stopped by signalling the whole group; the last run of a log
    (`log_tail`); the pids of a run directory on disk (`save_pids`) and the processes a crashed run left behind
    (`reap_leftovers`, recognised by `RUN_DIR_MARKER` in their environment).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sealgate.backends.composefile import ComposeFile, map_path, split_flags
from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription

STOP_TIMEOUT = 10.0  # seconds between the polite signal and SIGKILL
# Set in every child's environment: identifies the processes of one run_dir (see reap_leftovers).
RUN_DIR_MARKER = "SEALGATE_RUN_DIR"
LOG_RUN_MARKER = "=== "  # first line written to a service's log at each start
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<auth>[^@/]*@)?(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?")


# --- ports ---------------------------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tcp_answers(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# --- addresses and secrets -----------------------------------------------------------------------------------------


def rewrite_address(value: str, addresses: Mapping[str, int]) -> str:
    """`service:port` or `scheme://[auth@]service[:port]/...` -> 127.0.0.1 and the service's local port."""
    match = _URL.match(value)
    if match and match.group("host") in addresses:
        port = addresses[match.group("host")]
        return f"{match.group('scheme')}{match.group('auth') or ''}127.0.0.1:{port}{value[match.end() :]}"
    host, sep, port_text = value.rpartition(":")
    if sep and host in addresses and port_text.isdigit():
        return f"127.0.0.1:{addresses[host]}"
    return value


def rewrite_tree(value: Any, addresses: Mapping[str, int]) -> Any:
    if isinstance(value, str):
        return rewrite_address(value, addresses)
    if isinstance(value, list):
        return [rewrite_tree(v, addresses) for v in value]
    if isinstance(value, dict):
        return {k: rewrite_tree(v, addresses) for k, v in value.items()}
    return value


def rewrite_secret_paths(value: Any, files: Mapping[str, str]) -> Any:
    """Every string that is exactly a secret's container path -> the host file holding it."""
    if isinstance(value, str):
        return files.get(value, value)
    if isinstance(value, list):
        return [rewrite_secret_paths(v, files) for v in value]
    if isinstance(value, dict):
        return {k: rewrite_secret_paths(v, files) for k, v in value.items()}
    return value


# --- access --------------------------------------------------------------------------------------------------------


def traversal_problem(path: Path, uid: int, gids: set[int]) -> str | None:
    """The first ancestor of `path` that user `uid` cannot enter, or None (PostgreSQL runs as another user)."""
    for parent in [*reversed(path.parents)]:
        mode = parent.stat()
        if mode.st_uid == uid:
            allowed = bool(mode.st_mode & stat.S_IXUSR)
        elif mode.st_gid in gids:
            allowed = bool(mode.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(mode.st_mode & stat.S_IXOTH)
        if not allowed:
            return f"{parent} (mode {stat.filemode(mode.st_mode)})"
    return None


# --- commands ------------------------------------------------------------------------------------------------------


def python_command(description: StackDescription, compose: ComposeFile, service: str) -> tuple[list[str], Path]:
    """(arguments after the interpreter, cwd) of a Python service, as its container runs it: `-m pkg` from the host
    directory mounted at working_dir/pkg, or a `.py` script mapped through the bind mounts. Its own listen flags are
    dropped (the caller binds 127.0.0.1 and a free port). The local backend runs its services so, and so does a check
    that starts one on its own (env_config)."""
    svc = compose.services[service]
    recipe = description.services[service].local
    command = [*svc.entrypoint(), *svc.command()]
    mounts = svc.mounts(compose.base)
    own = (recipe.host_flag, recipe.port_flag)
    rest = [f"{n}={v}" if v is not None else n for n, v in split_flags(command) if n not in own]
    if "-m" in command[:-1]:
        package = command[command.index("-m") + 1]
        workdir = svc.working_dir or "/"
        host = map_path(f"{workdir.rstrip('/')}/{package.split('.')[0]}", mounts)
        runnable = host is not None and (
            (Path(host) / "__main__.py").is_file() or len(package.split(".")) > 1 or host.endswith(".py")
        )
        if host and runnable:
            return ["-m", package, *rest], Path(host).parent
    for item in command:
        if item.endswith(".py"):
            mapped = map_path(item, mounts) if item.startswith("/") else str(compose.base / item)
            if mapped and Path(mapped).is_file():
                return [mapped, *rest], Path(mapped).parent
    raise StackError(
        Problem(
            service,
            f"cannot tell how to run it locally: its command {' '.join(command) or '(none)'} runs no module or "
            "script bind-mounted from the project",
            f"mount its code in {description.compose_file}, or set `local.kind: unavailable` with a reason",
        )
    )


def find_pg_bin_dir() -> Path:
    """The directory holding PostgreSQL's server binaries (initdb, postgres, pg_isready): SEALGATE_PG_BIN_DIR, else
    the one of `initdb` on PATH, else the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if os.environ.get("SEALGATE_PG_BIN_DIR"):
        candidates.append(Path(os.environ["SEALGATE_PG_BIN_DIR"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)

    def version_key(path: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", Path(path).parent.name))

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)]
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "postgres", "pg_isready")):
            return candidate
    hint = "apt-get install -y postgresql" if Path("/etc/debian_version").exists() else "install PostgreSQL"
    raise StackError(
        Problem(
            "postgres",
            "no PostgreSQL server binaries (initdb, postgres) found via SEALGATE_PG_BIN_DIR, PATH or "
            "/usr/lib/postgresql/*/bin",
            f"install them by hand: {hint}",
        )
    )


# --- processes -----------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """One service's process: what to run, and once started, its Popen and the log it appends to."""

    service: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    user: str | None = None  # run as this user (PostgreSQL under root)
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen[bytes] | None = None
    log_handle: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        """Start it as the leader of its own process group, its output appended to `log` after a start line (one
        log holds one run after another; `log_tail` reads the last). A command that cannot start is a StackError.

        Not kernel.procs.start_logged: that truncates the log and closes it at once, and starts the child in the
        caller's process group as the caller's user; here the log is appended to (after the start line), stdin is
        /dev/null, the child may run as another user, and it must lead its own group so `stop` reaches all of it."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log_handle = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process, closed in stop()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.log_handle.write(f"{LOG_RUN_MARKER}{stamp} start: {' '.join(self.argv)}\n".encode())
        self.log_handle.flush()
        try:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self.log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals the whole group, nothing escapes
                user=self.user,
            )
        except OSError as exc:
            self.log_handle.close()
            raise StackError(Problem(self.service, f"cannot start {self.argv[0]}: {exc}")) from None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Its stop signal to the whole process group, SIGKILL to the group after `timeout` seconds; the log
        closed.

        Not kernel.procs.terminate: that signals the process alone, and always with SIGTERM; here the group is
        signalled (a service's children must not outlive it) with the service's own signal (SIGINT, PostgreSQL's
        fast shutdown)."""
        popen = self.popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, self.stop_signal)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=timeout)
        if self.log_handle is not None:
            self.log_handle.close()
            self.log_handle = None


def log_tail(log: Path, lines: int = 200) -> str:
    """The last `lines` lines of the current run in `log` (a service's log appends one run after another, each
    opened by a LOG_RUN_MARKER line)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    current = text.splitlines()
    starts = [i for i, line in enumerate(current) if line.startswith(LOG_RUN_MARKER)]
    if starts:
        current = current[starts[-1] :]
    return "\n".join(current[-lines:])


def save_pids(pids_file: Path, procs: Mapping[str, Proc]) -> None:
    """service -> pid of every process still running, for `reap_leftovers` of the next run (best effort)."""
    alive = {s: p.popen.pid for s, p in procs.items() if p.popen is not None and p.popen.poll() is None}
    with contextlib.suppress(OSError):
        pids_file.write_text(json.dumps(alive, sort_keys=True) + "\n")


def reap_leftovers(pids_file: Path, run_dir: Path, progress: Callable[[str], None]) -> None:
    """Stop processes a crashed earlier run (same run_dir) left behind, identified by run_dir in their environment
    (RUN_DIR_MARKER), their groups killed."""
    try:
        leftovers = json.loads(pids_file.read_text())
    except (OSError, ValueError):
        return
    marker = f"{RUN_DIR_MARKER}={run_dir}".encode()
    for service, pid in leftovers.items():
        try:
            environ = Path(f"/proc/{int(pid)}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        # Only a process carrying this run_dir's marker is ours: a recycled pid belongs to someone else.
        if marker in environ:
            progress(f"stack: stopping {service} (pid {pid}) left by an earlier run")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid), signal.SIGKILL)
