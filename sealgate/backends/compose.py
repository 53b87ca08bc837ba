"""The `compose` backend: a described stack under Docker Compose (v2 `docker compose`, v1 `docker-compose` as a
fallback), inspected through the Docker SDK.

Images: when the images the compose file names (pinned, unless overridden) are all present locally they are used as
they are; when some are missing and the stack description names an offline env file (`compose.offline_env`) whose
images are present, `--env-file` points the file at them (there is no image registry on some machines). Which of
the two ran is kept in `image_source` / `env_file` and in `describe()` for evidence. A compose profile is enabled only
when the images of its services exist locally; a described service left out that way is *unavailable* with the
reason, and its volumes are still created so a backup always finds every volume.

Host ports: fixed by default (the compose file's, or the variable it reads for each, `${X_PORT:-9090}`), where a
taken port is a StackError naming its holder. With free ports (SEALGATE_PORTS=free, or `free_ports=True`) every
published host port is chosen by the kernel right before each `compose up`; a port taken between that choice and
Docker's bind (the kernel may hand it to anyone in the meantime) prints who holds it, brings the partial project down
and starts once more on new ports.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealgate.backends.base import ServiceState, StackBackend
from sealgate.backends.composefile import ComposeFile, read_env_file
from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.readiness import Waiter, http_probe, wait_ready
from sealgate.backends.versions import gather_what_ran
from sealgate.kernel.errors import Problem
from sealgate.kernel.fsutil import sha256_file
from sealgate.kernel.ports import describe_holder, free_ports_requested, lost_bind_port
from sealgate.kernel.ports import free_ports as kernel_free_ports

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription

CLI_TIMEOUT = 120.0  # one compose command other than `up` (stop, start, down, logs)
LOG_TAIL = 200


@dataclass(frozen=True)
class ComposeCommand:
    argv: tuple[str, ...]  # ("docker", "compose") or ("docker-compose",)
    version: str
    v1: bool  # Compose v1: containers named proj_svc_1, no top-level `name:`

    def describe(self) -> str:
        return f"{' '.join(self.argv)} {self.version}"


def _version_of(argv: list[str], timeout: float) -> str | None:
    try:
        done = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = done.stdout.strip().lstrip("v")
    return version if done.returncode == 0 and version else None


def detect_compose(timeout: float = 10.0) -> ComposeCommand | None:
    """Compose v2 as a docker CLI plugin, else a standalone `docker-compose` (v1, or v2 installed standalone)."""
    version = _version_of(["docker", "compose"], timeout)
    if version:
        return ComposeCommand(("docker", "compose"), version, v1=False)
    version = _version_of(["docker-compose"], timeout)
    if version:
        return ComposeCommand(("docker-compose",), version, v1=version.startswith("1."))
    return None


def project_slug(text: str) -> str:
    """Compose project names: lowercase letters, digits, `-` and `_`, starting with a letter or digit."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return slug or "stack"


def default_project(root: Path) -> str:
    """The compose project ComposeBackend uses for the checkout at `root` when it is given none:
    $SEALGATE_COMPOSE_PROJECT, else `sealgate-<slug of the directory name>` (so a check can tell this checkout's own
    containers from anyone else's before the stack starts)."""
    return project_slug(os.environ.get("SEALGATE_COMPOSE_PROJECT") or f"sealgate-{project_slug(root.name)}")


