"""The one object a check receives: the spec, its parameters, the stack, paths, and recorders for evidence.

Everything a check observes that should end up in evidence goes through here: files it judged (subjects),
external commands it ran (argv, exit code, digests of the output), attachments, measured facts, findings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sealgate.evidence.redact import redact_argv, redact_text
from sealgate.fsutil import atomic_write, sha256_bytes
from sealgate.sprint.model import Finding, Location, Severity

if TYPE_CHECKING:
    from sealgate.sprint.spec import Spec, Waiver
    from sealgate.stack.backends.base import StackBackend

EXCERPT_CHARS = 600


class CheckFailed(Exception):
    """Raised by ctx.fail(): the check ran and the criterion is not met."""


class CheckErrored(Exception):
    """Raised by ctx.error(): the check could not run (tool missing, stack down)."""


class CheckSkipped(Exception):
    """Raised by ctx.skip(): the check deliberately did not run, with a reason."""


@dataclass(frozen=True)
class RunOptions:
    backend: str = "auto"
    no_tag: bool = False
    no_drill: bool = False
    sign: bool = False
    force: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass
class CommandRecord:
    argv: list[str]
    exit_code: int
    duration_s: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": redact_argv(self.argv),
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "stdout_sha256": sha256_bytes(self.stdout.encode()),
            "stderr_sha256": sha256_bytes(self.stderr.encode()),
            "excerpt": redact_text((self.stdout + self.stderr)[-EXCERPT_CHARS:]),
        }


@dataclass
class StageRecorder:
    """What one stage's checks observed, shared by the contexts of its checks; becomes the evidence."""

    root: Path
    attachments_dir: Path  # where attachments are written during the stage (a staging folder)
    attachments_prefix: str  # their name in the evidence: "eixo_<N>"
    subjects: set[str] = field(default_factory=set)
    commands: list[CommandRecord] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)  # relative name -> sha256
    waits: list[dict[str, Any]] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)


class Context:
    """Per-check view of a run. Checks must not touch the stack or the filesystem except through this."""

    def __init__(
        self,
        *,
        spec: Spec,
        stage: int,
        check_id: str,
        params: Mapping[str, Any],
        recorder: StageRecorder,
        options: RunOptions,
        stack_provider: Callable[[], StackBackend],
        run_dir: Path,
    ) -> None:
        self.spec = spec
        self.stage = stage
        self.check_id = check_id
        self.params = params
        self.options = options
        self.run_dir = run_dir  # scratch space for this run (not evidence)
        self._recorder = recorder
        self._stack_provider = stack_provider
        self.findings: list[Finding] = []
        self.data: dict[str, Any] = {}
        self.waivers: list[Waiver] = []

    # --- where things are -------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self._recorder.root

    def path(self, relative: str) -> Path:
        """A repository path, refusing anything that escapes the repository."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            self.error(f"path {relative!r} escapes the repository")
        return candidate

    @property
    def stack(self) -> StackBackend:
        """The running stack, brought up on first use (only checks that use it pay for it)."""
        return self._stack_provider()

    # --- recording ---------------------------------------------------------------------------------------
    def judge(self, relative: str | Path) -> Path:
        """Declare a repository file as judged by this stage: it becomes an evidence subject with its digest."""
        path = self.path(str(relative))
        if not path.is_file():
            self.fail(f"{relative}: file not found", Location(file=str(relative)))
        self._recorder.subjects.add(path.relative_to(self.root.resolve()).as_posix())
        return path

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 120,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> CommandRecord:
        """Run an external command, record it in evidence, and return its result (never raises on exit code).

        A missing executable or a timeout is an error of the check ("could not run"), not a failure.
        """
        argv = [str(a) for a in argv]
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            self.error(f"{argv[0]}: command not found")
        started = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd or self.root,
                env={**os.environ, **(env or {})},
                input=input_text,
                capture_output=True,
                text=True,
                errors="replace",  # tools quote input cut mid-character (promtool: `!!str \xf0\x90\x80...`)
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            record = CommandRecord(argv, -1, time.monotonic() - started, _text(exc.stdout), _text(exc.stderr))
            self._recorder.commands.append(record)
            self.error(f"{' '.join(redact_argv(argv))}: timed out after {timeout:g} s")
        record = CommandRecord(argv, proc.returncode, time.monotonic() - started, proc.stdout, proc.stderr)
        self._recorder.commands.append(record)
        return record

    def attach(self, name: str, content: str | bytes) -> str:
        """Store a larger attachment (log, JUnit XML) next to the evidence; its digest goes into the evidence."""
        data = content.encode() if isinstance(content, str) else content
        if isinstance(content, str):
            data = redact_text(content).encode()
        relative = f"{self._recorder.attachments_prefix}/{name}"
        atomic_write(self._recorder.attachments_dir / name, data)
        self._recorder.attachments[relative] = sha256_bytes(data)
        return relative

    def apply_waiver(self, kind: str, target: str, verdict: str = "skipped") -> Waiver | None:
        """The spec's waiver for a part of this check (e.g. kind "test", a stack test id) whose outcome is `verdict`,
        recorded when it exists and accepts that verdict: the check may then pass, and the judge shows it as
        *waived*, never as passed."""
        waiver = self.spec.waiver_for(kind, target)
        if waiver is not None and not waiver.covers(verdict):
            return None
        if waiver is not None and waiver not in self.waivers:
            self.waivers.append(waiver)
        return waiver

    def record_command(
        self, argv: Sequence[str], exit_code: int, duration_s: float, stdout: str = "", stderr: str = ""
    ) -> CommandRecord:
        """Record a command the check ran itself (a long-running server it started and stopped) as evidence."""
        record = CommandRecord([str(a) for a in argv], exit_code, duration_s, stdout, stderr)
        self._recorder.commands.append(record)
        return record

    def record(self, key: str, value: Any) -> None:
        """A fact this check measured (a version, a mode, a count); lands in the check's `data`."""
        self.data[key] = value

    def tool_version(self, tool: str, version: str) -> None:
        self._recorder.tool_versions[tool] = version

    def note_wait(self, what: str, seconds: float) -> None:
        """An irreducible wait (stack readiness, an alert's `for` window), kept apart from framework time."""
        self._recorder.waits.append({"check": self.check_id, "what": what, "seconds": round(seconds, 3)})

    # --- verdicts ------------------------------------------------------------------------------------------
    def finding(
        self,
        summary: str,
        *,
        file: str | None = None,
        line: int | None = None,
        json_path: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        """Report a problem; any ERROR finding makes the check fail once it returns."""
        self.findings.append(Finding(severity, summary, Location(file, line, json_path)))

    def fail(self, reason: str, location: Location | None = None) -> NoReturn:
        if location is not None:
            self.findings.append(Finding(Severity.ERROR, reason, location))
        raise CheckFailed(reason)

    def error(self, reason: str) -> NoReturn:
        raise CheckErrored(reason)

    def skip(self, reason: str) -> NoReturn:
        raise CheckSkipped(reason)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
