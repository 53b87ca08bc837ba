"""Reading a project's compose file (e.g. stack/docker-compose.yml) the way Compose does, for the parts sealgate needs
without a Docker engine: variable interpolation (`${VAR:-default}` & co.), env files, services and their profiles,
images, mounts (bind and volume mounts, and the files top-level `configs:` and `secrets:` deliver), published and
exposed ports, networks and commands, and the line each key is on. The backends and the checks read this one model of
the file (checks may build it from `docker compose config`'s own resolution of it).

Which host file a container reads at a path is answered in one place, `ComposeFile.file_at`: Compose mounts a
service's volumes, then its secrets, then its configs, and a deeper mount shadows a shallower one, so a file inside a
directory bind mount (`./prometheus:/etc/prometheus`) is the repository's file, and one a named volume covers is not.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}, $VAR and the escape $$.
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def yaml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """1-based line of every mapping key / sequence item, keyed by path, in a YAML document that may use anchors
    and `<<` merge keys (compose files do). An inherited key points at the `<<:` line of the mapping that merges it.
    """
    lines: dict[tuple[Any, ...], int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: tuple[Any, ...], depth: int) -> None:
        if depth > 50:
            return  # anchors can nest; a compose file never needs this deep
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            merged: list[tuple[yaml.Node, int]] = []
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                    merged += [(source, key.start_mark.line + 1) for source in sources]
                    continue
                name = key.value
                lines[(*path, name)] = key.start_mark.line + 1
                walk(value, (*path, name), depth + 1)
            for source, line in merged:
                if isinstance(source, yaml.MappingNode):
                    for key, _value in source.value:
                        lines.setdefault((*path, key.value), line)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index), depth + 1)

    if root is not None:
        walk(root, (), 0)
    return lines


def _split_outside_variables(text: str) -> list[str]:
    """`text` split on `:` except inside `${...}` (whose `:-default` holds one)."""
    parts, depth, current = [], 0, ""
    for index, char in enumerate(text):
        if char == "{" and text[index - 1 : index] == "$":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == ":" and not depth:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def interpolate(text: str, env: Mapping[str, str], where: str = "") -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op in (":-", "-"):
            missing = value is None or (op == ":-" and value == "")
            return interpolate(arg, env, where) if missing else str(value)
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise StackError(Problem(where or "compose file", f"variable {name} is required: {arg}"))
            return str(value)
        if op in (":+", "+"):
            present = value is not None and (op == "+" or value != "")
            return interpolate(arg, env, where) if present else ""
        return "" if value is None else str(value)

    return _VAR.sub(substitute, text)


def interpolate_tree(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    if isinstance(value, str):
        return interpolate(value, env, where)
    if isinstance(value, list):
        return [interpolate_tree(v, env, where) for v in value]
    if isinstance(value, dict):
        return {k: interpolate_tree(v, env, where) for k, v in value.items()}
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads them (comments, blank lines, `export `, optional quotes)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise StackError(Problem(f"{path}:{number}", "not a KEY=VALUE line"))
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


@dataclass
class Mount:
    source: str  # host path (absolute, resolved against the compose file's directory), volume name, or "" (anonymous)
    target: str  # path inside the container
    bind: bool
    read_only: bool = False
    type: str = ""  # bind | volume | tmpfs | ... (Compose's long syntax `type:`)


@dataclass(frozen=True)
class SecretRef:
    """One entry of a service's `secrets:`: the top-level secret it uses and where the container reads it."""

    name: str  # the top-level `secrets:` key
    target: str  # container path: /run/secrets/<name>, or the `target:` of the long syntax


SECRETS_DIR = "/run/secrets"
CONFIGS_DIR = "/"  # where Compose mounts a config whose target is absent or relative (Linux containers)


@dataclass(frozen=True)
class ConfigRef:
    """One entry of a service's `configs:`: the top-level config it uses and where the container reads it."""

    name: str  # the top-level `configs:` key
    target: str  # container path: /<name>, or the `target:` of the long syntax (a relative one is under /)