class ComposeBackend(StackBackend):
    name = "compose"
    containerized = True

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        progress: Callable[[str], None] = print,
        *,
        description: StackDescription | None = None,
        project: str | None = None,
        ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        compose: ComposeCommand | None = None,
        free_ports: bool | None = None,
        choose_ports: Callable[[int], list[int]] = kernel_free_ports,
        only: list[str] | None = None,
    ) -> None:
        """`project` defaults to $SEALGATE_COMPOSE_PROJECT, else `sealgate-<slug of the repo dir>`; `ports` pins
        host ports by service, through the variable the compose file reads for each (`${X_PORT:-9090}`); `env` adds
        variables for the compose file, above the process environment. `free_ports` (default: SEALGATE_PORTS=free)
        makes every other published host port one that `choose_ports(n)` returns at each up() (the kernel's free
        ports; tests inject a taken one). `only` starts just those services (and what they depend on)."""
        super().__init__(root, run_dir, progress, description=description)
        self.only = list(only) if only is not None else None
        self.project = project_slug(project) if project else default_project(root)
        self.compose_file = root / self.description.compose_file
        self.overrides: dict[str, str] = dict(env or {})
        self.pinned: set[str] = set()  # services whose host port the caller fixed
        for service, port in (ports or {}).items():
            self.overrides[self.host_port_variable(service)] = str(int(port))
            self.pinned.add(service)
        self.free_ports = free_ports_requested() if free_ports is None else free_ports
        self.choose_ports = choose_ports
        self.ports_used: dict[str, int] = {}  # service -> host port of the last up()
        # Host ports lost between choice and start in the last up() (service, port, holder): at most one is retried.
        self.port_races: list[dict[str, object]] = []
        self._compose = compose
        self._client: Any = None
        self.env_file: Path | None = None  # the offline env file, when its images stand in for the configured ones
        self.image_source: str | None = None  # "configured" (images the file names) | "offline"
        self.images: dict[str, str] = {}  # service -> image reference it runs
        self.profiles: set[str] = set()
        self.unavailable: dict[str, str] = {}  # described service -> why it does not run here
        # Those of them that cannot run on this machine (image absent, profile off): for an optional one, a check that
        # needs it is skipped (ServiceNotRunning.optional), never errored.
        self.cannot_run: set[str] = set()
        self.enabled: list[str] = []
        self._prepared = False

    def host_port_variable(self, service: str) -> str:
        """The variable the compose file reads for `service`'s published host port."""
        decl = self.description.service(service)
        variables = ComposeFile(self.compose_file, os.environ, self.description.compose_file).host_port_variables(
            service
        )
        if decl.port not in variables:
            raise StackError(
                Problem(
                    f"{self.description.compose_file}: $.services.{service}.ports",
                    f"no variable sets the host port of container port {decl.port}",
                    "publish it as 127.0.0.1:${SOME_PORT:-default}:port so its host port can be chosen",
                )
            )
        return variables[decl.port]

    # -- plumbing -------------------------------------------------------------------------------------------------

    @property
    def compose(self) -> ComposeCommand:
        if self._compose is None:
            self._compose = detect_compose()
            if self._compose is None:
                raise StackError(
                    Problem(
                        "compose",
                        "neither `docker compose` (v2) nor `docker-compose` is installed",
                        "bash .ci/setup-system.sh installs Compose v2",
                    )
                )
        return self._compose

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker  # imported here: selecting the local backend must not need the Docker SDK

            try:
                self._client = docker.from_env(timeout=30)
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise StackError(
                    Problem("docker", f"no Docker engine answers: {exc}", "start dockerd (bash .ci/setup-system.sh)")
                ) from None
        return self._client

    def _env(self, env_file: Path | None) -> dict[str, str]:
        """Variables as Compose resolves them: the env file beneath the process environment, our overrides on top."""
        merged = read_env_file(env_file) if env_file else {}
        merged.update(os.environ)
        merged.update(self.overrides)
        return merged

    def _image_present(self, reference: str) -> bool:
        import docker

        try:
            self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            raise StackError(Problem("docker", f"cannot inspect image {reference}: {exc}")) from None
        return True

    def _missing_images(self, file: ComposeFile, services: list[str]) -> list[str]:
        return [
            f"{name}: {file.services[name].image}"
            for name in services
            if file.services[name].image and not self._image_present(str(file.services[name].image))
        ]

    def _prepare(self, strict: bool = True) -> ComposeFile:
        """Choose images (configured or offline), the profiles, and make sure every named volume exists."""
        offline_env = self.description.offline_env
        env_file_path = self.root / offline_env if offline_env else None
        file = ComposeFile(self.compose_file, self._env(None), self.description.compose_file)
        # An optional service (stack description) whose image is absent is left out, not a reason to start nothing.
        optional = [
            name
            for name, decl in self.description.services.items()
            if decl.optional and name in file.services and not file.services[name].profiles
        ]
        missing = self._missing_images(file, [n for n in file.enabled(set()) if n not in optional])
        self.env_file, self.image_source = None, "configured"
        if missing:
            if env_file_path is None or not env_file_path.is_file():
                if strict:
                    raise StackError(
                        Problem(
                            "compose",
                            f"images missing locally: {'; '.join(missing)}",
                            "pull or build them (the stack description names no `compose.offline_env`)"
                            if env_file_path is None
                            else f"{offline_env} is missing",
                        )
                    )
            else:
                offline = ComposeFile(self.compose_file, self._env(env_file_path), self.description.compose_file)
                still_missing = self._missing_images(offline, [n for n in offline.enabled(set()) if n not in optional])
                if still_missing and strict:
                    build = self.description.offline_build
                    raise StackError(
                        Problem(
                            "compose",
                            f"images missing locally: {'; '.join(missing)}; with {offline_env}: "
                            f"{'; '.join(still_missing)}",
                            f"build the offline images with `{build}`" if build else "build the offline images",
                        )
                    )
                file, self.env_file, self.image_source = offline, env_file_path, "offline"
        self.profiles, self.unavailable = self._choose_profiles(file)
        for name in optional:
            for absent in self._missing_images(file, [name]):
                self.unavailable.setdefault(name, f"optional, and its image is not on this machine ({absent})")
        self.cannot_run = set(self.unavailable)
        self.enabled = [name for name in file.enabled(self.profiles) if name not in self.unavailable]
        if self.only is not None:
            wanted = _with_dependencies(file, self.only)
            for name in self.description.services:
                if name not in wanted:
                    self.unavailable.setdefault(name, f"not part of this copy of the stack ({self.project})")
            self.enabled = [name for name in self.enabled if name in wanted]
        self.images = {name: str(file.services[name].image) for name in self.enabled if file.services[name].image}
        if strict:
            # Compose refuses an unset variable only when it creates the container, one at a time, and takes an empty
            # one: say every missing secret at once, before anything starts.
            missing = file.secret_problems(self.enabled)
            if missing:
                raise StackError(*missing, "compose up was not run: every secret the stack uses needs a value")
        self._prepared = True
        return file

    def _choose_profiles(self, file: ComposeFile) -> tuple[set[str], dict[str, str]]:
        """A profile of a described service is enabled when the images of all its services exist locally (there may
        be no registry to pull them from); every described service left out is unavailable, with the reason."""
        profiles: set[str] = set()
        unavailable: dict[str, str] = {}
        candidates = {
            p for name in self.description.services if name in file.services for p in file.services[name].profiles
        }
        for profile in sorted(candidates):
            members = [s for s in file.services.values() if profile in s.profiles]
            absent = [f"{s.name}: {s.image}" for s in members if s.image and not self._image_present(s.image)]
            if absent:
                for member in members:
                    unavailable.setdefault(
                        member.name,
                        f"its image is not on this machine ({'; '.join(absent)}), so the compose profile "
                        f"`{profile}` is off",
                    )
            else:
                profiles.add(profile)
        enabled = set(file.enabled(profiles))
        for name in self.description.services:
            if name not in enabled:
                unavailable.setdefault(name, "not started by the compose file with the enabled profiles")
        return profiles, unavailable

    def _ensure_volumes(self, file: ComposeFile) -> None:
        """Create the named volumes with Compose's labels. Compose creates only the volumes of the services it
        starts; a volume of a service that cannot run here must exist still, or a backup finds one volume fewer."""
        import docker

        for key in file.volume_keys():
            name = file.volume_name(key, self.project)
            try:
                self.client.volumes.get(name)
                continue
            except docker.errors.NotFound:
                pass
            labels = {
                "com.docker.compose.project": self.project,
                "com.docker.compose.volume": key,
                "com.docker.compose.version": self.compose.version,
            }
            self.client.volumes.create(name=name, labels=labels)

    def _argv(self, *args: str) -> list[str]:
        argv = [*self.compose.argv, "-p", self.project, "-f", str(self.compose_file)]
        if self.env_file is not None:
            argv += ["--env-file", str(self.env_file)]
        for profile in sorted(self.profiles):
            argv += ["--profile", profile]
        return [*argv, *args]

    def _run(self, *args: str, timeout: float = CLI_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.overrides}
        argv = self._argv(*args)
        try:
            done = subprocess.run(
                argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=max(timeout, 1.0)
            )
        except subprocess.TimeoutExpired:
            raise StackError(Problem("compose", f"`{' '.join(argv)}` did not finish within {timeout:.0f}s")) from None
        if check and done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise StackError(Problem("compose", f"`{' '.join(args)}` exited {done.returncode}: {output[-2000:]}"))
        return done

    def _containers(self) -> dict[str, Any]:
        """service -> its container (Compose labels work for v1 and v2 alike), running ones preferred."""
        found: dict[str, Any] = {}
        for container in self.client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={self.project}"}
        ):
            service = container.labels.get("com.docker.compose.service", "")
            if service not in found or container.status == "running":
                found[service] = container
        return found

    def container_name(self, service: str) -> str:
        """The actual container name (`<project>-<service>-1` with v2, `<project>_<service>_1` with v1)."""
        return str(self._container(service).name)

    def _container(self, service: str) -> Any:
        if self._prepared and service in self.unavailable:
            decl = self.description.services.get(service)
            optional = decl is not None and decl.optional and service in self.cannot_run
            raise ServiceNotRunning(service, self.unavailable[service], optional=optional)
        container = self._containers().get(service)
        if container is None:
            raise ServiceNotRunning(service, f"no container of service {service} in compose project {self.project}")
        return container

    @staticmethod
    def _health(container: Any) -> str | None:
        health = (container.attrs.get("State") or {}).get("Health")
        return str(health.get("Status")) if health else None

    def _liveness(self) -> tuple[dict[str, str], bool, str]:
        containers = self._containers()
        dead: dict[str, str] = {}
        pending: list[str] = []
        for service in self.enabled:
            container = containers.get(service)
            if container is None:
                pending.append(f"{service}: no container")
                continue
            state = container.attrs.get("State") or {}
            if container.status in ("exited", "dead"):
                dead[service] = f"container {container.status} with code {state.get('ExitCode')}"
                continue
            health = self._health(container)
            if container.status != "running":
                pending.append(f"{service}: {container.status}")
            elif health == "unhealthy":
                pending.append(f"{service}: unhealthy")
            elif health not in (None, "healthy"):
                pending.append(f"{service}: {health}")
        return dead, not pending, ", ".join(pending) or "all running and healthy"

    def _services_probe(self) -> tuple[bool, str]:
        _dead, met, detail = self._liveness()
        return met, detail

    def _compose_logs(self, service: str, tail: int = LOG_TAIL) -> str:
        """`compose logs` of a service, also saved under run_dir/logs/ (the error may outlive the container)."""
        done = self._run("logs", "--no-color", "--tail", str(tail), service, check=False, timeout=30)
        text = (done.stdout + done.stderr).strip()
        try:
            path = self.run_dir / "logs" / f"compose-{service}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        except OSError:
            pass  # the logs still travel inside the error
        return text

    # -- StackBackend ---------------------------------------------------------------------------------------------

    def up(self, timeout: float = 180) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout
        self.started_at = time.time()
        self.timings.extra.clear()
        self.port_races = []
        file = self._prepare()
        self._ensure_volumes(file)
        attempts = 2 if self.free_ports else 1
        for attempt in range(1, attempts + 1):
            if self.free_ports:
                self._choose_free_ports()
            self.ports_used = self._published_ports()
            self.progress(
                f"stack: compose up -d (project {self.project}, {self.compose.describe()}, images {self.image_source}"
                f"{', env file ' + str(self.env_file.relative_to(self.root)) if self.env_file else ''}"
                f"{', profiles ' + ','.join(sorted(self.profiles)) if self.profiles else ''}, "
                f"{'free' if self.free_ports else 'fixed'} host ports "
                + ", ".join(f"{s} {p}" for s, p in sorted(self.ports_used.items()))
                + ")"
            )
            try:
                # Named services only when some are left out (a copy, an optional service without its image).
                left_out = len(self.enabled) < len(file.enabled(self.profiles))
                subset = self.enabled if self.only is not None or left_out else []
                self._run("up", "-d", "--remove-orphans", *subset, timeout=deadline - time.monotonic())
                break
            except StackError as exc:
                port = lost_bind_port(str(exc))
                if port is None:
                    raise self._start_failure(exc) from None
                self._lost_port(port, exc, retry=attempt < attempts)
        self.timings.up = time.monotonic() - t0
        waiter = Waiter(
            self.progress, deadline, t0, logs=self._compose_logs, liveness=self._liveness, cancelled=self.cancelled
        )
        running = [name for name in self.description.services if name in self.enabled]
        published = [name for name in running if self.description.services[name].published]
        wait_ready(
            waiter, self.url, self.started_at, self.timings, self.description, running, self._services_probe, published
        )
        self.record_what_ran()

    def _start_failure(self, exc: StackError) -> StackError:
        """`up -d` fails when a dependency never turns healthy: name it and quote its logs."""
        dead, _met, detail = self._liveness()
        failing = sorted(set(dead) | {s.split(":")[0] for s in detail.split(", ") if ":" in s})
        logs = {service: self._compose_logs(service) for service in failing}
        quoted = [f"--- last output of {s} ---\n" + "\n".join(t.splitlines()[-40:]) for s, t in logs.items()]
        status = [f"not ready: {detail}"] if failing else []
        return StackError(*exc.problems, *status, *quoted, logs=logs)

    def _choose_free_ports(self) -> None:
        """A kernel-chosen host port for every published service the caller did not pin, right before `up`."""
        variables = self._port_variables()
        services = [s for s in self.enabled if s in variables and s not in self.pinned]
        for service, port in zip(services, self.choose_ports(len(services)), strict=True):
            self.overrides[variables[service]] = str(int(port))

    def _port_variables(self) -> dict[str, str]:
        """Described services that publish a host port through a variable -> that variable."""
        file = ComposeFile(self.compose_file, os.environ, self.description.compose_file)
        found = {}
        for name, decl in self.description.services.items():
            variable = file.host_port_variables(name).get(decl.port or -1) if name in file.services else None
            if variable:
                found[name] = variable
        return found

    def _published_ports(self) -> dict[str, int]:
        """service -> host port, as Compose will resolve the file with this start's variables."""
        file = ComposeFile(self.compose_file, self._env(self.env_file), self.description.compose_file)
        return {
            name: host_port
            for name in self.enabled
            for _ip, host_port, _target in file.services[name].published_ports()[:1]
        }

    def _lost_port(self, port: int, exc: StackError, retry: bool) -> None:
        """`compose up` could not bind host `port`. Free ports: say who took it, bring the partial project down and
        return (the caller starts once more on new ports); otherwise a StackError naming the port and its holder."""
        holder = describe_holder(port, self.client)  # asked before anything moves
        service = next((s for s, p in self.ports_used.items() if p == port), "?")
        self.port_races.append({"service": service, "port": port, "holder": holder})
        where = f"host port 127.0.0.1:{port} ({service})"
        variables = self._port_variables()
        chosen_free = self.free_ports and service in variables and service not in self.pinned
        if not chosen_free:
            variable = variables.get(service, "the variable of its host port")
            raise StackError(
                Problem(
                    "compose",
                    f"{where} is already taken, by {holder}",
                    f"free it, set {variable} to another port, or run with SEALGATE_PORTS=free",
                )
            ) from None
        if not retry:
            first = self.port_races[0]
            raise StackError(
                Problem(
                    "compose",
                    f"{where} was taken between choice and start again, by {holder} (the first start lost "
                    f"127.0.0.1:{first['port']} ({first['service']}) to {first['holder']})",
                    "something on this machine keeps taking fresh ports: see the holder",
                ),
                *exc.problems,
            ) from None
        self.progress(
            f"stack: {where} was taken between choice and start, by {holder}; bringing the partial project down "
            "and starting once more on new free ports"
        )
        self._run("down", "--remove-orphans", "--timeout", "10", check=False)

    def copy(self, name: str, run_dir: Path, services: list[str] | None = None) -> ComposeBackend:
        port_variables = set(self._port_variables().values())
        twin = ComposeBackend(
            self.root,
            run_dir,
            lambda line: self.progress(f"[{name}] {line}"),
            description=self.description,
            project=f"{self.project}-{name}",
            env={k: v for k, v in dict(self.overrides).items() if k not in port_variables},  # a snapshot: up() writes
            compose=self._compose,
            free_ports=True,
            only=services,
        )
        self.share_facts_with(twin)
        return twin

    def down(self, remove_volumes: bool = False) -> None:
        if not self._prepared:
            # down must work even where up could not: it only needs the project name.
            with contextlib.suppress(StackError):
                self._prepare(strict=False)
        args = ["down", "--remove-orphans", "--timeout", "10"]
        if remove_volumes:
            args.append("--volumes")
        self._run(*args)
        if remove_volumes:
            # Volumes created by _ensure_volumes for services that never ran: remove them with the project's.
            for volume in self.client.volumes.list(filters={"label": f"com.docker.compose.project={self.project}"}):
                volume.remove(force=True)

    def url(self, service: str) -> str:
        container = self._container(service)
        if container.status != "running":
            raise ServiceNotRunning(service, f"container {container.name} is {container.status}")
        ports: dict[str, Any] = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        decl = self.description.services.get(service)
        wanted = f"{decl.port}/tcp" if decl is not None and decl.port else None
        keys = [wanted] if wanted in ports else sorted(ports)
        for key in keys:
            for binding in ports.get(key) or []:
                if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", "") and binding.get("HostPort"):
                    scheme = decl.scheme if decl is not None else "http"
                    return f"{scheme}://127.0.0.1:{binding['HostPort']}"
        raise StackError(Problem(service, f"container {container.name} publishes no port on 127.0.0.1"))

    def services(self) -> dict[str, ServiceState]:
        containers = self._containers()
        states: dict[str, ServiceState] = {}
        for service in self.description.services:
            container = containers.get(service)
            if container is None:
                detail = self.unavailable.get(service, "no container")
                states[service] = ServiceState(service, running=False, healthy=None, detail=detail)
                continue
            state = container.attrs.get("State") or {}
            health = self._health(container)
            states[service] = ServiceState(
                service,
                running=container.status == "running",
                healthy=None if health is None else health == "healthy",
                container_id=container.id,
                image=(container.attrs.get("Config") or {}).get("Image"),
                image_id=container.attrs.get("Image"),
                detail=f"{container.name}: {container.status}"
                + (f" ({health})" if health else "")
                + (f", exit code {state.get('ExitCode')}" if container.status == "exited" else ""),
            )
        return states

    def logs(self, service: str, tail: int = LOG_TAIL) -> str:
        container = self._container(service)
        return container.logs(tail=tail, stdout=True, stderr=True).decode(errors="replace")

    def stop_service(self, service: str) -> None:
        self._container(service)  # names the service in the error when it does not run here
        self._run("stop", "--timeout", "10", service)

    def start_service(self, service: str, timeout: float = 90) -> None:
        self._container(service)
        t0 = time.monotonic()
        self._run("start", service)
        waiter = Waiter(self.progress, t0 + timeout, t0, logs=self._compose_logs, cancelled=self.cancelled)

        def running_and_healthy() -> tuple[bool, str]:
            container = self._container(service)
            health = self._health(container)
            if container.status in ("exited", "dead"):
                raise waiter.fail(service, f"container {container.status} right after start")
            return container.status == "running" and health in (None, "healthy"), f"{container.status} {health or ''}"

        waiter.until(f"{service} running and healthy", service, running_and_healthy)
        decl = self.description.service(service)
        if decl.ready and decl.published:
            waiter.until(f"{service} answering", service, http_probe(self.url(service) + decl.ready))

    def environment(self, service: str) -> dict[str, str]:
        pairs = (
            str(item).partition("=") for item in (self._container(service).attrs.get("Config") or {}).get("Env") or []
        )
        # A bare `NAME` (Compose's pass-through of a variable unset on the host) is not set in the container.
        return {key: value for key, sep, value in pairs if sep}

    def facts(self) -> dict[str, str]:
        return {**super().facts(), "project": self.project, "compose_file": str(self.compose_file)}

    def stop_by_hand(self) -> str:
        return f"once the engine answers: docker compose -p {self.project} down"

    # -- what ran (evidence) -----------------------------------------------------------------------------------------

    def image_facts(self) -> dict[str, dict[str, str | None]]:
        """Every container of the project: the image reference it was created from, the image ID it runs, and that
        image's repository digest — the one of the reference's repository, else any it has; None for a local build
        (a digest exists only once an image was pushed to or pulled from a registry)."""
        digests: dict[str, list[str]] = {}
        facts: dict[str, dict[str, str | None]] = {}
        for service, container in self._containers().items():
            image_id = str(container.attrs.get("Image") or "")
            reference = str((container.attrs.get("Config") or {}).get("Image") or "")
            if image_id not in digests:
                digests[image_id] = self._repo_digests(image_id)
            repository = reference.split("@", 1)[0]
            if ":" in repository.rsplit("/", 1)[-1]:
                repository = repository.rsplit(":", 1)[0]
            own = [d for d in digests[image_id] if d.split("@", 1)[0] == repository]
            chosen = (own or digests[image_id] or [None])[0]
            facts[service] = {"image": reference or None, "id": image_id or None, "repo_digest": chosen}
        return facts

    def _repo_digests(self, image_id: str) -> list[str]:
        import docker

        try:
            return [str(d) for d in self.client.images.get(image_id).attrs.get("RepoDigests") or []]
        except docker.errors.ImageNotFound:
            return []  # removed since the container was created: the container's ID is still the truth

    def _gather_what_ran(self) -> dict[str, Any]:
        return gather_what_ran(self)

    def ran_as(self, service: str) -> str:
        return f"image {self.images[service]}" if service in self.images else f"service {service}"

    def database_version(self, service: str) -> str:
        """`SHOW server_version` by psql inside the database's container (it need not publish a port), as the
        superuser its environment declares (POSTGRES_USER, the official image's convention)."""
        container = self._container(service)
        environment = self.environment(service)
        user = environment.get("POSTGRES_USER") or "postgres"
        database = environment.get("POSTGRES_DB") or user
        argv = ["psql", "-X", "-tA", "-U", user, "-d", database, "-c", "SHOW server_version"]
        code, output = container.exec_run(argv)
        text = (output or b"").decode(errors="replace").strip()
        if code != 0 or not text:
            raise StackError(Problem(service, f"psql in its container exited {code}: {text[-300:]}"))
        return text.splitlines()[-1].strip()

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update(
            {
                "project": self.project,
                "compose": self._compose.describe() if self._compose else None,
                "image_source": self.image_source,
                "env_file": str(self.env_file.relative_to(self.root)) if self.env_file else None,
                "env_file_sha256": sha256_file(self.env_file) if self.env_file and self.env_file.is_file() else None,
                "profiles": sorted(self.profiles),
                "unavailable": dict(self.unavailable),
                "port_choice": "free" if self.free_ports else "fixed",
                "ports": dict(self.ports_used),
                "port_races": list(self.port_races),
            }
        )
        return info


def _with_dependencies(file: ComposeFile, services: list[str]) -> set[str]:
    """`services` and everything they depend on (`depends_on`): what `compose up S…` starts."""
    found: set[str] = set()
    pending = [s for s in services if s in file.services]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        depends = file.services[name].raw.get("depends_on") or []
        pending += [str(d) for d in (depends if isinstance(depends, list) else list(depends)) if d in file.services]
    return found
