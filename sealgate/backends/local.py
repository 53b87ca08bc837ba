"""The `local` backend: a described stack as plain processes on 127.0.0.1 — no Docker needed.

The same services as under compose, from the same files. Each service runs as its stack description's local recipe
says (`local.kind`, derived from its role by default): Prometheus and Alertmanager from their binaries with the
flags of their compose command and their configuration rewritten — service addresses (`api:8000`,
`http://receiver:5001/...`) pointed at the free local ports chosen here, rule files and templates mapped through
the compose bind mounts to host paths; PostgreSQL with initdb + postgres; a Python service with its compose
command, run from the host directory mounted into its container. Nothing is hand-copied: change a config in the
project and both backends run the change.

Compose secrets: a service's `secrets:` are written where its process can read them, secrets/<service>/<name> (mode
0600, directory 0700), from the same source Compose mounts them from (the `environment:` variable or the `file:`),
with service addresses inside rewritten like the configs' (a webhook URL naming another service of the stack). Every
value in a rewritten config or in a service's environment that names a secret's container path (/run/secrets/<name>,
e.g. Alertmanager's `api_url_file`) is pointed at that file. A secret with no value (its variable unset or empty) stops
the start before anything runs, naming the secret, its service and the variable — never the value.

Layout under run_dir: data/<service>, config/ (rewritten configs), secrets/<service>/ (its compose secrets),
logs/<service>.log, pids.json (lets the next run stop processes a crashed run left behind).

Processes: each child leads its own process group; down() sends SIGTERM (SIGINT — fast shutdown — to PostgreSQL),
waits STOP_TIMEOUT, then SIGKILLs the group. An exception in up() stops everything started so far; an interpreter
exit without down() does the same (atexit), so no run leaves orphans. How one process is started, stopped, found
again after a crash, and how its configuration's addresses and secret paths are rewritten, is
sealgate/backends/localprocs.py; this module is the backend that runs a whole stack with it.

Ports: chosen by the kernel (sealgate.kernel.ports.free_ports) and kept across down()/up() while free. A port can
still be taken between its choice and the service's bind: a service that dies saying so ("address already in use")
makes up() print who holds the port and start the stack once more on a new one; a second loss is a StackError naming
both.
"""

from __future__ import annotations

import atexit
import glob
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sealgate.backends.base import ServiceState, StackBackend, ToolVersion
from sealgate.backends.composefile import ComposeFile, flag_value, inherited_flags
from sealgate.backends.description import render
from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.localprocs import (
    RUN_DIR_MARKER,
    STOP_TIMEOUT,
    Proc,
    find_pg_bin_dir,
    log_tail,
    port_free,
    python_command,
    reap_leftovers,
    rewrite_address,
    rewrite_secret_paths,
    rewrite_tree,
    save_pids,
    tcp_answers,
    traversal_problem,
)
from sealgate.backends.provision import Binary, resolve
from sealgate.backends.readiness import Waiter, http_probe, wait_ready
from sealgate.backends.versions import gather_what_ran, number, parse_version_output, program_version
from sealgate.kernel.errors import Problem
from sealgate.kernel.fsutil import atomic_write
from sealgate.kernel.ports import describe_holder, free_ports, lost_bind_port, shows_lost_bind

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription

PG_START_TIMEOUT = 60.0
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


def _host_file(compose: ComposeFile, service: str, container_path: str) -> str | None:
    """The host path the service's container reads at `container_path` (None: nothing of the project is there)."""
    mounted = compose.file_at(service, container_path)
    return mounted.host if mounted is not None else None