@dataclass(frozen=True)
class MountedFile:
    """What a service's container reads at one path, and which entry of the compose file puts it there."""

    container_path: str  # the path asked about, normalised
    host: str | None  # the host file (or directory) behind it; None when it is not a host path (a named volume,
    # tmpfs, a config or secret made from `content:` or `environment:`)
    key: str  # the service key of the entry that delivers it: "volumes", "secrets" or "configs"
    index: int  # that entry's index in the file (for ComposeFile.line("services", service, key, index))
    target: str  # the entry's own container target (a directory mount's directory, or the file itself)
    kind: str  # bind | volume | tmpfs | npipe | cluster | config | secret
    read_only: bool = False


@dataclass
class Service:
    name: str
    raw: dict[str, Any]
    profiles: list[str] = field(default_factory=list)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # what the file was interpolated with

    @property
    def image(self) -> str | None:
        image = self.raw.get("image")
        return str(image) if image else None

    def mounts(self, base: Path) -> list[Mount]:
        """Every `volumes:` entry, short (`SOURCE:TARGET[:ro]`, or a lone TARGET: an anonymous volume) or long
        syntax, in the file's order (an index here is the entry's index in the file)."""
        found: list[Mount] = []
        for entry in self.raw.get("volumes") or []:
            if isinstance(entry, str):
                parts = entry.split(":")
                if len(parts) == 1:
                    found.append(Mount("", parts[0], False, False, "volume"))
                    continue
                source, target = parts[0], parts[1]
                bind = source.startswith((".", "/", "~"))
                read_only = len(parts) > 2 and "ro" in parts[2].split(",")
                kind = "bind" if bind else "volume"
            else:
                source, target = str(entry.get("source", "")), str(entry.get("target", ""))
                kind = str(entry.get("type") or "")
                bind = kind == "bind"
                read_only = bool(entry.get("read_only"))
            if bind:
                source = str((base / source).resolve()) if not source.startswith("/") else source
            found.append(Mount(source, target, bind, read_only, kind))
        return found

    def secrets(self) -> list[SecretRef]:
        """The service's `secrets:` (short syntax `- NAME`, or long `{source, target}`), where Compose mounts them: a
        relative or absent target is under /run/secrets."""
        found: list[SecretRef] = []
        for entry in self.raw.get("secrets") or []:
            if isinstance(entry, dict):
                name = str(entry.get("source", ""))
                target = str(entry.get("target") or name)
            else:
                name = target = str(entry)
            found.append(SecretRef(name, target if target.startswith("/") else f"{SECRETS_DIR}/{target}"))
        return found

    def configs(self) -> list[ConfigRef]:
        """The service's `configs:` (short syntax `- NAME`, or long `{source, target}`), where Compose mounts them: an
        absent target is /<name>, a relative one is under / (Compose's `buildContainerConfigMounts`)."""
        found: list[ConfigRef] = []
        for entry in self.raw.get("configs") or []:
            if isinstance(entry, dict):
                name = str(entry.get("source", ""))
                target = str(entry.get("target") or name)
            else:
                name = target = str(entry)
            found.append(ConfigRef(name, target if target.startswith("/") else CONFIGS_DIR + target))
        return found

    def exposed_ports(self) -> list[int]:
        """Container ports of `expose:` (`"9100"`, `9100`, `"9100/tcp"`), in the file's order; port ranges and UDP
        ports are left out (a single TCP port is what a service is reached on)."""
        found: list[int] = []
        for entry in self.raw.get("expose") or []:
            port, _, protocol = str(entry).partition("/")
            if port.strip().isdigit() and protocol in ("", "tcp"):
                found.append(int(port))
        return found

    def command(self) -> list[str]:
        return self._argv("command")

    def entrypoint(self) -> list[str]:
        return self._argv("entrypoint")

    def _argv(self, key: str) -> list[str]:
        value = self.raw.get(key) or []
        return [str(c) for c in value] if isinstance(value, list) else str(value).split()

    def environment(self) -> dict[str, str]:
        """The service's variables. A bare `- NAME` (or `NAME:` with no value) passes NAME through from the
        environment the file was read with, and is absent when that does not set it — as Compose does."""
        env = self.raw.get("environment") or {}
        items = (
            [(k, v if sep else None) for k, sep, v in (str(item).partition("=") for item in env)]
            if isinstance(env, list)
            else [(str(k), None if v is None else str(v)) for k, v in env.items()]
        )
        resolved: dict[str, str] = {}
        for key, value in items:
            if value is None:
                if key in self.env:
                    resolved[key] = str(self.env[key])
            else:
                resolved[key] = value
        return resolved

    @property
    def working_dir(self) -> str | None:
        value = self.raw.get("working_dir")
        return str(value) if value else None

    def published_ports(self) -> list[tuple[str, int, int]]:
        """(host ip, host port, container port) of each `ports:` entry that names a host port."""
        return [port for port in map(published_port, self.raw.get("ports") or []) if port is not None]

    def ports(self) -> list[tuple[str, int | None, int]]:
        """(host ip, host port or None, container port) of every `ports:` entry, in the file's order. A container
        port alone is still published, on a port the engine picks, on every interface."""
        found: list[tuple[str, int | None, int]] = []
        for entry in self.raw.get("ports") or []:
            mapped = published_port(entry)
            if mapped is not None:
                found.append(mapped)
            elif isinstance(entry, dict):
                if entry.get("target") is not None:
                    found.append((str(entry.get("host_ip") or ""), None, int(entry["target"])))
            else:
                found.append(("", None, int(str(entry).split("/")[0].split(":")[-1])))
        return found

    def networks(self) -> list[str]:
        """The networks the service joins (`networks:` as a list or a mapping)."""
        networks = self.raw.get("networks") or []
        return [str(n) for n in networks]


