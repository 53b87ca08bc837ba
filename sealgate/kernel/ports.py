"""Host ports: kernel-chosen free ports, the kernel's ephemeral range, who holds a port, and a lost bind read out of
a server's or Compose's output.

Why this exists: a port chosen by hand inside the ephemeral range (see `ephemeral_range`) can be held at any moment
by an outgoing connection or by any server bound to port 0; a port the kernel hands out is free *when chosen* and
may still be taken before the server binds it. So ports are chosen as late as possible (`free_ports`), a lost bind
is recognised (`lost_bind_port`, `shows_lost_bind`), and its holder is named (`describe_holder`) so the start can be
retried once and a second loss explained.

Framework code: it knows nothing of any particular stack.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sealgate.kernel.errors import InputError, Problem

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_DEFAULT_EPHEMERAL_RANGE = (32768, 60999)  # when the kernel's setting cannot be read
# SEALGATE_PORTS=free: a backend chooses every published host port from the kernel at each start.
PORTS_ENV = "SEALGATE_PORTS"
PORT_MODES = ("free", "fixed")


# --- choosing ports -------------------------------------------------------------------------------------------------


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


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """(low, high) of the ports the kernel hands out for outgoing connections and port-0 binds."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return LINUX_DEFAULT_EPHEMERAL_RANGE
    return low, high


def in_ephemeral_range(port: int, path: Path = EPHEMERAL_RANGE_FILE) -> bool:
    low, high = ephemeral_range(path)
    return low <= port <= high


def free_ports_requested(environ: Mapping[str, str] | None = None) -> bool:
    """True when SEALGATE_PORTS=free; unset, empty or `fixed` keep the configured ports. Anything else is a clear
    input error, not a silent default."""
    value = (os.environ if environ is None else environ).get(PORTS_ENV, "").strip().lower()
    if value not in ("", *PORT_MODES):
        raise InputError(
            Problem(PORTS_ENV, f"unknown value {value!r}", f"use {' or '.join(PORT_MODES)}, or leave it unset")
        )
    return value == "free"


# --- a lost bind in a server's output ---------------------------------------------------------------------------

_LOST_BIND = re.compile(r"address already in use|port is already allocated", re.I)
_HOST = r"(?:\[[0-9A-Fa-f:.]*\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[A-Za-z0-9_.-]*)"
_LOST_BIND_PORT = [
    # Docker's userland proxy (and Go servers: Prometheus, Alertmanager):
    #   Error starting userland proxy: listen tcp4 127.0.0.1:49090: bind: address already in use
    re.compile(rf"listen tcp[46]? {_HOST}:(?P<port>\d{{1,5}}): bind: address already in use", re.I),
    # Docker, when another container already publishes the port:
    #   Bind for 127.0.0.1:8000 failed: port is already allocated
    re.compile(rf"Bind for {_HOST}:(?P<port>\d{{1,5}}) failed: port is already allocated", re.I),
]


def shows_lost_bind(output: str) -> bool:
    """Whether `output` reports a listening socket that could not bind because its port is taken."""
    return bool(_LOST_BIND.search(output))


def lost_bind_port(output: str) -> int | None:
    """The port of the first lost bind `output` names (Compose / Docker / Go servers), or None. Some servers report
    the loss without the port (Python's `OSError: [Errno 98] Address already in use`): check `shows_lost_bind` and
    use the port the server was given."""
    for pattern in _LOST_BIND_PORT:
        match = pattern.search(output)
        if match:
            return int(match.group("port"))
    return None


# --- who holds a port ---------------------------------------------------------------------------------------------


def docker_client() -> Any:
    """A Docker SDK client when an engine answers quickly, else None (nothing here may need Docker)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        return client
    except Exception:  # no SDK, no socket, engine down: simply no container can hold the port
        return None


def _container_on_port(client: Any, port: int) -> dict[str, Any] | None:
    for container in client.containers.list():
        ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        for container_port, bindings in ports.items():
            for binding in bindings or []:
                if str(binding.get("HostPort")) == str(port):
                    labels = container.labels or {}
                    return {
                        "kind": "container",
                        "name": container.name,
                        "id": container.short_id,
                        "image": (container.attrs.get("Config") or {}).get("Image"),
                        "container_port": container_port,
                        "compose_project": labels.get("com.docker.compose.project"),
                        "compose_service": labels.get("com.docker.compose.service"),
                        "compose_working_dir": labels.get("com.docker.compose.project.working_dir"),
                    }
    return None


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on `port` (any address), from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _process_on_port(port: int) -> dict[str, Any] | None:
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return {"kind": "process", "pid": int(proc.name), "cmdline": cmdline[:300]}
        except OSError:
            continue  # a process that exited, or one we may not inspect
    return {"kind": "process", "pid": None, "cmdline": "(owner not visible to this user)"}


def port_owner(port: int, client: Any = None) -> dict[str, Any] | None:
    """Who listens on `port`: a container publishing it (Docker SDK) or a local process (/proc), else None."""
    if client is not None:
        owner = _container_on_port(client, port)
        if owner is not None:
            return owner
    return _process_on_port(port)


def describe_owner(owner: dict[str, Any]) -> str:
    if owner.get("kind") == "container":
        project = owner.get("compose_project")
        where = f" of compose project {project} (service {owner.get('compose_service')})" if project else ""
        return f"container {owner['name']} ({owner.get('image')}){where}"
    return f"process {owner.get('pid')} ({owner.get('cmdline')})"


NO_VISIBLE_HOLDER = "no listener visible now (an outgoing connection's local port, or a holder that has let go)"


def describe_holder(port: int, client: Any = None) -> str:
    """One phrase naming who holds `port` (process pid + command line, or container + compose project), fit for a
    progress line or evidence: secret-looking values in a command line are redacted."""
    from sealgate.kernel.redact import redact_text

    owner = port_owner(port, client)
    return redact_text(describe_owner(owner)) if owner is not None else NO_VISIBLE_HOLDER
