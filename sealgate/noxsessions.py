"""Nox sessions for any project that uses sealgate, so a project's noxfile stays a few lines:

    import nox
    from sealgate.noxsessions import sealgate_sessions

    sealgate_sessions()   # the sealgate beside Nox; or install_args=["-e", "."] to give each session a venv

Every session is a thin wrapper around the `sealgate` console script. The `eixo_<N>` sessions are generated from the
sprint specs in `sprint/`: one per stage (EIXO) number any spec declares, its description naming each sprint's title for
it (`nox -l` shows them). This module is imported by the interpreter that runs Nox, so it needs nothing but Nox and
PyYAML, and reads the specs only for their stage numbers and titles (the engine validates them when a session runs).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import nox

SPRINT_DIR = "sprint"
INSTALL_STAMP = ".sealgate-installed"


def declared_stages(root: Path) -> dict[int, list[tuple[str, str]]]:
    """Stage number -> (`"<title> (<sprint>)"`, the spec's language) for each spec in sprint/ that declares it. A
    spec that cannot be read is skipped here: running any session reports it properly."""
    import yaml  # only where the sessions are built: PyYAML is sealgate's own dependency

    stages: dict[int, list[tuple[str, str]]] = {}
    for path in sorted((root / SPRINT_DIR).glob("*.yaml")):
        if path.name.endswith(".waivers.yaml"):
            continue
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(spec, dict) or not isinstance(spec.get("stages"), list):
            continue
        for stage in spec["stages"]:
            if isinstance(stage, dict) and isinstance(stage.get("number"), int):
                title = stage.get("title") or stage.get("name") or ""
                label = f"{title} ({spec.get('id', path.stem)})"
                stages.setdefault(stage["number"], []).append((label, str(spec.get("language", "en"))))
    return dict(sorted(stages.items()))


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
        "Run every stage (EIXO), judge every criterion from evidence, render the SEAL report, create the tag.",
        ("seal",),
        default=True,
    )
    for number, titles in declared_stages(base).items():
        # The seed's word where every spec declaring the stage speaks pt-BR (the session is eixo_<N> either way).
        word = "EIXO" if all(language == "pt-BR" for _label, language in titles) else "stage"
        register(
            f"eixo_{number}", f"{word} {number}: " + "; ".join(label for label, _ in titles), ("eixo", str(number))
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


__all__ = ["declared_stages", "install", "sealgate_sessions"]
