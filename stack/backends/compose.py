"""The `compose` backend: the governed stack under Docker Compose (v2 `docker compose`, v1 `docker-compose` as a
fallback), inspected through the Docker SDK.

Images: when the images the compose file names (the seed's pinned official ones, unless overridden) are all present
locally they are used as they are; when some are missing but the offline image built by
stack/scripts/build_offline_image.sh is present, `--env-file stack/offline.env` points the file at it (there is no
image registry on the machines this is built on). Which of the two ran is kept in `image_source` / `env_file` and in
`describe()` for evidence. Grafana runs (profile `grafana`) only when its image exists locally; its volume is
created either way so a backup always finds the three volumes.
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
from typing import Any

from sealgate.errors import Problem
from sealgate.stack.backends.base import SERVICES, ServiceNotRunning, ServiceState, StackBackend, StackError
from sealgate.stack.backends.composefile import ComposeFile, read_env_file
from sealgate.stack.backends.readiness import Waiter, http_probe, wait_ready

COMPOSE_FILE = Path("stack/docker-compose.yml")
OFFLINE_ENV = Path("stack/offline.env")
OFFLINE_BUILD = "bash stack/scripts/build_offline_image.sh"
GRAFANA_PROFILE = "grafana"
# Container ports of the services (stack/docker-compose.yml); the host port is read from the container, never assumed.
CONTAINER_PORTS = {"api": 8000, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "postgres": 5432}
# Host-port overrides the compose file reads (`127.0.0.1:${SEALGATE_API_PORT:-8000}:8000`).
PORT_ENV = {
    "api": "SEALGATE_API_PORT",
    "prometheus": "SEALGATE_PROMETHEUS_PORT",
    "alertmanager": "SEALGATE_ALERTMANAGER_PORT",
    "grafana": "SEALGATE_GRAFANA_PORT",
}
# Readiness probe of a service restarted by start_service (the full sequence runs only in up()).
SERVICE_PROBES = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "api": "/healthz", "grafana": "/api/health"}
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


class ComposeBackend(StackBackend):
    name = "compose"
    containerized = True

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        progress: Callable[[str], None] = print,
        *,
        project: str | None = None,
        ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        compose: ComposeCommand | None = None,
    ) -> None:
        """`project` defaults to $SEALGATE_COMPOSE_PROJECT, else `sealgate-<slug of the repo dir>`; `ports` overrides
        host ports by service (api, prometheus, alertmanager, grafana); `env` adds variables for the compose file
        (e.g. VERITTA_CB_THRESHOLD), above the process environment."""
        super().__init__(root, run_dir, progress)
        chosen = project or os.environ.get("SEALGATE_COMPOSE_PROJECT") or f"sealgate-{project_slug(root.name)}"
        self.project = project_slug(chosen)
        self.compose_file = root / COMPOSE_FILE
        self.overrides: dict[str, str] = dict(env or {})
        for service, port in (ports or {}).items():
            if service not in PORT_ENV:
                raise StackError(Problem("ports", f"no host-port variable for service {service!r}"))
            self.overrides[PORT_ENV[service]] = str(int(port))
        self._compose = compose
        self._client: Any = None
        self.env_file: Path | None = None  # stack/offline.env when the offline image stands in for the pinned ones
        self.image_source: str | None = None  # "configured" (images the file names) | "offline"
        self.images: dict[str, str] = {}  # service -> image reference it runs
        self.profiles: set[str] = set()
        self.grafana_reason = "not decided yet (up() not called)"
        self.enabled: list[str] = []
        self._prepared = False

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
        env_file_path = self.root / OFFLINE_ENV
        file = ComposeFile(self.compose_file, self._env(None))
        base_services = file.enabled(set())
        missing = self._missing_images(file, base_services)
        self.env_file, self.image_source = None, "configured"
        if missing:
            if not env_file_path.is_file():
                if strict:
                    raise StackError(
                        Problem("compose", f"images missing locally: {'; '.join(missing)}", "no stack/offline.env")
                    )
            else:
                offline = ComposeFile(self.compose_file, self._env(env_file_path))
                still_missing = self._missing_images(offline, offline.enabled(set()))
                if still_missing and strict:
                    raise StackError(
                        Problem(
                            "compose",
                            f"images missing locally: {'; '.join(missing)}; with stack/offline.env: "
                            f"{'; '.join(still_missing)}",
                            f"there is no image registry here: build the offline image with `{OFFLINE_BUILD}`",
                        )
                    )
                file, self.env_file, self.image_source = offline, env_file_path, "offline"
        grafana = file.services.get("grafana")
        self.profiles = set()
        if grafana is None:
            self.grafana_reason = "the compose file has no grafana service"
        elif grafana.image and self._image_present(grafana.image):
            self.profiles.add(GRAFANA_PROFILE)
            self.grafana_reason = f"runs from image {grafana.image}"
        else:
            self.grafana_reason = (
                f"no Grafana image on this machine (no registry); image {grafana.image or '?'} is not present "
                "locally, so the `grafana` profile is off"
            )
        self.enabled = file.enabled(self.profiles)
        self.images = {name: str(file.services[name].image) for name in self.enabled if file.services[name].image}
        self._prepared = True
        return file

    def _ensure_volumes(self, file: ComposeFile) -> None:
        """Create the named volumes with Compose's labels. Compose creates only the volumes of the services it
        starts; grafana_data must exist even when Grafana cannot run, or the backup finds two volumes of three."""
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
        if service == "grafana" and self._prepared and GRAFANA_PROFILE not in self.profiles:
            raise ServiceNotRunning("grafana", self.grafana_reason)
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
        file = self._prepare()
        self._ensure_volumes(file)
        self.progress(
            f"stack: compose up -d (project {self.project}, {self.compose.describe()}, images {self.image_source}"
            f"{', env file ' + str(self.env_file.relative_to(self.root)) if self.env_file else ''}"
            f"{', profiles ' + ','.join(sorted(self.profiles)) if self.profiles else ''})"
        )
        try:
            self._run("up", "-d", "--remove-orphans", timeout=deadline - time.monotonic())
        except StackError as exc:
            # `up -d` fails when a dependency never turns healthy: name it and quote its logs.
            dead, _met, detail = self._liveness()
            failing = sorted(set(dead) | {s.split(":")[0] for s in detail.split(", ") if ":" in s})
            logs = {service: self._compose_logs(service) for service in failing}
            quoted = [f"--- last output of {s} ---\n" + "\n".join(t.splitlines()[-40:]) for s, t in logs.items()]
            status = [f"not ready: {detail}"] if failing else []
            raise StackError(*exc.problems, *status, *quoted, logs=logs) from None
        self.timings.up = time.monotonic() - t0
        waiter = Waiter(self.progress, deadline, t0, logs=self._compose_logs, liveness=self._liveness)
        wait_ready(waiter, self.url, self.started_at, self.timings, services_probe=self._services_probe)

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
        wanted = f"{CONTAINER_PORTS[service]}/tcp" if service in CONTAINER_PORTS else None
        keys = [wanted] if wanted in ports else sorted(ports)
        for key in keys:
            for binding in ports.get(key) or []:
                if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", "") and binding.get("HostPort"):
                    scheme = "postgresql" if service == "postgres" else "http"
                    return f"{scheme}://127.0.0.1:{binding['HostPort']}"
        raise StackError(Problem(service, f"container {container.name} publishes no port on 127.0.0.1"))

    def services(self) -> dict[str, ServiceState]:
        containers = self._containers()
        states: dict[str, ServiceState] = {}
        for service in SERVICES:
            container = containers.get(service)
            if container is None:
                detail = self.grafana_reason if service == "grafana" else "no container"
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
        waiter = Waiter(self.progress, t0 + timeout, t0, logs=self._compose_logs)

        def running_and_healthy() -> tuple[bool, str]:
            container = self._container(service)
            health = self._health(container)
            if container.status in ("exited", "dead"):
                raise waiter.fail(service, f"container {container.status} right after start")
            return container.status == "running" and health in (None, "healthy"), f"{container.status} {health or ''}"

        waiter.until(f"{service} running and healthy", service, running_and_healthy)
        if service in SERVICE_PROBES:
            waiter.until(f"{service} answering", service, http_probe(self.url(service) + SERVICE_PROBES[service]))

    def backup_args(self) -> list[str]:
        return ["--mode", "compose", "--project", self.project, "--compose-file", str(self.compose_file)]

    def stop_by_hand(self) -> str:
        return f"once the engine answers: docker compose -p {self.project} down"

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update(
            {
                "project": self.project,
                "compose": self._compose.describe() if self._compose else None,
                "image_source": self.image_source,
                "env_file": str(self.env_file.relative_to(self.root)) if self.env_file else None,
                "profiles": sorted(self.profiles),
                "grafana": self.grafana_reason,
                "images": dict(self.images),
            }
        )
        return info