def published_port(entry: Any) -> tuple[str, int, int] | None:
    """One `ports:` entry as (host ip, host port, container port); None when it publishes no host port. ValueError
    when it is not a single-port mapping (ranges and IPv6 host addresses are not read here)."""
    if isinstance(entry, dict):
        if not entry.get("published"):
            return None
        if "target" not in entry:
            raise ValueError("has `published` but no `target`")
        return str(entry.get("host_ip", "")), int(entry["published"]), int(entry["target"])
    if not isinstance(entry, (str, int)) or isinstance(entry, bool):
        raise ValueError(f"is a {type(entry).__name__}, not HOST:CONTAINER text or a mapping")
    parts = str(entry).split("/")[0].split(":")
    if len(parts) == 3:
        return parts[0], int(parts[1]), int(parts[2])
    if len(parts) == 2:
        return "", int(parts[0]), int(parts[1])
    int(parts[-1])  # a container port only: publishes nothing, but must still be a port
    return None


def shape_problems(raw: dict[str, Any], where: str) -> list[Problem]:
    """What sealgate reads from a compose file (ComposeFile's accessors, the static containerize checks) that is not
    in the type it is read as; Compose refuses these too. `where` names the file in each problem."""
    problems: list[Problem] = []
    hint = "`docker compose -f <file> config` shows how Compose reads it"

    def bad(path: str, what: str) -> None:
        problems.append(Problem(f"{where}: {path}", what, hint))

    def kind(value: Any) -> str:
        return "null" if value is None else type(value).__name__

    for key in ("volumes", "networks", "secrets", "configs"):
        top = raw.get(key)
        if top is not None and not isinstance(top, dict):
            bad(f"$.{key}", f"must be a mapping of {key[:-1]} names, found {kind(top)}")
        for name, spec in (top if isinstance(top, dict) else {}).items():
            if spec is not None and not isinstance(spec, dict):
                bad(f"$.{key}.{name}", f"must be a mapping (or empty), found {kind(spec)}")
    for name, spec in raw["services"].items():
        at = f"$.services.{name}"
        if spec is None:
            continue
        if not isinstance(spec, dict):
            bad(at, f"a service must be a mapping, found {kind(spec)}")
            continue
        for key, types, wanted in (
            ("profiles", list, "a list"),
            ("volumes", list, "a list"),
            ("ports", list, "a list"),
            ("environment", (list, dict), "a list or a mapping"),
            ("networks", (list, dict), "a list or a mapping"),
            ("secrets", list, "a list"),
            ("configs", list, "a list"),
            ("expose", list, "a list"),
        ):
            if spec.get(key) is not None and not isinstance(spec[key], types):
                bad(f"{at}.{key}", f"must be {wanted}, found {kind(spec[key])}")
        for index, entry in enumerate(spec.get("volumes") if isinstance(spec.get("volumes"), list) else []):
            if not isinstance(entry, (str, dict)):
                bad(f"{at}.volumes[{index}]", f"must be SOURCE:TARGET text or a mapping, found {kind(entry)}")
        for key in ("secrets", "configs"):
            for index, entry in enumerate(spec.get(key) if isinstance(spec.get(key), list) else []):
                if not isinstance(entry, (str, dict)):
                    bad(f"{at}.{key}[{index}]", f"must be a {key[:-1]} name or a mapping, found {kind(entry)}")
        for index, entry in enumerate(spec.get("expose") if isinstance(spec.get("expose"), list) else []):
            if not isinstance(entry, (str, int)) or isinstance(entry, bool):
                bad(f"{at}.expose[{index}]", f"must be a container port, found {kind(entry)}")
        for index, entry in enumerate(spec.get("networks") if isinstance(spec.get("networks"), list) else []):
            if not isinstance(entry, str):
                bad(f"{at}.networks[{index}]", f"must be a network name, found {kind(entry)}")
        for index, entry in enumerate(spec.get("ports") if isinstance(spec.get("ports"), list) else []):
            try:
                published_port(entry)
            except ValueError as exc:
                bad(f"{at}.ports[{index}]", f"{entry!r} is not a port mapping sealgate can read: {exc}")
    return problems


