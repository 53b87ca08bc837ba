"""Which versions ran: what a live server says about itself, what a program says with `--version`, the version an
image tag pins, and the lines that say where what ran differs from the compose file's pin.

Versions are kept as the software reports them (`2.42.0+ds`, `15.18 (Debian 15.18-0+deb12u1)`); only comparisons
read the dotted number inside. An image tag pins a version when it starts with one (`v2.51.0`, `16.4`,
`3.11.10-slim-bookworm`); a tag that does not (`latest`, `f9.10`, `RELEASE.2024-10-13T13-34-11Z`) pins nothing
comparable, and no drift is said for it — a guess would be invented evidence.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

from sealgate.backends.base import StackBackend, ToolVersion
from sealgate.backends.description import ServiceDecl
from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.http import HttpAnswerError, get_json

API_TIMEOUT = 5.0  # one version question to a server that is already ready
# One `<program> --version`. A program that does not know the flag may start serving instead: it is stopped then, and
# recorded as saying no version, rather than holding the stack's start.
VERSION_TIMEOUT = 10.0
_DOTTED = re.compile(r"\d+(?:\.\d+)+|\d+")
_AFTER_VERSION = re.compile(r"\bversion\s+v?(\d[\w.+~-]*)", re.IGNORECASE)
_FIRST_DOTTED = re.compile(r"\bv?(\d+\.\d+[\w.+~-]*)")
_TAG_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:$|[-+_])")


def number(version: str) -> tuple[int, ...] | None:
    """The dotted number a version string starts with (`2.42.0+ds` -> (2, 42, 0)), None when it has none."""
    found = _DOTTED.search(version)
    return tuple(int(part) for part in found.group(0).split(".")) if found else None


def parse_version_output(output: str) -> str | None:
    """The version in a program's `--version` output: the word after `version` (`prometheus, version 2.42.0+ds
    (branch …)`), else its first dotted number (`postgres (PostgreSQL) 15.18 (Debian …)`, `Python 3.11.7`)."""
    for line in output.splitlines():
        found = _AFTER_VERSION.search(line) or _FIRST_DOTTED.search(line)
        if found:
            return found.group(1)
    return None


def program_version(path: str) -> ToolVersion:
    """`<path> --version`, read; a program that gives no version is recorded as such, never guessed."""
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ToolVersion(path, None, f"`{path} --version` did not run: {type(exc).__name__}")
    version = parse_version_output(done.stdout) or parse_version_output(done.stderr)
    if done.returncode != 0 or version is None:
        return ToolVersion(path, None, f"`{path} --version` exited {done.returncode} without a version")
    return ToolVersion(path, version)


def image_tag(reference: str) -> str | None:
    """The tag of an image reference (`prom/prometheus:v2.51.0` -> `v2.51.0`; a registry's port is not a tag)."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def pinned_version(reference: str) -> str | None:
    """The version an image reference's tag pins (`v2.51.0` -> `2.51.0`), None when its tag is not a version."""
    tag = image_tag(reference)
    found = _TAG_VERSION.match(tag) if tag else None
    return found.group(1) if found else None


def differs(pinned: str, running: str) -> bool:
    """Whether `running` is another version than the pin, compared as far as the pin goes (a pin `16.4` holds for
    `16.4 (Debian …)`; a pin `2.51.0` does not for `2.42.0+ds`). A running version with no number differs."""
    pin, ran = number(pinned), number(running)
    if pin is None:
        return False
    return ran is None or ran[: len(pin)] != pin


def prometheus_version(base_url: str) -> str:
    """The version a live Prometheus reports (`/api/v1/status/buildinfo`)."""
    body = get_json(f"{base_url}/api/v1/status/buildinfo", timeout=API_TIMEOUT)
    version = (body.get("data") or {}).get("version") if isinstance(body, dict) else None
    if not version:
        raise StackError(f"{base_url}/api/v1/status/buildinfo names no version")
    return str(version)


def alertmanager_version(base_url: str) -> str:
    """The version a live Alertmanager reports (`/api/v2/status`, `versionInfo.version`)."""
    body = get_json(f"{base_url}/api/v2/status", timeout=API_TIMEOUT)
    version = (body.get("versionInfo") or {}).get("version") if isinstance(body, dict) else None
    if not version:
        raise StackError(f"{base_url}/api/v2/status names no versionInfo.version")
    return str(version)


def live_version(backend: StackBackend, decl: ServiceDecl) -> Callable[[], str] | None:
    """How to ask a running service its version through its own API, for the roles that have one."""
    if decl.role == "prometheus":
        return lambda: prometheus_version(backend.url(decl.name))
    if decl.role == "alertmanager":
        return lambda: alertmanager_version(backend.url(decl.name))
    if decl.role == "database":
        return lambda: backend.database_version(decl.name)
    return None


def gather_what_ran(backend: StackBackend) -> dict[str, Any]:
    """What a started stack ran (StackBackend.describe says each key): the programs' own versions (tool_versions),
    overridden by what each running server's API says, the images (image_facts), and a drift line per service whose
    version differs from the one its compose image tag pins. Never raises: what cannot be asked is recorded as
    unknown, with why — evidence is written whatever happened to the stack."""
    versions: dict[str, str] = {}
    sources: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for service, tool in backend.tool_versions().items():
        if tool.version:
            versions[service], sources[service] = tool.version, "tool"
        else:
            unknown[service] = tool.why
    for decl in backend.description.services.values():
        ask = live_version(backend, decl)
        if ask is None or backend.cancelled.is_set():
            continue
        try:
            versions[decl.name], sources[decl.name] = ask(), "api"
            unknown.pop(decl.name, None)
        except ServiceNotRunning:
            continue  # nothing of it ran here (unavailable, or not part of this copy): no version to record
        except (StackError, HttpAnswerError) as exc:
            if decl.name not in versions:  # its program's own word stands when the API does not answer
                unknown[decl.name] = f"its API gave no version: {exc}"
        except Exception as exc:
            # An engine gone mid-run raises the Docker SDK's own errors: recorded as unknown, with why, never fatal.
            if decl.name not in versions:
                unknown[decl.name] = f"its version could not be asked: {type(exc).__name__}: {exc}"
    try:
        images, images_unknown = backend.image_facts(), None
    except Exception as exc:  # as above: the record says why there are none
        images, images_unknown = {}, f"{type(exc).__name__}: {exc}"
    pins = backend.pinned_images()
    drift = []
    for service, version in sorted(versions.items()):
        pinned = pinned_version(pins[service]) if service in pins else None
        if pinned is not None and differs(pinned, version):
            drift.append(
                f"{service}: the compose file pins {pins[service]}; the {backend.name} backend ran "
                f"{backend.ran_as(service)}, version {version}"
            )
    facts = backend.what_ran_facts(images, versions, sources, unknown, drift)
    if images_unknown:
        facts["images_unknown"] = f"the images could not be inspected: {images_unknown}"
    return facts