class LocalBackend(StackBackend):
    name = "local"
    containerized = False
    rewrites_scrape_addresses = True

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        progress: Callable[[str], None] = print,
        *,
        description: StackDescription | None = None,
        env: Mapping[str, str] | None = None,
        allow_download: bool = True,
        choose_ports: Callable[[int], list[int]] = free_ports,
        only: list[str] | None = None,
    ) -> None:
        """`env` adds variables for the Python services above the compose file's (what a configuration check
        overrides); `allow_download=False` refuses to provision missing binaries (tests that must not touch the
        network); `choose_ports(n)` returns n ports to listen on (the kernel's free ones; tests inject a taken one)."""
        super().__init__(root, run_dir, progress, description=description)
        self.run_dir = run_dir.resolve()
        self.data_dir = self.run_dir / "data"
        self.config_dir = self.run_dir / "config"
        self.log_dir = self.run_dir / "logs"
        self.overrides = dict(env or {})
        self.allow_download = allow_download
        self.ports: dict[str, int] = {}
        self.choose_ports = choose_ports
        # Ports lost between choice and start in the last up() (service, port, holder): at most one, then retried.
        self.port_races: list[dict[str, object]] = []
        self.procs: dict[str, Proc] = {}
        self.binaries: dict[str, Binary] = {}
        self.pg_bin_dir: Path | None = None
        self.pg_user = "postgres"  # database superuser name (the compose file's POSTGRES_USER)
        self.pg_database = "postgres"
        self.commands: dict[str, str] = {}  # Python service -> the command it runs (for evidence)
        self.tools: dict[str, ToolVersion] = {}  # service -> the program it runs and its version (tool_versions)
        self._atexit_registered = False
        # Services run here, in start order, and the ones that cannot run as local processes (with the reason).
        self.local_services = [n for n, s in self.description.services.items() if s.local.kind != "unavailable"]
        self.unavailable = {
            n: s.local.reason for n, s in self.description.services.items() if s.local.kind == "unavailable"
        }
        # Those of them that cannot run on this machine (no recipe, program not installed): for an optional one, a
        # check that needs it is skipped (ServiceNotRunning.optional), never errored.
        self.cannot_run = set(self.unavailable)
        if only is not None:  # a copy of part of the stack
            for name in [n for n in self.local_services if n not in only]:
                self.unavailable[name] = f"not part of this copy of the stack ({self.run_dir.name})"
            self.local_services = [n for n in self.local_services if n in only]

    def _kind(self, kind: str) -> list[str]:
        return [n for n in self.local_services if self.description.services[n].local.kind == kind]

    # -- configuration --------------------------------------------------------------------------------------------

    def _compose(self) -> ComposeFile:
        return ComposeFile(
            self.root / self.description.compose_file, {**os.environ, **self.overrides}, self.description.compose_file
        )

    def _allocate_ports(self) -> None:
        """Free ports once per backend; kept across down()/up() so URLs stay stable, re-chosen only if taken."""
        stale = [s for s in self.local_services if s not in self.ports or not port_free(self.ports[s])]
        for service, port in zip(stale, self.choose_ports(len(stale)), strict=True):
            self.ports[service] = port

    def _addresses(self, compose: ComposeFile) -> dict[str, int]:
        addresses = dict(self.ports)
        # Prometheus scraping itself is written `localhost:9090` in many configs.
        for prometheus in self._kind("prometheus")[:1]:
            addresses["localhost"] = self.ports[prometheus]
        return {k: v for k, v in addresses.items() if k in compose.services or k == "localhost"}

    def _secret_files(self, compose: ComposeFile, service: str) -> dict[str, str]:
        """container path -> host file of each compose secret `service` uses, (re)written for this start."""
        refs = compose.services[service].secrets()
        if not refs:
            return {}
        directory = self.run_dir / "secrets" / service
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        addresses = self._addresses(compose)
        files: dict[str, str] = {}
        for ref in refs:
            value = compose.secret_value(ref.name, service)
            # One address per line at most (a URL, a host:port): rewritten as the configs' are, the rest kept.
            lines = [rewrite_address(line.strip(), addresses) if line.strip() else line for line in value.split("\n")]
            target = directory / ref.name
            atomic_write(target, "\n".join(lines).encode(), mode=0o600)
            files[ref.target] = str(target)
        return files

    def _config_source(self, compose: ComposeFile, service: str, default_container: str) -> Path:
        """The host file behind the config a service reads (`--config.file`, else the image's default path), as the
        compose file gives it to the container (`ComposeFile.file_at`: a bind mount of it or of a directory above
        it, or a `configs:` entry)."""
        svc = compose.services[service]
        container_path = flag_value(svc.command(), "--config.file") or default_container
        host = _host_file(compose, service, container_path)
        if host is None or not Path(host).is_file():
            raise StackError(
                Problem(
                    service,
                    f"its configuration {container_path} is not a file bind-mounted from the project",
                    f"mount it in {self.description.compose_file} so the local backend can read it",
                )
            )
        return Path(host)

    def _write_prometheus_config(self, compose: ComposeFile, service: str) -> Path:
        source = self._config_source(compose, service, "/etc/prometheus/prometheus.yml")
        config = yaml.safe_load(source.read_text()) or {}
        # Prometheus reads a relative entry from its configuration's directory in the container.
        reads = flag_value(compose.services[service].command(), "--config.file") or "/etc/prometheus/prometheus.yml"
        rules: list[str] = []
        for pattern in config.get("rule_files") or []:
            inside = str(pattern) if str(pattern).startswith("/") else f"{reads.rsplit('/', 1)[0]}/{pattern}"
            hosts = compose.host_patterns(service, inside) or [str((source.parent / str(pattern)).resolve())]
            for host in hosts:
                if not glob.glob(host):
                    raise StackError(Problem(str(source), f"rule_files entry {pattern} matches nothing at {host}"))
            rules.extend(hosts)
        config["rule_files"] = rules
        addresses = self._addresses(compose)
        for section in ("scrape_configs",):
            config[section] = rewrite_tree(config.get(section) or [], addresses)
        alerting = config.get("alerting") or {}
        if alerting:
            config["alerting"] = rewrite_tree(alerting, addresses)
        config = rewrite_secret_paths(config, self._secret_files(compose, service))
        target = self.config_dir / f"{service}.yml"
        header = f"# Generated by the local backend from {source}; service addresses rewritten. Do not edit.\n"
        target.write_text(header + yaml.safe_dump(config, sort_keys=False))
        return target

    def _write_alertmanager_config(self, compose: ComposeFile, service: str) -> Path:
        source = self._config_source(compose, service, "/etc/alertmanager/alertmanager.yml")
        config = rewrite_tree(yaml.safe_load(source.read_text()) or {}, self._addresses(compose))
        config = rewrite_secret_paths(config, self._secret_files(compose, service))
        templates = []
        for pattern in config.get("templates") or []:
            mapped = _host_file(compose, service, str(pattern)) if str(pattern).startswith("/") else None
            templates.append(mapped or str((source.parent / str(pattern)).resolve()))
        if templates:
            config["templates"] = templates
        target = self.config_dir / f"{service}.yml"
        header = f"# Generated by the local backend from {source}; service addresses rewritten. Do not edit.\n"
        target.write_text(header + yaml.safe_dump(config, sort_keys=False))
        return target

    def _find_pg_bin_dir(self) -> Path:
        return find_pg_bin_dir()

    # -- processes ------------------------------------------------------------------------------------------------

    def _spawn(self, proc: Proc) -> None:
        proc.env = {**proc.env, RUN_DIR_MARKER: str(self.run_dir)}
        proc.start()
        self.procs[proc.service] = proc
        self._save_pids()
        if not self._atexit_registered:
            atexit.register(self._kill_all)
            self._atexit_registered = True

    def _stop(self, proc: Proc, timeout: float = STOP_TIMEOUT) -> None:
        proc.stop(timeout)

    def _kill_all(self) -> None:
        for service in reversed(self.local_services):
            proc = self.procs.get(service)
            if proc is not None:
                self._stop(proc)
        self._save_pids()

    def _pids_file(self) -> Path:
        return self.run_dir / "pids.json"

    def _save_pids(self) -> None:
        save_pids(self._pids_file(), self.procs)

    def _reap_leftovers(self) -> None:
        """Stop processes a crashed earlier run (same run_dir) left behind."""
        reap_leftovers(self._pids_file(), self.run_dir, self.progress)

    # -- services -------------------------------------------------------------------------------------------------

    def _postgres_proc(self, compose: ComposeFile, service: str) -> Proc:
        """PostgreSQL as the official image runs it: POSTGRES_USER (superuser) and POSTGRES_DB from its compose
        environment."""
        bin_dir = self.pg_bin_dir = self._find_pg_bin_dir()
        svc_env = compose.services[service].environment()
        self.pg_user = svc_env.get("POSTGRES_USER") or "postgres"
        self.pg_database = svc_env.get("POSTGRES_DB") or self.pg_user
        data = self.data_dir / service
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
            str(self.ports[service]),
            "-c",
            "listen_addresses=127.0.0.1",  # this host only
            "-c",
            "unix_socket_directories=",  # no socket file: nothing to collide with the system cluster's
        ]
        return Proc(
            service,
            argv,
            Path("/"),
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
            self.log_dir / f"{service}.log",
            user=os_user,
            stop_signal=signal.SIGINT,
        )

    def _wait_postgres(self, waiter: Waiter, service: str) -> None:
        assert self.pg_bin_dir is not None
        port = str(self.ports[service])

        def ready() -> tuple[bool, str]:
            done = subprocess.run(
                [str(self.pg_bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", port, "-U", self.pg_user],
                capture_output=True,
                text=True,
                timeout=10,
            )
            return done.returncode == 0, done.stdout.strip()

        waiter.until(f"{service} accepting connections", service, ready)
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
                raise StackError(Problem(service, f"cannot create database {self.pg_database}: {created.stderr}"))

    def _python_command(self, compose: ComposeFile, service: str) -> tuple[list[str], Path]:
        return python_command(self.description, compose, service)

    def _python_env(self, compose: ComposeFile, service: str) -> dict[str, str]:
        env = dict(os.environ)
        svc = compose.services.get(service)
        if svc is not None:
            declared = rewrite_tree(svc.environment(), self._addresses(compose))
            env.update(rewrite_secret_paths(declared, self._secret_files(compose, service)))
        env.update(self.overrides)
        env["PYTHONUNBUFFERED"] = "1"  # one line per alert must reach the log as it happens
        return env

    def _build_procs(self, compose: ComposeFile) -> dict[str, Proc]:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for service in self.description.services:
            (self.data_dir / service).mkdir(parents=True, exist_ok=True)
        procs: dict[str, Proc] = {}
        for service in list(self.local_services):
            try:
                procs[service] = self._proc_for(compose, service)
            except StackError as exc:
                if not self.description.services[service].optional:
                    raise
                # Optional (stack description) and it cannot run as a local process here: the stack runs without it,
                # and every check that needs it is skipped with this reason.
                self.unavailable[service] = str(exc)
                self.cannot_run.add(service)
                self.local_services.remove(service)
                self.ports.pop(service, None)  # no configuration points at a port nothing will listen on
                self.progress(f"stack: optional service {service} left out, it cannot run here: {exc}")
        return procs

    def _proc_for(self, compose: ComposeFile, service: str) -> Proc:
        recipe = self.description.services[service].local
        plain_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.run_dir)}
        log = self.log_dir / f"{service}.log"
        if recipe.kind == "postgres":
            return self._postgres_proc(compose, service)
        if recipe.kind == "python":
            args, cwd = self._python_command(compose, service)
            self.commands[service] = " ".join(args)
            bind = [recipe.host_flag, "127.0.0.1", recipe.port_flag, str(self.ports[service])]
            return Proc(service, [sys.executable, *args, *bind], cwd, self._python_env(compose, service), log)
        if recipe.kind == "command":
            facts = self._start_facts(compose, service)
            where = f"{self.description.path}: services.{service}.local"
            argv = render(list(recipe.command), facts, where)
            if shutil.which(argv[0]) is None:
                raise StackError(
                    Problem(service, f"{argv[0]}: not installed", f"install it, or set its `local.command` in {where}")
                )
            declared = rewrite_tree(compose.services[service].environment(), self._addresses(compose))
            env = {**plain_env, **rewrite_secret_paths(declared, self._secret_files(compose, service))}
            env.update({key: render([value], facts, where)[0] for key, value in recipe.env.items()})
            self.commands[service] = " ".join(argv)
            return Proc(service, argv, self.run_dir, env, log)
        if recipe.kind not in self.binaries:
            self.binaries[recipe.kind] = resolve(
                recipe.kind, allow_download=self.allow_download, progress=self.progress
            )
        binary = str(self.binaries[recipe.kind].path)
        command = compose.services[service].command()
        listen = f"--web.listen-address=127.0.0.1:{self.ports[service]}"
        if recipe.kind == "prometheus":
            flags = inherited_flags(command, PROMETHEUS_OWN_FLAGS)
            if not any(f.startswith("--web.enable-admin-api") for f in flags):
                flags.append("--web.enable-admin-api")  # a backup takes a TSDB snapshot through it
            config = self._write_prometheus_config(compose, service)
            argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir / service}", listen]
        else:
            flags = inherited_flags(command, ALERTMANAGER_OWN_FLAGS)
            config = self._write_alertmanager_config(compose, service)
            argv = [binary, f"--config.file={config}", f"--storage.path={self.data_dir / service}", listen]
            argv.append("--cluster.listen-address=")  # single node: no gossip port
        return Proc(service, [*argv, *flags], self.run_dir, plain_env, log)

    def _start_facts(self, compose: ComposeFile, service: str) -> dict[str, str]:
        """Placeholders of a `command` recipe: its own `{port}` and `{data_dir}`, and every local service's
        `{port:S}`, `{url:S}` and `{env:S:VAR}` (the variables its compose service declares)."""
        facts = {"port": str(self.ports[service]), "data_dir": str(self.data_dir / service)}
        for name in self.local_services:
            facts[f"port:{name}"] = str(self.ports[name])
            facts[f"url:{name}"] = f"{self.description.services[name].scheme}://127.0.0.1:{self.ports[name]}"
            for key, value in compose.services[name].environment().items():
                facts[f"env:{name}:{key}"] = value
        return facts

    def _liveness(self) -> tuple[dict[str, str], bool, str]:
        dead = {
            s: f"exited with code {p.popen.returncode}"
            for s, p in self.procs.items()
            if p.popen is not None and p.popen.poll() is not None
        }
        # A service with no HTTP readiness probe is ready once it listens (PostgreSQL has its own wait).
        silent = [
            s
            for s in self.procs
            if not self.description.services[s].ready and self.description.services[s].local.kind != "postgres"
        ]
        waiting = [s for s in silent if not tcp_answers(self.ports[s])]
        return dead, not waiting, ", ".join(f"{s}: not listening" for s in waiting) or "all running"

    def _services_probe(self) -> tuple[bool, str]:
        _dead, met, detail = self._liveness()
        return met, detail

    def _log_tail(self, service: str, lines: int = 200) -> str:
        """The last `lines` lines of the service's current run (the log file appends one run after another)."""
        return log_tail(self.log_dir / f"{service}.log", lines)

    # -- StackBackend ---------------------------------------------------------------------------------------------

    def up(self, timeout: float = 180) -> None:
        t0 = time.monotonic()
        self.started_at = time.time()
        self.timings.extra.clear()
        self.port_races = []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._reap_leftovers()
        self._kill_all()  # an up() after up() without down(): never two generations of the same service
        self.procs = {}  # the previous generation's exit codes must not read as "died while starting"
        self._allocate_ports()
        waiter = Waiter(
            self.progress, t0 + timeout, t0, logs=self._log_tail, liveness=self._liveness, cancelled=self.cancelled
        )
        try:
            try:
                self._start_all(waiter, t0)
                return
            except StackError:
                lost = self._lost_bind()
                if lost is None:
                    raise
            # A port chosen free was taken before the service bound it (anything may take a port of the ephemeral
            # range at any moment): say who took it, and start everything once more on a newly chosen port.
            service, port, holder = lost
            self.progress(
                f"stack: {service}'s port 127.0.0.1:{port} was taken between choice and start, by {holder}; "
                "starting the stack once more on a new free port"
            )
            self._kill_all()
            self.procs = {}
            del self.ports[service]
            self._allocate_ports()
            try:
                self._start_all(waiter, t0)
            except StackError as exc:
                again = self._lost_bind()
                if again is None:
                    raise
                raise StackError(
                    Problem(
                        again[0],
                        f"port 127.0.0.1:{again[1]} was taken between choice and start again, by {again[2]} "
                        f"(the first try lost 127.0.0.1:{port} to {holder})",
                        "something on this machine keeps taking fresh ports: see the holder",
                    ),
                    logs=exc.logs,
                ) from None
        except BaseException:
            # Whatever went wrong (including Ctrl-C), nothing started here may outlive this call.
            self._kill_all()
            raise

    def _start_all(self, waiter: Waiter, t0: float) -> None:
        compose = self._compose()
        missing = compose.secret_problems(self.local_services)
        if missing:
            raise StackError(*missing, "no service was started: every secret the stack uses needs a value")
        self._refuse_below_minimum()
        procs = self._build_procs(compose)
        self.progress(
            "stack: starting local processes ("
            + ", ".join(f"{s} 127.0.0.1:{self.ports[s]}" for s in self.local_services)
            + f"; logs in {self.log_dir})"
        )
        for service in self.local_services:
            self._spawn(procs[service])
            if self.description.services[service].local.kind == "postgres":
                self._wait_postgres(waiter, service)
        self.timings.up = time.monotonic() - t0
        wait_ready(
            waiter, self.url, self.started_at, self.timings, self.description, self.local_services, self._services_probe
        )
        self.record_what_ran()

    def _lost_bind(self) -> tuple[str, int, str] | None:
        """(service, port, holder) when a service died because its port was taken (its log says so), else None.
        Recorded in port_races for evidence."""
        dead, _met, _detail = self._liveness()
        for service in sorted(dead):
            text = self._log_tail(service)
            if shows_lost_bind(text):
                # Python servers do not name the port in their error: it is the one this service was given.
                port = lost_bind_port(text) or self.ports[service]
                holder = describe_holder(port)
                self.port_races.append({"service": service, "port": port, "holder": holder})
                return service, port, holder
        return None

    def copy(self, name: str, run_dir: Path, services: list[str] | None = None) -> LocalBackend:
        twin = LocalBackend(
            self.root,
            run_dir,
            lambda line: self.progress(f"[{name}] {line}"),
            description=self.description,
            env=self.overrides,
            allow_download=self.allow_download,
            only=services,
        )
        twin.tools = self.tools  # the same programs: asked their versions once
        self.share_facts_with(twin)
        return twin

    def down(self, remove_volumes: bool = False) -> None:
        self._kill_all()
        # Secrets live on disk only while their processes run (as in a container's /run/secrets).
        shutil.rmtree(self.run_dir / "secrets", ignore_errors=True)
        if remove_volumes:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _unavailable(self, service: str) -> None:
        if service in self.unavailable:
            decl = self.description.services.get(service)
            optional = decl is not None and decl.optional and service in self.cannot_run
            raise ServiceNotRunning(service, self.unavailable[service], optional=optional)
        if service not in self.description.services:
            raise StackError(Problem(service, f"unknown service (described: {', '.join(self.description.services)})"))

    def _proc(self, service: str) -> Proc:
        self._unavailable(service)
        proc = self.procs.get(service)
        if proc is None or not proc.alive():
            code = proc.popen.returncode if proc is not None and proc.popen is not None else None
            raise ServiceNotRunning(service, "not started" if code is None else f"process exited with code {code}")
        return proc

    def url(self, service: str) -> str:
        self._proc(service)
        return f"{self.description.services[service].scheme}://127.0.0.1:{self.ports[service]}"

    def services(self) -> dict[str, ServiceState]:
        states: dict[str, ServiceState] = {}
        for service, decl in self.description.services.items():
            if service in self.unavailable:
                states[service] = ServiceState(service, running=False, healthy=None, detail=self.unavailable[service])
                continue
            proc = self.procs.get(service)
            running = proc is not None and proc.alive()
            healthy: bool | None = None
            if running and decl.ready:
                healthy = http_probe(f"http://127.0.0.1:{self.ports[service]}{decl.ready}")()[0]
            elif running:
                healthy = tcp_answers(self.ports[service])
            binary = self.binaries.get(decl.local.kind)
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
        self._unavailable(service)
        return self._log_tail(service, tail)

    def stop_service(self, service: str) -> None:
        self._stop(self._proc(service))
        self._save_pids()

    def start_service(self, service: str, timeout: float = 60) -> None:
        self._unavailable(service)
        proc = self.procs.get(service)
        if proc is None:
            raise ServiceNotRunning(service, "never started: call up() first")
        if proc.alive():
            return
        t0 = time.monotonic()
        waiter = Waiter(
            self.progress, t0 + timeout, t0, logs=self._log_tail, liveness=self._liveness, cancelled=self.cancelled
        )
        self._spawn(Proc(proc.service, proc.argv, proc.cwd, proc.env, proc.log, proc.user, proc.stop_signal))
        decl = self.description.services[service]
        if decl.local.kind == "postgres":
            self._wait_postgres(waiter, service)
        elif decl.ready:
            waiter.until(f"{service} answering", service, http_probe(self.url(service) + decl.ready))
        else:
            port = self.ports[service]
            waiter.until(f"{service} listening", service, lambda: (tcp_answers(port), f"127.0.0.1:{port}"))

    def environment(self, service: str) -> dict[str, str]:
        """The variables its compose service declares (addresses rewritten) and the overrides given here — not
        this host's whole environment, which a Python service also inherits."""
        self._unavailable(service)
        compose = self._compose()
        declared = rewrite_tree(compose.services[service].environment(), self._addresses(compose))
        if self.description.services[service].local.kind == "python":
            declared.update(self.overrides)
        return declared

    def facts(self) -> dict[str, str]:
        return {**super().facts(), "data_dir": str(self.data_dir)}

    # -- what ran (evidence): every program and its version ----------------------------------------------------------

    def tool_versions(self) -> dict[str, ToolVersion]:
        """The program each local service runs and the version it reports, asked once per program: the binary's
        `--version` (Prometheus, Alertmanager, PostgreSQL's `postgres`, a `command` recipe's program), the running
        interpreter's for a Python service. A program that cannot be found or says no version is recorded with why."""
        for service in self.local_services:
            if service not in self.tools:
                try:
                    self.tools[service] = self._tool_version(service)
                except StackError as exc:  # not installed: up() says so where it starts it; here only the record
                    self.tools[service] = ToolVersion(self.description.services[service].local.kind, None, str(exc))
        return {service: self.tools[service] for service in self.local_services}

    def _tool_version(self, service: str) -> ToolVersion:
        recipe = self.description.services[service].local
        if recipe.kind in ("prometheus", "alertmanager"):
            if recipe.kind not in self.binaries:
                self.binaries[recipe.kind] = resolve(
                    recipe.kind, allow_download=self.allow_download, progress=self.progress
                )
            binary = self.binaries[recipe.kind]
            version = parse_version_output(binary.version)
            return ToolVersion(str(binary.path), version, "" if version else f"`--version` said {binary.version!r}")
        if recipe.kind == "postgres":
            return program_version(str(self._find_pg_bin_dir() / "postgres"))
        if recipe.kind == "python":
            # The interpreter its command runs with, named: a bare number would read as the service's own version.
            # Named by its program, not its path: evidence travels into seal commits, a machine's paths must not.
            return ToolVersion(Path(sys.executable).name, f"Python {platform.python_version()}")
        program = recipe.command[0] if recipe.command else ""
        found = shutil.which(program) if program else None
        if found is None:
            return ToolVersion(program, None, f"{program}: not installed")
        return program_version(found)

    def _refuse_below_minimum(self) -> None:
        """A service whose description sets `local.min_version` runs only with that version of its program or a
        later one: an older one (or one that says no version) stops the start before anything runs, naming both."""
        problems: list[Problem] = []
        tools = self.tool_versions()
        for service in self.local_services:
            recipe = self.description.services[service].local
            if recipe.min_version is None:
                continue
            tool = tools[service]
            running = number(tool.version) if tool.version else None
            minimum = number(recipe.min_version)
            if running is not None and minimum is not None and running >= minimum:
                continue
            if running is None and self.description.services[service].optional and not Path(tool.tool).is_file():
                continue  # its program is not on this machine: an optional service is left out, never run below it
            found = f"{tool.tool} is {tool.version}" if tool.version else f"the version of {tool.tool} is unknown"
            why = "" if tool.version else f" ({tool.why})"
            problems.append(
                Problem(
                    recipe.min_version_at,
                    f"{service}: {found}{why}, below the minimum {recipe.min_version} the stack description requires",
                    f"install {recipe.kind if recipe.kind != 'command' else tool.tool} {recipe.min_version} or later, "
                    "or lower `min_version` there",
                )
            )
        if problems:
            raise StackError(*problems, "no service was started: the local backend refuses programs below the minimum")

    def _gather_what_ran(self) -> dict[str, Any]:
        return gather_what_ran(self)

    def ran_as(self, service: str) -> str:
        tool = self.tools.get(service)
        return tool.tool if tool is not None else service

    def database_version(self, service: str) -> str:
        """`SHOW server_version` by psql to the local PostgreSQL (it trusts local connections)."""
        self._proc(service)  # ServiceNotRunning when it does not run here
        if self.pg_bin_dir is None:
            raise StackError(Problem(service, "no PostgreSQL binaries were found for it"))
        argv = [str(self.pg_bin_dir / "psql"), "-X", "-tA", "-h", "127.0.0.1", "-p", str(self.ports[service])]
        argv += ["-U", self.pg_user, "-d", "postgres", "-c", "SHOW server_version"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(Problem(service, f"psql did not run: {type(exc).__name__}")) from None
        if done.returncode != 0 or not done.stdout.strip():
            raise StackError(Problem(service, f"psql exited {done.returncode}: {done.stderr.strip()[-300:]}"))
        return done.stdout.strip().splitlines()[-1].strip()

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update(
            {
                "run_dir": str(self.run_dir),
                "ports": dict(self.ports),
                "port_choice": "free",  # always chosen by the kernel at start
                "port_races": list(self.port_races),
                "binaries": {
                    n: {"path": str(b.path), "source": b.source, "version": b.version} for n, b in self.binaries.items()
                },
                "postgres_bin_dir": str(self.pg_bin_dir) if self.pg_bin_dir else None,
                "commands": dict(self.commands),
                # Only what was asked already: describing a backend never starts or downloads a program.
                "tools": {n: t.to_json() for n, t in sorted(self.tools.items()) if n in self.local_services},
                "unavailable": dict(self.unavailable),
            }
        )
        return info
