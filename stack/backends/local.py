"""The `local` backend: the governed stack as plain processes on 127.0.0.1 — no Docker needed.

Same Prometheus, Alertmanager, API, console-log and PostgreSQL as the compose stack, from the same files: the
compose file says which config each service reads and with which flags; prometheus.yml and alertmanager.yml are
parsed and their service addresses (`api:8000`, `alertmanager:9093`, `http://console-log:...`) rewritten to the
free local ports chosen here, rule files mapped through the compose bind mounts to absolute repository paths.
Nothing is hand-copied: change a config in stack/ and both backends run the change.

Layout under run_dir: data/{prometheus,alertmanager,postgres,grafana}, config/ (rewritten configs), logs/<svc>.log,
pids.json (lets the next run stop processes a crashed run left behind).

Processes: each child leads its own process group; down() sends SIGTERM (SIGINT — fast shutdown — to PostgreSQL),
waits STOP_TIMEOUT, then SIGKILLs the group. An exception in up() stops everything started so far; an interpreter
exit without down() does the same (atexit), so no run leaves orphans.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from sealgate.errors import Problem
from sealgate.stack.backends.base import SERVICES, ServiceNotRunning, ServiceState, StackBackend, StackError
from sealgate.stack.backends.composefile import ComposeFile, Mount
from sealgate.stack.backends.provision import Binary, resolve
from sealgate.stack.backends.readiness import Waiter, http_probe, wait_ready

COMPOSE_FILE = Path("stack/docker-compose.yml")
STOP_TIMEOUT = 10.0  # seconds between the polite signal and SIGKILL
PG_START_TIMEOUT = 60.0
START_ORDER = ("postgres", "console-log", "alertmanager", "api", "prometheus")  # Prometheus last: its first
# scrape and its Alertmanager discovery then find their targets already listening.
LOCAL_SERVICES = START_ORDER
GRAFANA_REASON = (
    "no Grafana binary on this machine (Grafana is not in Debian, PyPI or npm); the local backend runs without it"
)
# Flags a local process must not inherit from the compose file: paths and addresses are the container's.
PROMETHEUS_OWN_FLAGS = {
    "--config.file",
    "--storage.tsdb.path",
    "--web.listen-address",
    "--web.external-url",
    "--web.console.libraries",
    "--web.console.templates",
}
ALERTMANAGER_OWN_FLAGS = {
    "--config.file",
    "--storage.path",
    "--web.listen-address",
    "--web.external-url",
    "--cluster.listen-address",
    "--cluster.advertise-address",
}
# Set in every child's environment: identifies the processes of one run_dir (see _reap_leftovers).
RUN_DIR_MARKER = "SEALGATE_RUN_DIR"
LOG_RUN_MARKER = "=== "  # first line written to a service's log at each start
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<auth>[^@/]*@)?(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?")


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (all sockets held until every port is chosen)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


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


def split_flags(command: list[str]) -> list[tuple[str, str | None]]:
    """`--flag=value`, `--flag value` and bare `--flag` items of a command line (positional items dropped)."""
    flags: list[tuple[str, str | None]] = []
    index = 0
    while index < len(command):
        item = command[index]
        index += 1
        if not item.startswith("--"):
            continue
        name, sep, value = item.partition("=")
        if sep:
            flags.append((name, value))
        elif index < len(command) and not command[index].startswith("-"):
            flags.append((name, command[index]))
            index += 1
        else:
            flags.append((name, None))
    return flags


def flag_value(command: list[str], name: str) -> str | None:
    for flag, value in split_flags(command):
        if flag == name:
            return value
    return None


def inherited_flags(command: list[str], own: set[str]) -> list[str]:
    return [f"{name}={value}" if value is not None else name for name, value in split_flags(command) if name not in own]


def map_path(container_path: str, mounts: list[Mount]) -> str | None:
    """Host path of a container path through the longest matching bind mount; None when no mount covers it."""
    best: Mount | None = None
    for mount in mounts:
        target = mount.target.rstrip("/")
        covers = mount.bind and (container_path == target or container_path.startswith(target + "/"))
        if covers and (best is None or len(target) > len(best.target.rstrip("/"))):
            best = mount
    if best is None:
        return None
    return best.source.rstrip("/") + container_path[len(best.target.rstrip("/")) :]


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


@dataclass
class Proc:
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


class LocalBackend(StackBackend):
    name = "local"
    containerized = False

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        progress: Callable[[str], None] = print,
        *,
        env: Mapping[str, str] | None = None,
        allow_download: bool = True,
    ) -> None:
        """`env` adds variables for the API (e.g. VERITTA_CB_THRESHOLD) above the compose file's defaults;
        `allow_download=False` refuses to provision missing binaries (tests that must not touch the network)."""
        super().__init__(root, run_dir, progress)
        self.run_dir = run_dir.resolve()
        self.data_dir = self.run_dir / "data"
        self.config_dir = self.run_dir / "config"
        self.log_dir = self.run_dir / "logs"
        self.overrides = dict(env or {})
        self.allow_download = allow_download
        self.ports: dict[str, int] = {}
        self.procs: dict[str, Proc] = {}
        self.binaries: dict[str, Binary] = {}
        self.pg_bin_dir: Path | None = None
        self.pg_user = "postgres"  # database superuser name (the compose file's POSTGRES_USER)
        self.pg_database = "postgres"
        self.console_log_command: str | None = None
        self._atexit_registered = False

    # -- configuration --------------------------------------------------------------------------------------------

    def _compose(self) -> ComposeFile:
        return ComposeFile(self.root / COMPOSE_FILE, {**os.environ, **self.overrides})

    def _allocate_ports(self) -> None:
        """Free ports once per backend; kept across down()/up() so URLs stay stable, re-chosen only if taken."""
        stale = [s for s in LOCAL_SERVICES if s not in self.ports or not port_free(self.ports[s])]
        for service, port in zip(stale, free_ports(len(stale)), strict=True):
            self.ports[service] = port

    def _addresses(self, compose: ComposeFile) -> dict[str, int]:
        addresses = dict(self.ports)
        # Prometheus scraping itself is written `localhost:9090` in many configs.
        addresses["localhost"] = self.ports["prometheus"]
        return {k: v for k, v in addresses.items() if k in compose.services or k == "localhost"}

    def _config_source(self, compose: ComposeFile, service: str, default_container: str, fallback: Path) -> Path:
        svc = compose.services.get(service)
        if svc is None:
            return fallback
        container_path = flag_value(svc.command(), "--config.file") or default_container
        host = map_path(container_path, svc.mounts(compose.base))
        return Path(host) if host else fallback

    def _write_prometheus_config(self, compose: ComposeFile) -> Path:
        svc = compose.services.get("prometheus")
        mounts = svc.mounts(compose.base) if svc else []
        source = self._config_source(
            compose, "prometheus", "/etc/prometheus/prometheus.yml", self.root / "stack/prometheus/prometheus.yml"
        )
        config = yaml.safe_load(source.read_text()) or {}
        rules: list[str] = []
        for pattern in config.get("rule_files") or []:
            mapped = map_path(str(pattern), mounts) if str(pattern).startswith("/") else None
            host = mapped or str((source.parent / str(pattern)).resolve())
            if not glob.glob(host):
                raise StackError(Problem(str(source), f"rule_files entry {pattern} matches nothing at {host}"))
            rules.append(host)
        config["rule_files"] = rules
        addresses = self._addresses(compose)
        for section in ("scrape_configs",):
            config[section] = rewrite_tree(config.get(section) or [], addresses)
        alerting = config.get("alerting") or {}
        if alerting:
            config["alerting"] = rewrite_tree(alerting, addresses)
        target = self.config_dir / "prometheus.yml"
        header = f"# Generated by the local backend from {source}; service addresses rewritten. Do not edit.\n"
        target.write_text(header + yaml.safe_dump(config, sort_keys=False))
        return target

    def _write_alertmanager_config(self, compose: ComposeFile) -> Path:
        svc = compose.services.get("alertmanager")
        mounts = svc.mounts(compose.base) if svc else []
        source = self._config_source(
            compose,
            "alertmanager",
            "/etc/alertmanager/alertmanager.yml",
            self.root / "stack/prometheus/alertmanager.yml",
        )
        config = rewrite_tree(yaml.safe_load(source.read_text()) or {}, self._addresses(compose))
        templates = []
        for pattern in config.get("templates") or []:
            mapped = map_path(str(pattern), mounts) if str(pattern).startswith("/") else None
            templates.append(mapped or str((source.parent / str(pattern)).resolve()))
        if templates:
            config["templates"] = templates
        target = self.config_dir / "alertmanager.yml"
        header = f"# Generated by the local backend from {source}; service addresses rewritten. Do not edit.\n"
        target.write_text(header + yaml.safe_dump(config, sort_keys=False))
        return target

    def _find_pg_bin_dir(self) -> Path:
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

    # -- processes ------------------------------------------------------------------------------------------------

    def _spawn(self, proc: Proc) -> None:
        proc.env = {**proc.env, RUN_DIR_MARKER: str(self.run_dir)}
        proc.log.parent.mkdir(parents=True, exist_ok=True)
        proc.log_handle = open(proc.log, "ab")  # noqa: SIM115 - lives as long as the process, closed in _stop
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        proc.log_handle.write(f"{LOG_RUN_MARKER}{stamp} start: {' '.join(proc.argv)}\n".encode())
        proc.log_handle.flush()
        try:
            proc.popen = subprocess.Popen(
                proc.argv,
                cwd=proc.cwd,
                env=proc.env,
                stdin=subprocess.DEVNULL,
                stdout=proc.log_handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: down() signals the whole group, nothing escapes
                user=proc.user,
            )
        except OSError as exc:
            proc.log_handle.close()
            raise StackError(Problem(proc.service, f"cannot start {proc.argv[0]}: {exc}")) from None
        self.procs[proc.service] = proc
        self._save_pids()
        if not self._atexit_registered:
            atexit.register(self._kill_all)
            self._atexit_registered = True

    def _stop(self, proc: Proc, timeout: float = STOP_TIMEOUT) -> None:
        popen = proc.popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, proc.stop_signal)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=timeout)
        if proc.log_handle is not None:
            proc.log_handle.close()
            proc.log_handle = None

    def _kill_all(self) -> None:
        for service in reversed(START_ORDER):
            proc = self.procs.get(service)
            if proc is not None:
                self._stop(proc)
        self._save_pids()

    def _pids_file(self) -> Path:
        return self.run_dir / "pids.json"

    def _save_pids(self) -> None:
        alive = {s: p.popen.pid for s, p in self.procs.items() if p.popen is not None and p.popen.poll() is None}
        with contextlib.suppress(OSError):
            self._pids_file().write_text(json.dumps(alive, sort_keys=True) + "\n")

    def _reap_leftovers(self) -> None:
        """Stop processes a crashed earlier run (same run_dir) left behind, identified by run_dir in their cmdline."""
        try:
            leftovers = json.loads(self._pids_file().read_text())
        except (OSError, ValueError):
            return
        marker = f"{RUN_DIR_MARKER}={self.run_dir}".encode()
        for service, pid in leftovers.items():
            try:
                environ = Path(f"/proc/{int(pid)}/environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            # Only a process carrying this run_dir's marker is ours: a recycled pid belongs to someone else.
            if marker in environ:
                self.progress(f"stack: stopping {service} (pid {pid}) left by an earlier run")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(pid), signal.SIGKILL)

    # -- services -------------------------------------------------------------------------------------------------

    def _postgres_proc(self, compose: ComposeFile) -> Proc:
        bin_dir = self.pg_bin_dir = self._find_pg_bin_dir()
        svc_env = compose.services["postgres"].environment() if "postgres" in compose.services else {}
        self.pg_user = svc_env.get("POSTGRES_USER") or "postgres"
        self.pg_database = svc_env.get("POSTGRES_DB") or self.pg_user
        data = self.data_dir / "postgres"
        os_user: str | None = None
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root: run them as the unprivileged `postgres` system user.
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise StackError(
                    Problem(
                        "postgres",
                        "running as root, and there is no `postgres` user to run PostgreSQL as",
                        "apt-get install -y postgresql creates it",
                    )
                ) from None
            os_user = entry.pw_name
            data.mkdir(parents=True, exist_ok=True)
            groups = {entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)}
            blocked = traversal_problem(data, entry.pw_uid, groups)
            if blocked:
                raise StackError(
                    Problem(
                        "postgres",
                        f"user postgres cannot reach {data}: {blocked} is closed to it",
                        "use a run directory under a path other users can traverse (e.g. a mkdtemp made 0755)",
                    )
                )
            for path in (data, *data.rglob("*")):
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        data.mkdir(parents=True, exist_ok=True)
        os.chmod(data, 0o700)
        if not (data / "PG_VERSION").exists():
            self.progress(f"stack: initdb {data}")
            done = subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", self.pg_user, "--auth=trust", "-E", "UTF8"],
                capture_output=True,
                text=True,
                timeout=120,
                user=os_user,
                cwd="/",
            )
            if done.returncode != 0:
                raise StackError(Problem("postgres", f"initdb failed: {(done.stderr or done.stdout)[-1500:]}"))
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.ports["postgres"]),
            "-c",
            "listen_addresses=127.0.0.1",  # this host only
            "-c",
            "unix_socket_directories=",  # no socket file: nothing to collide with the system cluster's
        ]
        return Proc(
            "postgres",
            argv,
            Path("/"),
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
            self.log_dir / "postgres.log",
            user=os_user,
            stop_signal=signal.SIGINT,
        )

    def _wait_postgres(self, waiter: Waiter) -> None:
        assert self.pg_bin_dir is not None
        port = str(self.ports["postgres"])

        def ready() -> tuple[bool, str]:
            done = subprocess.run(
                [str(self.pg_bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", port, "-U", self.pg_user],
                capture_output=True,
                text=True,
                timeout=10,
            )
            return done.returncode == 0, done.stdout.strip()

        waiter.until("postgres accepting connections", "postgres", ready)
        psql = [str(self.pg_bin_dir / "psql"), "-h", "127.0.0.1", "-p", port, "-U", self.pg_user, "-d", "postgres"]
        exists = subprocess.run(
            [*psql, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.pg_database}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if exists.returncode == 0 and exists.stdout.strip() != "1":
            created = subprocess.run(
                [*psql, "-c", f'CREATE DATABASE "{self.pg_database}"'], capture_output=True, text=True, timeout=30
            )
            if created.returncode != 0:
                raise StackError(Problem("postgres", f"cannot create database {self.pg_database}: {created.stderr}"))

    def _python_command(self, compose: ComposeFile, service: str, fallback: list[str]) -> tuple[list[str], Path]:
        """(arguments after the interpreter, cwd) of a Python service, as its container runs it: `-m pkg` from the
        host directory mounted at working_dir/pkg, or a `.py` script mapped through the bind mounts. Its own
        `--host`/`--port` are dropped (the caller binds 127.0.0.1 and a free port). `fallback` is relative to
        stack/ and used when the compose file does not say."""
        svc = compose.services.get(service)
        stack = self.root / "stack"
        if svc is not None:
            command = [*svc.entrypoint(), *svc.command()]
            mounts = svc.mounts(compose.base)
            own = ("--host", "--port")
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
        if fallback[0] != "-m" and not (stack / fallback[0]).is_file():
            raise StackError(Problem(service, f"cannot tell how to run it: {stack / fallback[0]} is missing"))
        return fallback, stack

    def _python_env(self, compose: ComposeFile, service: str) -> dict[str, str]:
        env = dict(os.environ)
        svc = compose.services.get(service)
        if svc is not None:
            env.update(rewrite_tree(svc.environment(), self._addresses(compose)))
        env.update(self.overrides)
        env["PYTHONUNBUFFERED"] = "1"  # one line per alert must reach the log as it happens
        return env

    def _build_procs(self, compose: ComposeFile) -> dict[str, Proc]:
        for name in ("prometheus", "alertmanager"):
            if name not in self.binaries:
                self.binaries[name] = resolve(name, allow_download=self.allow_download, progress=self.progress)
        for directory in ("prometheus", "alertmanager", "grafana"):
            (self.data_dir / directory).mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        prom_config = self._write_prometheus_config(compose)
        am_config = self._write_alertmanager_config(compose)
        prom_cmd = compose.services["prometheus"].command() if "prometheus" in compose.services else []
        am_cmd = compose.services["alertmanager"].command() if "alertmanager" in compose.services else []
        prom_flags = inherited_flags(prom_cmd, PROMETHEUS_OWN_FLAGS)
        if not any(f.startswith("--web.enable-admin-api") for f in prom_flags):
            prom_flags.append("--web.enable-admin-api")  # the backup takes a TSDB snapshot through it
        plain_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.run_dir)}
        python = sys.executable
        api_args, api_cwd = self._python_command(compose, "api", ["-m", "app"])
        log_args, log_cwd = self._python_command(compose, "console-log", ["console_log/receiver.py"])
        self.console_log_command = " ".join(log_args)
        bind = ["--host", "127.0.0.1", "--port"]
        return {
            "postgres": self._postgres_proc(compose),
            "console-log": Proc(
                "console-log",
                [python, *log_args, *bind, str(self.ports["console-log"])],
                log_cwd,
                self._python_env(compose, "console-log"),
                self.log_dir / "console-log.log",
            ),
            "alertmanager": Proc(
                "alertmanager",
                [
                    str(self.binaries["alertmanager"].path),
                    f"--config.file={am_config}",
                    f"--storage.path={self.data_dir / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
                    "--cluster.listen-address=",  # single node: no gossip port
                    *inherited_flags(am_cmd, ALERTMANAGER_OWN_FLAGS),
                ],
                self.run_dir,
                plain_env,
                self.log_dir / "alertmanager.log",
            ),
            "api": Proc(
                "api",
                [python, *api_args, *bind, str(self.ports["api"])],
                api_cwd,
                self._python_env(compose, "api"),
                self.log_dir / "api.log",
            ),
            "prometheus": Proc(
                "prometheus",
                [
                    str(self.binaries["prometheus"].path),
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={self.data_dir / 'prometheus'}",
                    f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                    *prom_flags,
                ],
                self.run_dir,
                plain_env,
                self.log_dir / "prometheus.log",
            ),
        }

    def _liveness(self) -> tuple[dict[str, str], bool, str]:
        dead = {
            s: f"exited with code {p.popen.returncode}"
            for s, p in self.procs.items()
            if p.popen is not None and p.popen.poll() is not None
        }
        waiting = [s for s in ("console-log",) if s in self.procs and not tcp_answers(self.ports[s])]
        return dead, not waiting, ", ".join(f"{s}: not listening" for s in waiting) or "all running"

    def _services_probe(self) -> tuple[bool, str]:
        _dead, met, detail = self._liveness()
        return met, detail

    def _log_tail(self, service: str, lines: int = 200) -> str:
        """The last `lines` lines of the service's current run (the log file appends one run after another)."""
        try:
            text = (self.log_dir / f"{service}.log").read_text(errors="replace")
        except OSError:
            return ""
        current = text.splitlines()
        starts = [i for i, line in enumerate(current) if line.startswith(LOG_RUN_MARKER)]
        if starts:
            current = current[starts[-1] :]
        return "\n".join(current[-lines:])

    # -- StackBackend ---------------------------------------------------------------------------------------------

    def up(self, timeout: float = 180) -> None:
        t0 = time.monotonic()
        self.started_at = time.time()
        self.timings.extra.clear()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._reap_leftovers()
        self._kill_all()  # an up() after up() without down(): never two generations of the same service
        self.procs = {}  # the previous generation's exit codes must not read as "died while starting"
        self._allocate_ports()
        waiter = Waiter(self.progress, t0 + timeout, t0, logs=self._log_tail, liveness=self._liveness)
        try:
            compose = self._compose()
            procs = self._build_procs(compose)
            self.progress(
                "stack: starting local processes ("
                + ", ".join(f"{s} 127.0.0.1:{self.ports[s]}" for s in START_ORDER)
                + f"; logs in {self.log_dir})"
            )
            for service in START_ORDER:
                self._spawn(procs[service])
                if service == "postgres":
                    self._wait_postgres(waiter)
            self.timings.up = time.monotonic() - t0
            wait_ready(waiter, self.url, self.started_at, self.timings, services_probe=self._services_probe)
        except BaseException:
            # Whatever went wrong (including Ctrl-C), nothing started here may outlive this call.
            self._kill_all()
            raise

    def down(self, remove_volumes: bool = False) -> None:
        self._kill_all()
        if remove_volumes:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _proc(self, service: str) -> Proc:
        if service == "grafana":
            raise ServiceNotRunning("grafana", GRAFANA_REASON)
        if service not in LOCAL_SERVICES:
            raise StackError(Problem(service, f"unknown service (known: {', '.join(SERVICES)})"))
        proc = self.procs.get(service)
        if proc is None or not proc.alive():
            code = proc.popen.returncode if proc is not None and proc.popen is not None else None
            raise ServiceNotRunning(service, "not started" if code is None else f"process exited with code {code}")
        return proc

    def url(self, service: str) -> str:
        self._proc(service)
        scheme = "postgresql" if service == "postgres" else "http"
        return f"{scheme}://127.0.0.1:{self.ports[service]}"

    def services(self) -> dict[str, ServiceState]:
        states: dict[str, ServiceState] = {}
        probes = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "api": "/healthz"}
        for service in SERVICES:
            if service == "grafana":
                states[service] = ServiceState(service, running=False, healthy=None, detail=GRAFANA_REASON)
                continue
            proc = self.procs.get(service)
            running = proc is not None and proc.alive()
            healthy: bool | None = None
            if running and service in probes:
                healthy = http_probe(f"http://127.0.0.1:{self.ports[service]}{probes[service]}")()[0]
            elif running:
                healthy = tcp_answers(self.ports[service])
            binary = self.binaries.get(service)
            states[service] = ServiceState(
                service,
                running=running,
                healthy=healthy,
                image=str(binary.path) if binary else (proc.argv[0] if proc else None),
                image_id=binary.version if binary else None,
                pid=proc.popen.pid if proc is not None and proc.popen is not None and running else None,
                detail=f"127.0.0.1:{self.ports.get(service)}" + (f", log {proc.log}" if proc else ""),
            )
        return states

    def logs(self, service: str, tail: int = 200) -> str:
        if service == "grafana":
            raise ServiceNotRunning("grafana", GRAFANA_REASON)
        return self._log_tail(service, tail)

    def stop_service(self, service: str) -> None:
        self._stop(self._proc(service))
        self._save_pids()

    def start_service(self, service: str, timeout: float = 60) -> None:
        if service == "grafana":
            raise ServiceNotRunning("grafana", GRAFANA_REASON)
        proc = self.procs.get(service)
        if proc is None:
            raise ServiceNotRunning(service, "never started: call up() first")
        if proc.alive():
            return
        t0 = time.monotonic()
        waiter = Waiter(self.progress, t0 + timeout, t0, logs=self._log_tail, liveness=self._liveness)
        self._spawn(Proc(proc.service, proc.argv, proc.cwd, proc.env, proc.log, proc.user, proc.stop_signal))
        probes = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "api": "/healthz"}
        if service == "postgres":
            self._wait_postgres(waiter)
        elif service in probes:
            waiter.until(f"{service} answering", service, http_probe(self.url(service) + probes[service]))
        else:
            port = self.ports[service]
            waiter.until(f"{service} listening", service, lambda: (tcp_answers(port), f"127.0.0.1:{port}"))

    def backup_args(self) -> list[str]:
        return [
            "--mode",
            "local",
            "--data-dir",
            str(self.data_dir),
            "--prometheus-url",
            self.url("prometheus"),
            "--pg-host",
            "127.0.0.1",
            "--pg-port",
            str(self.ports["postgres"]),
            "--pg-user",
            self.pg_user,
        ]

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update(
            {
                "run_dir": str(self.run_dir),
                "ports": dict(self.ports),
                "binaries": {
                    n: {"path": str(b.path), "source": b.source, "version": b.version} for n, b in self.binaries.items()
                },
                "postgres_bin_dir": str(self.pg_bin_dir) if self.pg_bin_dir else None,
                "console_log": self.console_log_command,
                "grafana": GRAFANA_REASON,
            }
        )
        return info
