"""Runs stages: each check of a stage in order, against the stack when it asks for one, then writes the stage's
evidence. A stage never stops the run: `seal` runs every stage it can and reports all of them.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import os
import platform
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealgate import __version__
from sealgate.api.context import CheckErrored, CheckFailed, CheckSkipped, Context, RunOptions, StageRecorder
from sealgate.backends.description import DEFAULT_PATH as DEFAULT_STACK_PATH
from sealgate.backends.errors import ServiceNotRunning, StackUnavailable
from sealgate.evidence.judge import Verdict, check_verdict, satisfies_requirement, worst
from sealgate.evidence.model import RunInfo, StageInfo, Statement, Subject, Wait
from sealgate.evidence.reuse import ReusedStage
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import SealgateError
from sealgate.kernel.fsutil import sha256_file
from sealgate.kernel.gitrepo import Repo
from sealgate.kernel.redact import redact_value
from sealgate.model.results import CheckResult, Severity, Status
from sealgate.sprint.model import CheckRef, Spec, StageSpec

if TYPE_CHECKING:  # the backends import docker & co.; runs that never start the stack do not pay for it
    from sealgate.backends.base import StackBackend
    from sealgate.backends.description import StackDescription


@dataclass
class StackManager:
    """Brings the stack up on first demand, once per run, and down at the end (keeping data); and isolated copies of
    it (a drill's own stack) started in the background on request, always removed at the end — interrupt included."""

    root: Path
    backend_name: str
    run_dir: Path
    progress: Callable[[str], None] = print
    description: StackDescription | None = None  # the spec's stack description
    backend: StackBackend | None = None
    failure: str | None = None
    factory: Callable[..., StackBackend] | None = None
    owned: bool = True  # False: a stack someone else brought up (tests' session fixtures); never stopped here
    copies: dict[str, StackBackend] = field(default_factory=dict)
    _started: dict[str, Future[StackBackend]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _up_lock: threading.Lock = field(default_factory=threading.Lock)  # held while the main stack starts

    def _construct(self) -> StackBackend:
        """The backend object (not started): the main stack, and the template every copy is made from."""
        with self._lock:
            if self.backend is None:
                from sealgate.backends import select_backend

                factory = self.factory or select_backend
                try:
                    if self.description is None and self.factory is None:
                        raise StackUnavailable(
                            "the sprint spec names no stack description (`stack:`) and the project has no "
                            f"{DEFAULT_STACK_PATH}: there is no stack to bring up"
                        )
                    self.backend = factory(
                        self.backend_name, self.root, self.run_dir, progress=self.progress, description=self.description
                    )
                except SealgateError as exc:
                    self.failure = f"stack could not start ({self.backend_name}): {exc}"
                    raise StackUnavailable(self.failure) from None
            return self.backend

    def get(self) -> StackBackend:
        if self.failure:
            raise StackUnavailable(self.failure)
        backend = self._construct()
        # Constructed is not started: a copy's start (a check's prepare) constructs the main backend as its template
        # long before any check asks for the main stack. One start, whoever asks first; a stack handed in already
        # started (tests' session fixtures) is never started again.
        with self._up_lock:
            if self.failure:
                raise StackUnavailable(self.failure)
            if backend.started_at is None:
                try:
                    backend.up()
                except SealgateError as exc:
                    self.failure = f"stack could not start ({self.backend_name}): {exc}"
                    raise StackUnavailable(self.failure) from None
        return backend

    def start_copy(self, name: str, services: list[str] | None = None) -> None:
        """Start an isolated copy of the stack in the background (once per name); copy() waits for it."""
        with self._lock:
            if name in self._started:
                return
            future: Future[StackBackend] = Future()
            self._started[name] = future
        thread = threading.Thread(target=self._start_copy, args=(name, services, future), daemon=True)
        thread.start()

    def _start_copy(self, name: str, services: list[str] | None, future: Future[StackBackend]) -> None:
        try:
            copy = self._construct().copy(name, self.run_dir / "copies" / name, services)
            with self._lock:
                self.copies[name] = copy
            copy.up()
            future.set_result(copy)
        except BaseException as exc:  # handed to whoever waits for the copy
            future.set_exception(exc)

    def copy(self, name: str, services: list[str] | None = None) -> StackBackend:
        """The copy called `name`, started now or earlier (start_copy), once it is ready."""
        self.start_copy(name, services)
        try:
            return self._started[name].result()
        except StackUnavailable:
            raise
        except SealgateError as exc:
            raise StackUnavailable(f"copy {name} of the stack could not start: {exc}") from None

    def describe(self) -> dict[str, Any] | None:
        if self.backend is None or not self.backend_started():  # constructed as the copies' template only
            return None
        timings = self.backend.timings
        return {
            **self.backend.describe(),
            "timings": {
                "up": round(timings.up, 3),
                "ready": round(timings.ready, 3),
                "fresh_scrape": round(timings.fresh_scrape, 3),
            },
            **({"failure": self.failure} if self.failure else {}),
        }

    def close(self) -> None:
        """Every copy cancelled, then the copies (removed with their data) and the main stack stopped in parallel."""
        with self._lock:
            copies = dict(self.copies)
            started = list(self._started.values())
        for copy in copies.values():
            copy.cancel()
        for future in started:
            with contextlib.suppress(BaseException):
                future.exception(timeout=60)  # a start gives up at its next poll once cancelled
        stoppers = [threading.Thread(target=self._stop, args=(copy, True)) for copy in copies.values()]
        if self.backend is not None and self.owned and self.backend_started():
            # Alongside the copies: a seal's last seconds are these downs.
            stoppers.append(threading.Thread(target=self._stop, args=(self.backend, False)))
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def backend_started(self) -> bool:
        return self.backend is not None and self.backend.started_at is not None

    def _stop(self, backend: StackBackend, remove_volumes: bool) -> None:
        try:
            backend.down(remove_volumes=remove_volumes)
        except SealgateError as exc:
            self.progress(f"stack: could not stop cleanly: {exc} — {backend.stop_by_hand()}")


@dataclass
class StageOutcome:
    stage: int
    status: Status
    results: list[CheckResult]
    evidence: Path
    duration_s: float
    stack: dict[str, Any] | None = field(default=None)
    reused: bool = False


@dataclass
class PendingStage:
    """A stage whose checks ran, or still run (concurrent ones), and whose evidence is not written yet."""

    stage: StageSpec
    recorder: StageRecorder
    started_wall: str
    started: float
    commit: str
    dirty: bool
    results: dict[str, CheckResult | None] = field(default_factory=dict)  # in spec order; None while running
    running: dict[str, Future[CheckResult]] = field(default_factory=dict)

    def done_results(self) -> dict[str, CheckResult]:
        return {k: v for k, v in self.results.items() if v is not None}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Runner:
    def __init__(
        self,
        root: Path,
        spec: Spec,
        options: RunOptions,
        stack: StackManager,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.root = root
        self.spec = spec
        self.options = options
        self.stack = stack
        self.progress = progress
        self.repo = Repo(root)
        self.store = EvidenceStore(root, spec.slug)
        self.outcomes: dict[int, StageOutcome] = {}
        self.pending: dict[int, PendingStage] = {}  # stages whose concurrent checks still run
        self.cancelled = threading.Event()
        self._executor: ThreadPoolExecutor | None = None

    def options_record(self) -> dict[str, Any]:
        """The options that change what a stage proves; evidence is reused only under the same ones."""
        record: dict[str, Any] = {"backend": self.options.backend, "no_drill": self.options.no_drill}
        if self.options.drill != "default":  # evidence made before `--drill` existed stays reusable
            record["drill"] = self.options.drill
        return record

    def run_stage(
        self,
        stage: StageSpec,
        only: set[str] | None = None,
        reused: ReusedStage | None = None,
        overlap: bool = False,
    ) -> StageOutcome | None:
        """Run the stage's checks in order (`only`: a subset, for tests) and write its evidence.

        `reused`: the engine decided its evidence on disk stands (evidence/reuse.py); it is taken as the outcome and
        nothing runs. With `overlap`, a concurrent check keeps running while later stages run: the stage is then
        pending (None is returned) until finish().
        """
        if reused is not None:
            outcome = StageOutcome(stage.number, reused.status, reused.results, reused.evidence, 0.0, None, True)
            self.outcomes[stage.number] = outcome
            shown = self.store.display(reused.evidence)
            self.progress(f"{self.spec.stage_label(stage.number)} ({stage.name}): reusing fresh evidence {shown}")
            return outcome
        recorder = StageRecorder(self.root, self.store.staging_dir(stage.number), f"eixo_{stage.number}")
        pending = PendingStage(stage, recorder, utc_now(), time.monotonic(), self.repo.head(), self.repo.is_dirty())
        for relative in self.spec.judged_files:
            recorder.subjects.add(relative)
        self.progress(f"{self.spec.stage_label(stage.number)} ({stage.name}): {stage.title}")
        blocked = self._blocked_by_stage_prerequisites(stage)
        for ref in stage.checks:
            if only is not None and ref.id not in only:
                continue
            if blocked:
                pending.results[ref.id] = CheckResult(ref.id, self.spec.check_title(ref.id), Status.ERRORED, blocked)
            elif ref.definition is not None and ref.definition.concurrent:
                pending.results[ref.id] = None
                pending.running[ref.id] = self._pool().submit(
                    self._run_check, stage, ref, pending.done_results(), recorder
                )
                self.progress(f"  started  {ref.id} (it runs on while the next {self.spec.stage_word}s run)")
                continue
            else:
                pending.results[ref.id] = self._run_check(stage, ref, pending.done_results(), recorder)
            self._report_check(stage.number, ref.id, pending.results[ref.id])
        if pending.running:
            self.pending[stage.number] = pending
            if not overlap:
                return self.finish(stage.number)
            return None
        return self._write_stage(pending)

    def finish(self, number: int | None = None) -> StageOutcome | None:
        """Wait for the concurrent checks of a pending stage (all pending stages, in order, when `number` is None)
        and write its evidence. Returns the outcome of stage `number`."""
        numbers = sorted(self.pending) if number is None else [number]
        outcome = None
        for each in numbers:
            pending = self.pending.get(each)
            if pending is None:
                continue
            for check_id, future in pending.running.items():
                pending.results[check_id] = future.result()  # still pending meanwhile: an interrupt names it
                self._report_check(each, check_id, pending.results[check_id], f"{self.spec.stage_label(each)}: ")
            del self.pending[each]
            outcome = self._write_stage(pending)
        return outcome if number is not None else None

    def cancel(self) -> None:
        """The run is stopping: concurrent checks end at their next ctx.sleep() (or when the stack copies they wait
        on are stopped); their stages write nothing. join() waits for them once the stack is closed."""
        self.cancelled.set()
        self.pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self) -> None:
        """No check thread outlives the run."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def prepare(self, stages: list[StageSpec]) -> None:
        """Call the `prepare` hook of every check of the stages this run will run (the engine leaves out those whose
        evidence is reused): a drill starts the stack copies it needs, in the background, while the first stage runs."""
        for stage in stages:
            for ref in stage.checks:
                if ref.definition is not None and ref.definition.prepare is not None:
                    ctx = self._context(stage, ref, StageRecorder(self.root, self.run_scratch, ""))
                    # A cause that stops the preparation stops the check too, which reports it when it runs.
                    with contextlib.suppress(CheckFailed, CheckErrored, CheckSkipped, SealgateError):
                        ref.definition.prepare(ctx)

    @property
    def run_scratch(self) -> Path:
        return self.stack.run_dir / "prepare"

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sealgate-check")
        return self._executor

    def _report_check(self, stage: int, check_id: str, result: CheckResult | None, prefix: str = "") -> None:
        """One line per check, as the judge sees it: a result its waiver accepts is said *waived*, with the waiver."""
        assert result is not None
        verdict = check_verdict(self.spec, check_id, stage, result)
        reason = verdict.reason  # what a waiver does not cover is said here too
        if verdict.verdict is Verdict.WAIVED and not verdict.covered:
            waived_by = "waived by " + ", ".join(w.source for w in verdict.waivers)
            reason = f"{result.reason}; {waived_by}" if result.reason else waived_by
        self.progress(f"  {prefix}{verdict.verdict.value:>7}  {check_id}" + (f" — {reason}" if reason else ""))

    def _write_stage(self, pending: PendingStage) -> StageOutcome:
        stage, recorder = pending.stage, pending.recorder
        results = [r for r in pending.results.values() if r is not None]
        status = Status.worst([r.status for r in results])
        finished_wall, duration = utc_now(), time.monotonic() - pending.started
        statement = Statement(
            sprint=self.spec.id,
            stage=StageInfo(stage.number, stage.name, stage.title),
            status=status,
            run=RunInfo(
                commit=pending.commit,
                dirty=pending.dirty,
                started_at=pending.started_wall,
                finished_at=finished_wall,
                duration_s=duration,
                backend=self.stack.backend.name if self.stack.backend_started() else None,
                stack=self.stack.describe(),
                host=socket.gethostname(),
                python=platform.python_version(),
                sealgate_version=__version__,
                tool_versions=recorder.tool_versions,
                options=self.options_record(),
            ),
            # What a check recorded (its facts, reasons, findings) is redacted before it becomes evidence.
            checks=[CheckResult.from_json(redact_value(r.to_json())) for r in results],
            subjects=[
                Subject(name, sha256_file(self.root / name))
                for name in sorted(recorder.subjects)
                if (self.root / name).is_file()
            ],
            commands=[c.to_json() for c in recorder.commands],
            attachments=dict(recorder.attachments),
            waits=[Wait(w["check"], w["what"], w["seconds"]) for w in recorder.waits],
        )
        document = statement.to_json()
        path = self.store.commit_stage(stage.number, document, recorder.attachments_dir)
        outcome = StageOutcome(stage.number, status, results, path, duration, self.stack.describe())
        self.outcomes[stage.number] = outcome
        verdict = worst([check_verdict(self.spec, r.check_id, stage.number, r).verdict for r in results])
        label, shown = self.spec.stage_label(stage.number), self.store.display(path)
        self.progress(f"{label}: {verdict.value} ({duration:.1f}s) → {shown}")
        return outcome

    def _blocked_by_stage_prerequisites(self, stage: StageSpec) -> str:
        for required in stage.requires:
            if required in self.pending:
                self.finish(required)
            outcome = self.outcomes.get(required)
            if outcome is None:
                return f"prerequisite {self.spec.stage_label(required)} was not run in this run"
            if outcome.status is not Status.PASSED:
                return f"prerequisite {self.spec.stage_label(required)} did not pass ({outcome.status.value})"
        return ""

    def _result_of(self, check_id: str) -> CheckResult | None:
        """A check's result in a stage this run already ran (or reused); a concurrent one is waited for."""
        for number, pending in list(self.pending.items()):
            if check_id in pending.running:
                self.finish(number)
        for outcome in self.outcomes.values():
            for result in outcome.results:
                if result.check_id == check_id:
                    return result
        return None

    def _context(self, stage: StageSpec, ref: CheckRef, recorder: StageRecorder) -> Context:
        definition, check_id = ref.definition, ref.id
        assert definition is not None
        run_dir = self.stack.run_dir / "checks" / check_id.replace("/", "__")
        run_dir.mkdir(parents=True, exist_ok=True)

        def stack_provider() -> StackBackend:
            if not definition.needs_stack:
                raise StackUnavailable(f"{check_id} did not declare needs_stack=True")
            return self.stack.get()

        def copy_provider(name: str, services: list[str] | None, wait: bool) -> StackBackend | None:
            if not definition.needs_stack:
                raise StackUnavailable(f"{check_id} did not declare needs_stack=True")
            if not wait:
                self.stack.start_copy(name, services)
                return None
            return self.stack.copy(name, services)

        return Context(
            spec=self.spec,
            stage=stage.number,
            check_id=check_id,
            params=ref.params,
            recorder=recorder,
            options=self.options,
            stack_provider=stack_provider,
            run_dir=run_dir,
            copy_provider=copy_provider,
            cancelled=self.cancelled,
        )

    def _run_check(
        self,
        stage: StageSpec,
        ref: CheckRef,
        earlier: dict[str, CheckResult],
        recorder: StageRecorder,
    ) -> CheckResult:
        definition, check_id = ref.definition, ref.id
        if definition is None:
            return CheckResult(check_id, self.spec.check_title(check_id), Status.ERRORED, "check not implemented")
        # The title this sprint's report shows: the spec's, else the library's in the report's language.
        title = self.spec.check_title(check_id, definition.title)
        for required in definition.requires:
            previous = earlier.get(required) or self._result_of(required)
            if previous is None or not satisfies_requirement(self.spec, required, previous):
                why = previous.status.value if previous else "not run before it in this run"
                return CheckResult(check_id, title, Status.ERRORED, f"prerequisite {required} did not pass ({why})")
        ctx = self._context(stage, ref, recorder)
        source = Path(inspect.getsourcefile(definition.func) or "").resolve()
        if source.is_file() and source.is_relative_to(self.root.resolve()):
            recorder.subjects.add(source.relative_to(self.root.resolve()).as_posix())  # the judge is judged too
        status, reason = Status.PASSED, ""
        started = time.monotonic()
        try:
            if definition.needs_stack:
                self.stack.get()  # the stack's start is recorded as its own wait, not as the check's time
                started = time.monotonic()
            definition.func(ctx)
            errors = [f for f in ctx.findings if f.severity is Severity.ERROR]
            if errors:
                status = Status.FAILED
                reason = str(errors[0]) + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
        except CheckFailed as exc:
            status, reason = Status.FAILED, str(exc)
        except CheckErrored as exc:
            status, reason = Status.ERRORED, str(exc)
        except CheckSkipped as exc:
            status, reason = Status.SKIPPED, str(exc)
        except StackUnavailable as exc:
            status, reason = Status.ERRORED, str(exc)
        except ServiceNotRunning as exc:
            # An optional service the backend left out because it cannot run here (stack description `optional:
            # true`): what needs it is skipped with the reason, as the description's schema promises.
            status, reason = (Status.SKIPPED if exc.optional else Status.ERRORED), str(exc)
        except SealgateError as exc:
            status, reason = Status.ERRORED, str(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            status = Status.ERRORED
            reason = unreachable_reason(exc) or crash_reason(exc)
        return CheckResult(
            check_id,
            title,
            status,
            reason,
            list(ctx.findings),
            dict(ctx.data),
            time.monotonic() - started,
            [w.to_json() for w in ctx.waivers],
        )


def unreachable_reason(exc: BaseException) -> str | None:
    """A part of the stack that stopped answering is a fault of the environment, not a bug of the check: say which
    part and what to do. None for anything else."""
    import requests

    if not isinstance(exc, requests.RequestException):
        try:
            import docker.errors
        except ImportError:
            return None
        if isinstance(exc, docker.errors.DockerException):
            return f"the Docker engine refused or failed: {exc}"
        return None
    url = exc.request.url if exc.request is not None else ""
    cause = str(exc.args[0] if exc.args else exc)
    if str(url).startswith("http+docker://"):
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return f"the Docker engine stopped answering ({where}): {cause}; is dockerd running? (`docker info`)"
    method = exc.request.method if exc.request is not None else "GET"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"{method} {url} answered HTTP {exc.response.status_code}: {exc.response.text[:200]}"
    kind = "did not answer in time" if isinstance(exc, requests.Timeout) else "did not answer"
    return f"{method} {url} {kind}: {cause}"


def crash_reason(exc: BaseException) -> str:
    """A bug in the check: "could not run", with where it broke."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"check crashed: {type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"