class ComposeFile:
    """The compose file, interpolated with `env` (process environment, plus an env file's values beneath it)."""

    def __init__(
        self,
        path: Path,
        env: Mapping[str, str],
        display: str | None = None,
        *,
        resolved: dict[str, Any] | None = None,
    ) -> None:
        """`display`: the name errors use (a repository-relative path keeps this machine's paths out of evidence).
        `resolved`: the model Compose itself made of the file (`docker compose config --format json`: anchors,
        merges, profiles and variables resolved, long syntax), read instead of interpolating the file here."""
        self.path = path
        shown = display or str(path)
        self.display = shown
        self.base = path.parent
        self._lines: dict[tuple[Any, ...], int] | None = None
        try:
            self.text = path.read_text(encoding="utf-8")
            raw = yaml.safe_load(self.text)
        except FileNotFoundError:
            raise StackError(Problem(shown, "compose file missing")) from None
        except UnicodeDecodeError as exc:
            raise StackError(Problem(shown, f"cannot read: {exc}")) from None
        except OSError as exc:
            raise StackError(Problem(shown, f"cannot read: {exc.strerror or exc}")) from None
        except yaml.YAMLError as exc:
            raise StackError(Problem(shown, f"not valid YAML: {exc}")) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
            raise StackError(Problem(shown, "no `services:` mapping"))
        self.source: dict[str, Any] = raw  # as written, before interpolation
        self.raw: dict[str, Any] = resolved if resolved is not None else interpolate_tree(raw, env, shown)
        if not isinstance(self.raw.get("services"), dict):
            raise StackError(Problem(shown, "no `services:` mapping"))
        problems = shape_problems(self.raw, shown)
        if problems:
            raise StackError(*problems)
        self.env = env
        self.services: dict[str, Service] = {
            name: Service(name, spec or {}, [str(p) for p in (spec or {}).get("profiles") or []], env)
            for name, spec in self.raw["services"].items()
        }

    def line(self, *path: Any) -> int | None:
        """1-based line of the key or item at `path` (e.g. "services", "api", "ports", 0) in the file as written,
        or of its nearest ancestor that is there (a key inherited through `<<:` points at that line)."""
        if self._lines is None:
            try:
                self._lines = yaml_lines(self.text)
            except yaml.YAMLError:
                self._lines = {}
        while path and path not in self._lines:
            path = path[:-1]
        return self._lines.get(path) if path else None

    def enabled(self, profiles: set[str]) -> list[str]:
        """Services Compose starts with these profiles active (a service without profiles always starts)."""
        return [n for n, s in self.services.items() if not s.profiles or profiles.intersection(s.profiles)]

    def host_port_variables(self, service: str) -> dict[int, str]:
        """container port -> the variable that sets its host port, read from the file as written
        (`127.0.0.1:${API_PORT:-8000}:8000` -> {8000: "API_PORT"}); ports written as plain numbers have none."""
        found: dict[int, str] = {}
        written = ((self.source.get("services") or {}).get(service) or {}).get("ports") or []
        for entry in written:
            if isinstance(entry, dict):
                host, container = str(entry.get("published", "")), str(entry.get("target", ""))
            else:
                parts = _split_outside_variables(str(entry).split("/")[0])
                if len(parts) < 2:
                    continue
                host, container = parts[-2], parts[-1]
            match = _VAR.fullmatch(host.strip())
            name = match.group("braced") or match.group("named") if match else None
            if name and container.strip().isdigit():
                found[int(container)] = name
        return found

    def secret_value(self, name: str, used_by: str) -> str:
        """The value of top-level secret `name` as Compose would mount it: its `environment:` variable's value or its
        `file:`'s content. A StackError naming the secret, its service and the variable (never the value) when it is
        unset, empty or unreadable: a secret that is not there stops the stack before anything starts."""
        spec = (self.raw.get("secrets") or {}).get(name)
        where = f"{self.display}: secrets.{name} (used by {used_by})"
        if not isinstance(spec, dict):
            raise StackError(Problem(where, "is not declared at the top level of the compose file"))
        if spec.get("environment"):
            variable = str(spec["environment"])
            value = self.env.get(variable)
            if value is None or not str(value).strip():
                said = "is not set" if value is None else "is empty"
                raise StackError(
                    Problem(where, f"environment variable {variable} {said}", f"set {variable} to the secret's value")
                )
            return str(value)
        if spec.get("file"):
            path = Path(str(spec["file"]))
            path = path if path.is_absolute() else (self.base / path)
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise StackError(Problem(where, f"cannot read its file {spec['file']}: {exc}")) from None
            if not value.strip():
                raise StackError(Problem(where, f"its file {spec['file']} is empty"))
            return value
        raise StackError(
            Problem(where, "has neither `environment:` nor `file:`", "external (swarm) secrets cannot be mounted here")
        )

    def secret_problems(self, services: list[str]) -> list[Problem]:
        """Every secret the given services use that has no value here, one problem each (values are never read into
        the message)."""
        problems: list[Problem] = []
        for service in services:
            for ref in self.services[service].secrets():
                try:
                    self.secret_value(ref.name, service)
                except StackError as exc:
                    problems += exc.problems
        return problems

    def object_file(self, key: str, name: str) -> str | None:
        """The host file of top-level config or secret `name` (`key`: "configs" | "secrets") when it is made from a
        `file:` (absolute: resolved against the compose file's directory, as Compose does); None for one made from
        `content:`, `environment:` or `external:`, or not declared."""
        spec = (self.raw.get(key) or {}).get(name)
        file = spec.get("file") if isinstance(spec, dict) else None
        if not file:
            return None
        return str(file) if str(file).startswith("/") else str((self.base / str(file)).resolve())

    def file_at(self, service: str, container_path: str) -> MountedFile | None:
        """Which host file service `service`'s container reads at `container_path` (absolute), and through which
        entry: the deepest of its volume mounts (a file inside a directory bind mount is there too), file-backed
        secrets and configs that covers the path; at one target, a volume comes before a secret, a secret before a
        config (Compose mounts them in that order and keeps the first). None when nothing of the compose file covers
        the path (the image's own file is there) or `service` is not declared. The one answer every reader of "the
        repository file behind this container path" uses: checks, the stack description, the local backend."""
        svc = self.services.get(service)
        if svc is None or not container_path.startswith("/"):
            return None
        path = posixpath.normpath(container_path)
        path = "/" + path.lstrip("/")  # normpath keeps a leading "//"
        best: MountedFile | None = None
        best_depth = -1

        def consider(found: MountedFile) -> None:
            nonlocal best, best_depth
            target = posixpath.normpath(found.target)
            covers = path == target or path.startswith(target.rstrip("/") + "/")
            depth = len(target.rstrip("/"))
            if covers and depth > best_depth:  # strictly deeper: the first entry at a target wins
                best, best_depth = found, depth

        for index, mount in enumerate(svc.mounts(self.base)):
            if mount.target.startswith("/"):
                host = mount.source if mount.bind and mount.source else None
                consider(MountedFile(path, host, "volumes", index, mount.target, mount.type, mount.read_only))
        for key, refs in (("secrets", svc.secrets()), ("configs", svc.configs())):
            for index, ref in enumerate(refs):
                host = self.object_file(key, ref.name)
                consider(MountedFile(path, host, key, index, ref.target, key.removesuffix("s"), read_only=True))
        if best is None:
            return None
        target = posixpath.normpath(best.target).rstrip("/")
        rest = path[len(target) :]
        if best.host is None or (rest and best.kind in ("config", "secret")):
            # Not a host path; or below a mounted *file*, where nothing can be.
            return MountedFile(path, None, best.key, best.index, best.target, best.kind, best.read_only)
        host = best.host.rstrip("/") + rest if best.host != "/" else (rest or "/")
        return MountedFile(path, host, best.key, best.index, best.target, best.kind, best.read_only)

    def host_patterns(self, service: str, container_glob: str) -> list[str]:
        """The host paths or glob patterns behind a container path that may be a glob (Prometheus' `rule_files`):
        what `file_at` finds for it (a directory mount turns the glob into a host glob), and, for a glob, every
        file-backed config or secret whose target it matches (`*` never crosses a `/`, as in Go's filepath.Match).
        Empty when nothing of the host is there."""
        found: list[str] = []
        mounted = self.file_at(service, container_glob)
        if mounted is not None and mounted.host is not None:
            found.append(mounted.host)
        svc = self.services.get(service)
        if svc is None or not _GLOB.search(container_glob):
            return found
        for target in [ref.target for ref in svc.secrets()] + [ref.target for ref in svc.configs()]:
            delivered = self.file_at(service, target)
            if (
                delivered is not None
                and delivered.host is not None
                and delivered.kind in ("config", "secret")
                and _glob_matches(container_glob, target)
                and delivered.host not in found
            ):
                found.append(delivered.host)
        return found

    def container_paths(self, service: str, host_file: str | Path) -> list[str]:
        """Every path at which service `service`'s container sees the host file `host_file` (through a bind mount
        of it or of a directory above it, or a file-backed config or secret), left out where a deeper mount shadows
        it; sorted."""
        svc = self.services.get(service)
        if svc is None:
            return []
        wanted = Path(host_file).resolve()
        candidates: set[str] = set()
        for mount in svc.mounts(self.base):
            if not (mount.bind and mount.source and mount.target.startswith("/")):
                continue
            source = Path(mount.source).resolve()
            if wanted == source or source in wanted.parents:
                rest = wanted.relative_to(source).as_posix()
                candidates.add(posixpath.normpath(posixpath.join(mount.target, rest)))
        for key, refs in (("secrets", svc.secrets()), ("configs", svc.configs())):
            for ref in refs:
                file = self.object_file(key, ref.name)
                if file is not None and Path(file).resolve() == wanted:
                    candidates.add(posixpath.normpath(ref.target))
        seen = []
        for candidate in sorted(candidates):
            mounted = self.file_at(service, candidate)
            if mounted is not None and mounted.host is not None and Path(mounted.host).resolve() == wanted:
                seen.append(candidate)
        return seen

    def volume_name(self, key: str, project: str) -> str:
        spec = (self.raw.get("volumes") or {}).get(key) or {}
        return str(spec.get("name") or f"{project}_{key}")

    def volume_keys(self) -> list[str]:
        return list((self.raw.get("volumes") or {}).keys())


_GLOB = re.compile(r"[*?\[]")


def _glob_matches(pattern: str, path: str) -> bool:
    """Whether container path `path` matches the glob `pattern` segment by segment (`*` never crosses a `/`)."""
    wanted, parts = posixpath.normpath(pattern).strip("/").split("/"), posixpath.normpath(path).strip("/").split("/")
    return len(wanted) == len(parts) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


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
    """Host path of a container path through the longest matching bind mount; None when no mount covers it. Bind
    mounts only: a reader that has the compose file asks `ComposeFile.file_at`, which also knows configs, secrets
    and the volumes that shadow a bind mount."""
    best: Mount | None = None
    for mount in mounts:
        target = mount.target.rstrip("/")
        covers = mount.bind and (container_path == target or container_path.startswith(target + "/"))
        if covers and (best is None or len(target) > len(best.target.rstrip("/"))):
            best = mount
    if best is None:
        return None
    return best.source.rstrip("/") + container_path[len(best.target.rstrip("/")) :]
