"""Reading stack/docker-compose.yml the way Compose does, for the parts the backends need without a Docker engine:
variable interpolation (`${VAR:-default}` & co.), env files, services and their profiles, images, bind mounts,
published ports and commands. Both backends read the one compose file, so nothing about the stack is restated here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealgate.errors import Problem
from sealgate.stack.backends.base import StackError

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, ${VAR:+alt}, $VAR and the escape $$.
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


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
    source: str  # host path (absolute, resolved against the compose file's directory) or volume name
    target: str  # path inside the container
    bind: bool


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
        found: list[Mount] = []
        for entry in self.raw.get("volumes") or []:
            if isinstance(entry, str):
                parts = entry.split(":")
                source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
                bind = source.startswith((".", "/", "~"))
            else:
                source, target = str(entry.get("source", "")), str(entry.get("target", ""))
                bind = entry.get("type") == "bind"
            if bind:
                source = str((base / source).resolve()) if not source.startswith("/") else source
            found.append(Mount(source, target, bind))
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

    for key in ("volumes", "networks"):
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
        ):
            if spec.get(key) is not None and not isinstance(spec[key], types):
                bad(f"{at}.{key}", f"must be {wanted}, found {kind(spec[key])}")
        for index, entry in enumerate(spec.get("volumes") if isinstance(spec.get("volumes"), list) else []):
            if not isinstance(entry, (str, dict)):
                bad(f"{at}.volumes[{index}]", f"must be SOURCE:TARGET text or a mapping, found {kind(entry)}")
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

    def __init__(self, path: Path, env: Mapping[str, str], display: str | None = None) -> None:
        """`display`: the name errors use (a repository-relative path keeps this machine's paths out of evidence)."""
        self.path = path
        shown = display or str(path)
        self.base = path.parent
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
        self.raw: dict[str, Any] = interpolate_tree(raw, env, shown)
        problems = shape_problems(self.raw, shown)
        if problems:
            raise StackError(*problems)
        self.services: dict[str, Service] = {
            name: Service(name, spec or {}, [str(p) for p in (spec or {}).get("profiles") or []], env)
            for name, spec in self.raw["services"].items()
        }

    def enabled(self, profiles: set[str]) -> list[str]:
        """Services Compose starts with these profiles active (a service without profiles always starts)."""
        return [n for n, s in self.services.items() if not s.profiles or profiles.intersection(s.profiles)]

    def volume_name(self, key: str, project: str) -> str:
        spec = (self.raw.get("volumes") or {}).get(key) or {}
        return str(spec.get("name") or f"{project}_{key}")

    def volume_keys(self) -> list[str]:
        return list((self.raw.get("volumes") or {}).keys())
