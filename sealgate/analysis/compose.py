"""The compose file as the checks judge it: resolved with its **default** values by the real Compose where it is
installed (`docker compose config`, every variable the file reads unset, no env file, every profile), else parsed
and interpolated here the same way; either way read through the one compose-file model
(`sealgate.backends.composefile.ComposeFile`), so findings point at the committed file's lines."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from sealgate.api.context import Context
from sealgate.backends.composefile import ComposeFile
from sealgate.backends.errors import StackError

ENV_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def referenced_variables(text: str) -> list[str]:
    return sorted(set(ENV_REFERENCE.findall(text.replace("$$", ""))))


def _profiles(raw: dict[str, Any]) -> list[str]:
    """Every profile the file names, so `docker compose config` resolves all services; a malformed `services:` or
    `profiles:` is left to Compose, which refuses it with its own message."""
    found: set[str] = set()
    services = raw.get("services")
    for spec in services.values() if isinstance(services, dict) else []:
        profiles = spec.get("profiles") if isinstance(spec, dict) else None
        if isinstance(profiles, list):
            found.update(str(p) for p in profiles)
    return sorted(found)


def load_compose(ctx: Context) -> ComposeFile:
    """The stack description's compose file resolved with its defaults, through `docker compose config` when
    Compose v2 is installed (recorded in evidence, once per stage run), else by parsing it here the way Compose
    interpolates it."""
    relative = ctx.description.compose_file
    path = ctx.judge(relative)
    text = path.read_text()
    key = ("compose", hashlib.sha256(text.encode()).hexdigest())
    compose, resolver = ctx.stage_memo(key, lambda: _resolve(ctx, path, relative, text))
    ctx.record("resolver", resolver)
    return compose


def _problems_text(exc: StackError) -> str:
    shown = "; ".join(map(str, exc.problems[:5]))
    return shown + (f" (+{len(exc.problems) - 5} more)" if len(exc.problems) > 5 else "")


def _resolve(ctx: Context, path: Path, relative: str, text: str) -> tuple[ComposeFile, str]:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        ctx.fail(f"{relative}{':' + str(mark.line + 1) if mark else ''}: not valid YAML: {exc}")
    if not isinstance(raw, dict):
        ctx.fail(f"{relative}:1: a compose file is a YAML mapping (services:, volumes:, ...), not {raw!r:.40}")
    variables = referenced_variables(text)
    profiles = _profiles(raw)
    probe = ctx.run(["docker", "compose", "version", "--short"], timeout=30) if shutil.which("docker") else None
    if probe is not None and probe.ok:
        # Unset every variable the file reads and read no env file: the defaults are what is judged.
        argv = ["env", *[a for v in variables for a in ("-u", v)], "docker", "compose", "-p", "sealgate-judge"]
        argv += ["-f", str(path), "--env-file", os.devnull, *[a for p in profiles for a in ("--profile", p)]]
        result = ctx.run([*argv, "config", "--format", "json"], timeout=60)
        if not result.ok:
            ctx.fail(f"{relative}: `docker compose config` refused the file: {result.stderr.strip()[-800:]}")
        try:
            model = json.loads(result.stdout)
        except ValueError as exc:
            ctx.error(f"`docker compose config --format json` printed no JSON: {exc}")
        version = probe.stdout.strip()
        ctx.tool_version("docker-compose", version)
        try:
            compose = ComposeFile(path, {}, relative, resolved=model)
        except StackError as exc:
            ctx.fail(_problems_text(exc))
        return compose, f"docker compose {version} config (defaults, all profiles)"
    try:
        # What Compose would refuse (`${VAR:?message}` with no default, a key of the wrong type) is refused here
        # too, where `docker compose config` cannot run.
        compose = ComposeFile(path, {}, relative)
    except StackError as exc:
        ctx.fail(_problems_text(exc))
    return compose, "YAML parsed here (Compose v2 not installed)"
