"""A test leaves no container, volume, network or process behind: the session's leak guard, and the one helper that
tears a compose project down (tests/conftest.py wires the guard into pytest_sessionstart / pytest_sessionfinish).

At session start the guard records the Docker containers, volumes and networks that exist, and the processes that
carry the local backend's SEALGATE_RUN_DIR marker in their environment. At session end — after every fixture,
session fixtures included, has been torn down — whatever is new *and this session's* is a leak: listed one line each,
removed (processes killed), and the session fails.

"This session's": the Docker engine is shared with other sessions (other checkouts' test runs), whose objects must
never be touched. Everything this suite creates is named after the session's pid — compose projects
(`sealgate-pytest-<pid>…`, `sealgate-fault-<pid>-…`, `sealgate-fullseal-<pid>`), hence their containers, volumes and
networks; run directories (under the session's pytest temp dir, or `new_run_dir`'s `…-<pid>-…`) — so an object is
this session's when its name, its compose project or its run directory carries that pid as a whole word, or its run
directory lies under this session's temp dir. New objects of other sessions are only counted, never removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
RUN_DIR_MARKER = "SEALGATE_RUN_DIR"  # sealgate.backends.local.RUN_DIR_MARKER (not imported: keep this cheap)
DOCKER_TIMEOUT = 30


def _docker() -> Any:
    """A Docker SDK client, or None when no engine answers (then there is nothing of Docker to leak)."""
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        client.ping()
        return client
    except Exception:
        return None


def remove_compose_project(project: str) -> list[str]:
    """Remove every container (with its anonymous volumes), network and volume labelled with compose project
    `project` — including volumes the backend created for services that never ran (a disabled Grafana's), which
    `compose down -v` without that service's profile leaves behind. Returns what was removed."""
    import docker

    client = docker.from_env(timeout=DOCKER_TIMEOUT)
    labelled = {"label": f"{COMPOSE_PROJECT_LABEL}={project}"}
    removed: list[str] = []
    for container in client.containers.list(all=True, filters=labelled, ignore_removed=True):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(f"container {container.name}")
    for network in client.networks.list(filters=labelled):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
            removed.append(f"network {network.name}")
    for volume in client.volumes.list(filters=labelled):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    return removed


def compose_projects_named(prefix: str) -> set[str]:
    """Compose projects called `prefix` or `prefix-…` that have a container, network or volume: a stack and its copies
    (a drill's copy is `<project>-drill-<phase>`)."""
    import docker

    client = docker.from_env(timeout=DOCKER_TIMEOUT)
    labels = [c.labels or {} for c in client.containers.list(all=True, ignore_removed=True)]
    labels += [n.attrs.get("Labels") or {} for n in client.networks.list()]
    labels += [v.attrs.get("Labels") or {} for v in client.volumes.list()]
    names = {str(label.get(COMPOSE_PROJECT_LABEL, "")) for label in labels}
    return {name for name in names if name == prefix or name.startswith(prefix + "-")}


def remove_compose_projects(prefix: str) -> list[str]:
    """remove_compose_project for `prefix` and every project named `prefix-…` (its copies)."""
    removed: list[str] = []
    for project in sorted({prefix, *compose_projects_named(prefix)}):
        removed += remove_compose_project(project)
    return removed


@dataclass(frozen=True)
class Thing:
    kind: str  # container | network | volume | process
    key: str  # id, name or pid:starttime: what identifies it across the two snapshots
    name: str
    project: str = ""  # compose project label
    run_dir: str = ""  # processes: their SEALGATE_RUN_DIR

    def describe(self) -> str:
        extra = f" (compose project {self.project})" if self.project else ""
        extra += f" (run dir {self.run_dir})" if self.run_dir else ""
        return f"{self.kind} {self.name}{extra}"


def docker_things(client: Any) -> dict[str, Thing]:
    things: dict[str, Thing] = {}
    # ignore_removed: another session's container may go between the engine's list and the SDK's inspect of it.
    for container in client.containers.list(all=True, ignore_removed=True):
        project = (container.labels or {}).get(COMPOSE_PROJECT_LABEL, "")
        things[f"container:{container.id}"] = Thing("container", container.id, container.name, project)
    for network in client.networks.list():
        project = (network.attrs.get("Labels") or {}).get(COMPOSE_PROJECT_LABEL, "")
        things[f"network:{network.id}"] = Thing("network", network.id, network.name, project)
    for volume in client.volumes.list():
        project = (volume.attrs.get("Labels") or {}).get(COMPOSE_PROJECT_LABEL, "")
        things[f"volume:{volume.name}"] = Thing("volume", volume.name, volume.name, project)
    return things


def _start_time(pid: str) -> str:
    # Field 22 of /proc/PID/stat (after the parenthesised command, which may contain spaces): tells a recycled pid.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[19]


def marked_processes() -> dict[str, Thing]:
    """Processes whose environment carries the local backend's run-directory marker."""
    marker = f"{RUN_DIR_MARKER}=".encode()
    found: dict[str, Thing] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            run_dir = next((e[len(marker) :].decode(errors="replace") for e in environ if e.startswith(marker)), None)
            if run_dir is None:
                continue
            key = f"{proc.name}:{_start_time(proc.name)}"
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        found[f"process:{key}"] = Thing("process", key, f"{proc.name} ({cmdline[:120]})", run_dir=run_dir)
    return found


def remove(thing: Thing, client: Any) -> str:
    """Remove or kill `thing`; returns what happened, for the leak's line."""
    try:
        if thing.kind == "container":
            client.containers.get(thing.key).remove(force=True, v=True)
        elif thing.kind == "network":
            client.networks.get(thing.key).remove()
        elif thing.kind == "volume":
            client.volumes.get(thing.key).remove(force=True)
        else:
            pid = int(thing.key.split(":")[0])
            if os.getpgid(pid) == pid:  # the local backend's services lead their own process group
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    except Exception as exc:  # report it; the session fails either way
        return f"could not be removed: {exc}"
    return "removed" if thing.kind != "process" else "killed"


@dataclass
class LeakGuard:
    token: str  # this session's pid
    before: dict[str, Thing] = field(default_factory=dict)
    docker_seen: bool = False

    def __post_init__(self) -> None:
        self._token = re.compile(rf"(^|[-_./]){re.escape(self.token)}($|[-_./])")

    def snapshot(self, client: Any) -> dict[str, Thing]:
        return {**(docker_things(client) if client is not None else {}), **marked_processes()}

    def start(self) -> None:
        client = _docker()
        self.docker_seen = client is not None
        self.before = self.snapshot(client)

    def ours(self, thing: Thing, basetemp: Path | None) -> bool:
        if thing.kind == "process":
            # Only the run directory's own name (`new_run_dir`'s `…-<pid>-…`): its parents may be another
            # session's numbered pytest-N directory, and a command line may hold any number.
            run_dir = Path(thing.run_dir)
            under_ours = basetemp is not None and run_dir.is_relative_to(basetemp)
            return under_ours or bool(self._token.search(run_dir.name))
        return any(self._token.search(text) for text in (thing.name, thing.project) if text)

    def finish(self, basetemp: Path | None) -> list[str]:
        """One line per leak (`LEAK …`, removed meanwhile), and one note counting new objects of other sessions."""
        client = _docker() if self.docker_seen else None
        new = [t for key, t in self.snapshot(client).items() if key not in self.before]
        # Containers first: a network or volume in use by a container cannot be removed before it.
        order = {"process": 0, "container": 1, "network": 2, "volume": 3}
        leaked = sorted((t for t in new if self.ours(t, basetemp)), key=lambda t: (order[t.kind], t.name))
        lines = [f"LEAK: {t.describe()} was left behind by this test session: {remove(t, client)}" for t in leaked]
        others: dict[str, int] = {}
        for thing in new:
            if not self.ours(thing, basetemp):
                owner = thing.project or thing.run_dir or thing.name
                others[f"{thing.kind} of {owner}"] = others.get(f"{thing.kind} of {owner}", 0) + 1
        if others:
            shown = ", ".join(f"{n} {what}" for what, n in sorted(others.items()))
            lines.append(f"leak guard: left alone, not this session's (pid {self.token}): {shown}")
        return lines
