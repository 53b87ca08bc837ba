"""Nox sessions for any project that uses sealgate, so a project's noxfile stays a few lines:

    import nox
    from sealgate.noxsessions import sealgate_sessions

    sealgate_sessions()   # the sealgate beside Nox; or install_args=["-e", "."] to give each session a venv

Every session is a thin wrapper around the `sealgate` console script. The `eixo_<N>` sessions are generated from the
sprint specs in `sprint/`: one per stage (EIXO) number any spec declares, its description naming each sprint's title for
it (`nox -l` shows them). This module is imported by the interpreter that runs Nox, so it needs nothing but Nox and
PyYAML, and reads the specs only for their stage numbers and titles (the engine validates them when a session runs).

A spec that cannot be read for its stages (a YAML slip, no `stages:` list) still gives its sessions: the stage
numbers are taken from its text (`number: N` lines), `nox -l` says the spec does not load and where (file:line), and
`nox -s eixo_<N>` runs the CLI on that spec, which prints every problem — rather than Nox answering
`Sessions not found`. (Nox ends a failed session with its own exit 1: it reduces session results to 0 or 1, so the
CLI's 2 for bad input shows only in the printed line.)
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nox

SPRINT_DIR = "sprint"
INSTALL_STAMP = ".sealgate-installed"


# What a spec that does not parse still says: its stage numbers and its language, line by line.
_NUMBER_LINE = re.compile(r"\bnumber:\s*(\d{1,2})\b")
_LANGUAGE_LINE = re.compile(r"^language:\s*['\"]?([A-Za-z-]+)", re.MULTILINE)


@dataclass(frozen=True)
class UnreadableSpec:
    """A spec in sprint/ that cannot be read for its stages: where and why, and the stage numbers its text names."""

    relpath: str
    sprint: str  # the file's stem: what `--sprint` takes
    problem: str  # "sprint/F1.yaml:7: YAML syntax error: …" (the CLI says the same, with every other problem)
    numbers: tuple[int, ...]
    language: str


def declared_stages(root: Path) -> dict[int, list[tuple[str, str]]]:
    """Stage number -> (`"<title> (<sprint>)"`, the spec's language) for each spec in sprint/ that declares it. A
    spec that cannot be read is left out here (see `read_declarations`)."""
    return read_declarations(root)[0]


def read_declarations(root: Path) -> tuple[dict[int, list[tuple[str, str]]], list[UnreadableSpec]]:
    """The stages every readable spec in sprint/ declares (as `declared_stages`), and the specs that cannot be read."""
    import yaml  # only where the sessions are built: PyYAML is sealgate's own dependency

    stages: dict[int, list[tuple[str, str]]] = {}
    unreadable: list[UnreadableSpec] = []
    for path in sorted((root / SPRINT_DIR).glob("*.yaml")):
        if path.name.endswith(".waivers.yaml"):
            continue
        relpath = f"{SPRINT_DIR}/{path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            unreadable.append(UnreadableSpec(relpath, path.stem, f"{relpath}: cannot read: {exc}", (), "en"))
            continue
        try:
            # libyaml's parser when PyYAML has it, as the CLI's loader: the same error, worded the same.
            spec = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.MarkedYAMLError as exc:  # worded as the CLI's loader words it (kernel/yamlsource.py)
            mark = exc.problem_mark or exc.context_mark
            where = f"{relpath}:{mark.line + 1}" if mark else relpath
            unreadable.append(
                _unreadable(relpath, path.stem, f"{where}: YAML syntax error: {exc.problem or exc.context}", text)
            )
            continue
        except yaml.YAMLError as exc:
            unreadable.append(_unreadable(relpath, path.stem, f"{relpath}: YAML error: {exc}", text))
            continue
        if not isinstance(spec, dict):
            unreadable.append(
                _unreadable(relpath, path.stem, f"{relpath}:1: a sprint spec must be a YAML mapping", text)
            )
            continue
        if not isinstance(spec.get("stages"), list):
            line = next((n for n, t in enumerate(text.splitlines(), 1) if t.startswith("stages:")), None)
            where = f"{relpath}:{line}" if line else relpath
            unreadable.append(_unreadable(relpath, path.stem, f"{where}: $.stages: a list of stages is required", text))
            continue
        for stage in spec["stages"]:
            if isinstance(stage, dict) and isinstance(stage.get("number"), int):
                title = stage.get("title") or stage.get("name") or ""
                label = f"{title} ({spec.get('id', path.stem)})"
                stages.setdefault(stage["number"], []).append((label, str(spec.get("language", "en"))))
    return dict(sorted(stages.items())), unreadable


def _unreadable(relpath: str, sprint: str, problem: str, text: str) -> UnreadableSpec:
    numbers = tuple(sorted({int(n) for n in _NUMBER_LINE.findall(text)}))
    language = _LANGUAGE_LINE.search(text)
    return UnreadableSpec(relpath, sprint, problem, numbers, language.group(1) if language else "en")


def install(session: nox.Session, args: Sequence[str], project_file: Path | None = None) -> None:
    """Install into the session's venv once: a stamp keyed on `args` (and the project file, when given) skips the
    install when nothing changed, so a second run of a session installs nothing."""
    key_source = " ".join(args).encode() + (
        project_file.read_bytes() if project_file and project_file.is_file() else b""
    )
    key = hashlib.sha256(key_source).hexdigest()
    stamp = Path(session.virtualenv.location) / INSTALL_STAMP
    if stamp.is_file() and stamp.read_text() == key:
        return
    session.install(*args)
    stamp.write_text(key)


def sealgate_sessions(
    root: Path | str | None = None,
    install_args: Sequence[str] | None = None,
    project_file: str | None = "pyproject.toml",
) -> None:
    """Register seal, eixo_<N> (one per stage the specs declare), report, verify, status, publish and new as sessions.

    `install_args=None` (the default) runs the sealgate installed beside Nox, with no virtualenv of its own: a team
    that `pip install sealgate` gets both. Otherwise each session gets a virtualenv and `session.install` gets
    `install_args` (a package spec, a wheel, or `-e .`); `project_file` (relative to `root`) keys the install stamp,
    so an edited pyproject.toml reinstalls.
    """
    base = Path(root) if root is not None else Path.cwd()
    stamp_file = base / project_file if project_file else None
    backend = "none" if install_args is None else None

    def run(session: nox.Session, *args: str, success_codes: tuple[int, ...]) -> None:
        codes = list(success_codes)
        if install_args is None:
            session.run(
                sys.executable, "-m", "sealgate.cli", *args, *session.posargs, external=True, success_codes=codes
            )
            return
        install(session, list(install_args), stamp_file)
        session.run("sealgate", *args, *session.posargs, external=False, success_codes=codes)

    def register(
        name: str,
        doc: str,
        args: tuple[str, ...],
        default: bool = False,
        needs_args: str = "",
        success_codes: tuple[int, ...] = (0,),
    ) -> None:
        def session_func(session: nox.Session) -> None:
            if needs_args and not session.posargs:
                session.error(f"usage: nox -s {name} -- {needs_args}")
            run(session, *args, success_codes=success_codes)

        session_func.__doc__ = doc
        session_func.__name__ = name
        nox.session(name=name, default=default, venv_backend=backend)(session_func)

    register(
        "seal",
        "Run every stage, judge every criterion from evidence, render the SEAL report, create the tag.",
        ("seal",),
        default=True,
    )
    stages, unreadable = read_declarations(base)
    for number in sorted({*stages, *(n for spec in unreadable for n in spec.numbers)}):
        titles = stages.get(number, [])
        broken = [spec for spec in unreadable if number in spec.numbers]
        languages = [language for _label, language in titles] + [spec.language for spec in broken]
        # The seed's word where every spec declaring the stage speaks pt-BR (the session is eixo_<N> either way).
        word = "EIXO" if all(language == "pt-BR" for language in languages) else "stage"
        parts = [label for label, _ in titles] + [f"{spec.relpath} does not load: {spec.problem}" for spec in broken]
        # A stage only broken specs declare runs on the first of them, so the session says its problems.
        target = ("--sprint", broken[0].sprint) if broken and not titles else ()
        register(f"eixo_{number}", f"{word} {number}: " + "; ".join(parts), ("eixo", str(number), *target))
    if any(not spec.numbers for spec in unreadable):
        # A spec whose text names no stage number gives no eixo session: this one says why it does not load.
        register(
            "specs",
            "Sprint specs that do not load: " + "; ".join(spec.problem for spec in unreadable if not spec.numbers),
            ("eixo", "0", "--sprint", next(spec.sprint for spec in unreadable if not spec.numbers)),
        )
    register("report", "Render the SEAL report from the evidence on disk.", ("report",))
    register(
        "verify",
        "Re-check a seal and its chain from git objects: nox -s verify -- TAG.",
        ("verify",),
        needs_args="<TAG>",
    )
    # Exit 3 (a waiver expired after its seal) is said on that sprint's line but does not fail the session: a seal
    # is never re-made, so it would turn the default branch red for good. `sealgate status` itself keeps exit 3.
    register(
        "status",
        "Every sprint in sprint/: open, sealed, verified or broken, and its base.",
        ("status",),
        success_codes=(0, 3),
    )
    register(
        "publish",
        "Push the seal tags (and the branch fast-forwarded to a seal commit): nox -s publish [-- REMOTE].",
        ("publish",),
    )
    register(
        "new",
        "Draft sprint/<ID>.yaml from the newest sealed sprint's next steps: nox -s new -- F9.11.",
        ("new",),
        needs_args="<ID>",
    )


__all__ = ["UnreadableSpec", "declared_stages", "install", "read_declarations", "sealgate_sessions"]
