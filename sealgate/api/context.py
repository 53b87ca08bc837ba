"""The one object a check receives: the spec, its parameters, the stack, paths, and recorders for evidence.

Everything a check observes that should end up in evidence goes through here: files it judged (subjects),
external commands it ran (argv, exit code, digests of the output), attachments, measured facts, findings.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sealgate.backends.description import DEFAULT_PATH as DEFAULT_STACK_PATH
from sealgate.backends.errors import StackError
from sealgate.backends.http import request
from sealgate.kernel.fsutil import atomic_write, sha256_bytes
from sealgate.kernel.jsonpos import value_lines
from sealgate.kernel.poll import poll
from sealgate.kernel.procs import start_logged, terminate
from sealgate.kernel.redact import redact_argv, redact_text
from sealgate.model.results import Finding, Location, Severity

if TYPE_CHECKING:
    from sealgate.backends.base import StackBackend
    from sealgate.backends.description import StackDescription
    from sealgate.sprint.model import Spec, Waiver

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
    drill: str = "default"  # "all": also the drill phases a spec runs only on request (`on_request: true`)
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
    """What one stage's checks observed, shared by the contexts of its checks; becomes the evidence.

    Thread-safe: a concurrent check (and the threads of one check, such as a drill's phases) records while the
    stage's other checks do; every write goes through `lock`."""

    root: Path
    attachments_dir: Path  # where attachments are written during the stage (a staging folder)
    attachments_prefix: str  # their name in the evidence: "eixo_<N>"
    subjects: set[str] = field(default_factory=set)
    commands: list[CommandRecord] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)  # relative name -> sha256
    waits: list[dict[str, Any]] = field(default_factory=list)
    tool_versions: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    # Values computed once per stage run and shared by its checks (Context.stage_memo).
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


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
        copy_provider: Callable[[str, list[str] | None, bool], StackBackend | None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.stage = stage
        self.check_id = check_id
        self.params = params
        self.options = options
        self.run_dir = run_dir  # scratch space for this run (not evidence)
        self._recorder = recorder
        self._stack_provider = stack_provider
        self._copy_provider = copy_provider
        self.cancelled = cancelled or threading.Event()  # set when the run stops: long waits end at their next poll
        self.findings: list[Finding] = []
        self.data: dict[str, Any] = {}
        self.waivers: list[Waiver] = []

    # --- where things are -------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self._recorder.root

    @functools.cached_property
    def _resolved_root(self) -> Path:
        return self.root.resolve()  # once per check: a stage judges hundreds of rule files

    def path(self, relative: str) -> Path:
        """A repository path, refusing anything that escapes the repository."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self._resolved_root):
            self.error(f"path {relative!r} escapes the repository")
        return candidate

    @property
    def description(self) -> StackDescription:
        """The project's stack description (services by role, compose file, backup procedure): what a check reads
        instead of naming any service or path itself. Available without starting the stack."""
        if self.spec.stack is None:
            self.error(
                f"{self.spec.relpath}: no stack description (set `stack:` in the spec, or write {DEFAULT_STACK_PATH})"
            )
        return self.spec.stack

    @property
    def stack(self) -> StackBackend:
        """The running stack, brought up on first use (only checks that use it pay for it)."""
        return self._stack_provider()

    def stack_copy(self, name: str, services: list[str] | None = None) -> StackBackend:
        """An isolated copy of the stack (its own project or processes, ports, volumes or data), ready; started now
        or by start_stack_copy(). `services` limits it to those. It is removed, with its data, when the run ends."""
        if self._copy_provider is None:
            self.error("this run cannot make copies of the stack")
        copy = self._copy_provider(name, services, True)
        assert copy is not None
        return copy

    def start_stack_copy(self, name: str, services: list[str] | None = None) -> None:
        """Start a copy in the background (a check's `prepare`), so it is ready when the check runs."""
        if self._copy_provider is not None:
            self._copy_provider(name, services, False)

    def stage_memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per stage run, shared by every check of the stage (e.g. the compose file as `docker
        compose config` resolves it: run once, recorded once in the stage's evidence)."""
        with self._recorder.lock:
            if key not in self._recorder.memo:
                self._recorder.memo[key] = compute()
            return self._recorder.memo[key]

    def sleep(self, seconds: float) -> None:
        """A wait that ends the check (errored) as soon as the run is stopped (interrupt): loops use this."""
        if self.cancelled.wait(timeout=max(0.0, seconds)):
            self.error("the run was stopped while this check waited")

    # --- recording ---------------------------------------------------------------------------------------
    def judge(self, relative: str | Path) -> Path:
        """Declare a repository file as judged by this stage: it becomes an evidence subject with its digest."""
        path = self.path(str(relative))
        if not path.is_file():
            self.fail(f"{relative}: file not found", Location(file=str(relative)))
        with self._recorder.lock:
            self._recorder.subjects.add(path.relative_to(self._resolved_root).as_posix())
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
        if any("\0" in a for a in argv):
            self.error(f"{argv[0]}: an argument taken from the judged input holds a NUL byte, which no command accepts")
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
            self._add_command(record)
            self.error(f"{' '.join(redact_argv(argv))}: timed out after {timeout:g} s")
        record = CommandRecord(argv, proc.returncode, time.monotonic() - started, proc.stdout, proc.stderr)
        self._add_command(record)
        return record

    def _add_command(self, record: CommandRecord) -> None:
        with self._recorder.lock:
            self._recorder.commands.append(record)

    def start(self, argv: Sequence[str], *, timeout: float = 120, cwd: Path | None = None) -> RunningCommand:
        """Start an external command and return at once: the check goes on with its own work meanwhile (promtool
        reads the rule files while the check parses them) and calls `.wait()` for the result, which is recorded
        as `run` records it. stdout and stderr come interleaved, in the order the command wrote them."""
        argv = [str(a) for a in argv]
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            self.error(f"{argv[0]}: command not found")
        # A file, not a pipe: a command writing more than a pipe holds must not stall while nobody reads.
        output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by RunningCommand.wait)
        proc = subprocess.Popen(argv, cwd=cwd or self.root, stdout=output, stderr=subprocess.STDOUT)
        return RunningCommand(self, argv, proc, output, time.monotonic(), timeout)

    @contextlib.contextmanager
    def serve(
        self,
        argv: Sequence[str],
        *,
        log_name: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        timeout: float = 60.0,
        grace: float = 5.0,
        shown: Sequence[str] | None = None,
    ) -> Iterator[Server]:
        """Start a server this check needs (a restored Prometheus, the service under test), its output in
        `run_dir/log_name`; with `ready_url`, wait until it answers there with 2xx or exits (`Server.ready` says
        which, `Server.waited_s` how long). On leaving, it is stopped (SIGTERM, then SIGKILL after `grace`) and
        recorded in evidence like any command: argv (`shown`, when the real one holds machine paths), exit code,
        duration, output."""
        argv = [str(a) for a in argv]
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            self.error(f"{argv[0]}: command not found")
        log_path = self.run_dir / log_name
        started = time.monotonic()
        proc = start_logged(argv, log_path, cwd=cwd or self.run_dir, env=env)
        server = Server([str(a) for a in shown] if shown is not None else argv, proc, log_path)
        try:
            if ready_url is not None:

                def answered() -> str | None:
                    if proc.poll() is not None:
                        return "exited"
                    with contextlib.suppress(StackError):
                        if request("GET", ready_url, timeout=1.0).ok:
                            return "ready"
                    return None

                state, server.waited_s = poll(answered, timeout=timeout, interval=0.2, sleep=self.sleep)
                server.ready = state == "ready"
            yield server
        finally:
            code = terminate(proc, grace)
            self.record_command(server.argv, code, time.monotonic() - started, server.output())

    def attach(self, name: str, content: str | bytes) -> str:
        """Store a larger attachment (log, JUnit XML) next to the evidence; its digest goes into the evidence."""
        data = content.encode() if isinstance(content, str) else content
        if isinstance(content, str):
            data = redact_text(content).encode()
        relative = f"{self._recorder.attachments_prefix}/{name}"
        atomic_write(self._recorder.attachments_dir / name, data)
        with self._recorder.lock:
            self._recorder.attachments[relative] = sha256_bytes(data)
        return relative

    def apply_waiver(self, kind: str, target: str, verdict: str = "skipped") -> Waiver | None:
        """The spec's waiver for a part of this check (e.g. kind "test", a stack test id) whose outcome is `verdict`,
        recorded when it exists and accepts that verdict: the check may then pass, and the judge shows it as
        *waived*, never as passed."""
        waiver = self.spec.waiver_for(kind, target)
        if waiver is not None and not waiver.covers(verdict):
            return None
        with self._recorder.lock:
            if waiver is not None and waiver not in self.waivers:
                self.waivers.append(waiver)
        return waiver

    def record_command(
        self, argv: Sequence[str], exit_code: int, duration_s: float, stdout: str = "", stderr: str = ""
    ) -> CommandRecord:
        """Record a command the check ran itself (a long-running server it started and stopped) as evidence."""
        record = CommandRecord([str(a) for a in argv], exit_code, duration_s, stdout, stderr)
        self._add_command(record)
        return record

    def record(self, key: str, value: Any) -> None:
        """A fact this check measured (a version, a mode, a count); lands in the check's `data`."""
        with self._recorder.lock:
            self.data[key] = value

    def tool_version(self, tool: str, version: str) -> None:
        with self._recorder.lock:
            self._recorder.tool_versions[tool] = version

    def note_wait(self, what: str, seconds: float) -> None:
        """An irreducible wait (stack readiness, an alert's `for` window), kept apart from framework time."""
        with self._recorder.lock:
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
        rule: str | None = None,
        metric: str | None = None,
    ) -> None:
        """Report a problem; any ERROR finding makes the check fail once it returns. `rule` and `metric` name what it
        is about (a waiver may name them). A place in a JSON file given by JSON path gets its line too."""
        if line is None and file is not None and json_path is not None and json_path.startswith("$"):
            line = self._json_lines(file).get(json_path)
        with self._recorder.lock:
            self.findings.append(Finding(severity, summary, Location(file, line, json_path), rule, metric))

    def _json_lines(self, relative: str) -> dict[str, int]:
        """The lines of a repository JSON file's values by JSON path, read once per stage; {} when it is not one."""
        key = ("json-lines", relative)
        with self._recorder.lock:
            if key not in self._recorder.memo:
                path = (self.root / relative).resolve()
                try:
                    text = path.read_text() if path.is_relative_to(self._resolved_root) else ""
                except (OSError, UnicodeDecodeError):
                    text = ""
                self._recorder.memo[key] = value_lines(text)
            return self._recorder.memo[key]

    def fail(self, reason: str, location: Location | None = None) -> NoReturn:
        if location is not None:
            with self._recorder.lock:
                self.findings.append(Finding(Severity.ERROR, reason, location))
        raise CheckFailed(reason)

    def error(self, reason: str) -> NoReturn:
        raise CheckErrored(reason)

    def skip(self, reason: str) -> NoReturn:
        raise CheckSkipped(reason)


@dataclass
class Server:
    """A server a check started with `ctx.serve`: its process and its log."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready: bool = False
    waited_s: float = 0.0

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def lines(self) -> list[str]:
        return [line for line in self.output().splitlines() if line.strip()]


@dataclass
class RunningCommand:
    """A command `Context.start` started; `wait()` gives its CommandRecord (recorded in evidence)."""

    context: Context
    argv: list[str]
    proc: subprocess.Popen[bytes]
    output: Any
    started: float
    timeout: float

    def wait(self) -> CommandRecord:
        if self.output.closed:
            raise RuntimeError(f"{self.argv[0]}: already waited for")
        try:
            self.proc.wait(timeout=max(0.0, self.started + self.timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.context._add_command(self._record(-1))
            self.context.error(f"{' '.join(redact_argv(self.argv))}: timed out after {self.timeout:g} s")
        record = self._record(self.proc.returncode)
        self.context._add_command(record)
        return record

    def discard(self) -> None:
        """Stop the command if nobody waited for it (the check ended early); nothing is recorded."""
        if self.output.closed:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.output.close()

    def _record(self, exit_code: int) -> CommandRecord:
        self.output.seek(0)
        text = self.output.read().decode(errors="replace")
        self.output.close()
        return CommandRecord(self.argv, exit_code, time.monotonic() - self.started, text, "")


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
