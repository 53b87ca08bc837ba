"""Runs stages: each check of a stage in order, against the stack when it asks for one, then writes the stage's
evidence. A stage never stops the run: `seal` runs every stage it can and reports all of them.
"""

from __future__ import annotations

import datetime
import inspect
import os
import platform
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealgate import __version__
from sealgate.errors import SealgateError
from sealgate.evidence.judge import check_verdict
from sealgate.evidence.redact import redact_value
from sealgate.evidence.store import STATEMENT_TYPE, EvidenceStore, freshness, predicate_type, working_tree_digests
from sealgate.fsutil import sha256_file
from sealgate.gitrepo import Repo
from sealgate.sprint.context import (
    CheckErrored,
    CheckFailed,
    CheckSkipped,
    Context,
    RunOptions,
    StageRecorder,
)
from sealgate.sprint.model import CheckResult, Severity, Status
from sealgate.sprint.spec import Spec, StageSpec

if TYPE_CHECKING:  # the backends import docker & co.; runs that never start the stack do not pay for it
    from sealgate.stack.backends.base import StackBackend


class StackUnavailable(Exception):
    """The stack could not be brought up; checks that need it are errored with this reason."""


@dataclass
class StackManager:
    """Brings the stack up on first demand, once per run, and down at the end (keeping data)."""

    root: Path
    backend_name: str
    run_dir: Path
    progress: Callable[[str], None] = print
    backend: StackBackend | None = None
    failure: str | None = None
    factory: Callable[..., StackBackend] | None = None
    owned: bool = True  # False: a stack someone else brought up (tests' session fixtures); never stopped here

    def get(self) -> StackBackend:
        if self.failure:
            raise StackUnavailable(self.failure)
        if self.backend is None:
            from sealgate.stack.backends import select_backend

            factory = self.factory or select_backend
            try:
                backend = factory(self.backend_name, self.root, self.run_dir, progress=self.progress)
                self.backend = backend
                backend.up()
            except SealgateError as exc:
                self.failure = f"stack could not start ({self.backend_name}): {exc}"
                raise StackUnavailable(self.failure) from None
        return self.backend

    def describe(self) -> dict[str, Any] | None:
        if self.backend is None:
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
        if self.backend is not None and self.owned:
            try:
                self.backend.down(remove_volumes=False)
            except SealgateError as exc:
                self.progress(f"stack: could not stop cleanly: {exc} — {self.backend.stop_by_hand()}")


@dataclass
class StageOutcome:
    stage: int
    status: Status
    results: list[CheckResult]
    evidence: Path
    duration_s: float
    stack: dict[str, Any] | None = field(default=None)
    reused: bool = False


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

    def options_record(self) -> dict[str, Any]:
        """The options that change what a stage proves; evidence is reused only under the same ones."""
        return {"backend": self.options.backend, "no_drill": self.options.no_drill}

    def reusable(self, stage: StageSpec) -> StageOutcome | None:
        """The stage's evidence on disk, when it can stand for a re-run: valid, passed or waived, made at HEAD with
        every judged file (including the checks' own code) unchanged, under the same options, for the same checks."""
        try:
            document = self.store.read_stage(stage.number)
            manifest, _ = self.store.read_manifest()
        except SealgateError:
            return None
        predicate = predicate_of(document)
        path = self.store.stage_path(stage.number)
        display = self.store.display(path)
        listed = {entry["name"]: entry["sha256"] for entry in manifest["files"]}
        if listed.get(path.name) != sha256_file(path):
            self.progress(f"EIXO {stage.number}: {display} does not match the manifest (edited?): re-running the stage")
            return None
        if (
            predicate["run"].get("options") != self.options_record()
            or [c["id"] for c in predicate["checks"]] != [ref.id for ref in stage.checks]
            or not freshness(document, self.repo.head(), display, working_tree_digests(self.root))
        ):
            return None
        results = [CheckResult.from_json(c) for c in predicate["checks"]]
        # Only a stage the judge would let through (every check passed, or waived by the spec as it is now): a
        # failure is always re-run, and a skip only stands when a waiver still accepts it.
        if not all(check_verdict(self.spec, r.check_id, stage.number, r).verdict.ok for r in results):
            return None
        status = Status(predicate["status"])
        return StageOutcome(stage.number, status, results, self.store.stage_path(stage.number), 0.0, None, True)

    def run_stage(self, stage: StageSpec, only: set[str] | None = None, reuse: bool = False) -> StageOutcome:
        """Run the stage's checks in order (`only`: a subset, for tests) and write its evidence.

        With `reuse`, valid evidence of an unchanged stage stands instead of a re-run (a re-seal costs almost
        nothing); any change to a file the stage judged re-runs exactly that stage.
        """
        # Preflight judges the environment (ports, tools, tags, a standalone Prometheus), not files: its facts are
        # volatile and cheap to measure, so its evidence is never reused.
        if reuse and only is None and stage.name != "preflight":
            reused = self.reusable(stage)
            if reused is not None:
                self.outcomes[stage.number] = reused
                self.progress(
                    f"EIXO {stage.number} ({stage.name}): reusing fresh evidence {self.store.display(reused.evidence)}"
                )
                return reused
        started_wall, started = utc_now(), time.monotonic()
        commit, dirty = self.repo.head(), self.repo.is_dirty()
        staging = self.store.staging_dir(stage.number)
        recorder = StageRecorder(self.root, staging, f"eixo_{stage.number}")
        for relative in self.spec.judged_files:
            recorder.subjects.add(relative)
        self.progress(f"EIXO {stage.number} ({stage.name}): {stage.title}")
        results: dict[str, CheckResult] = {}
        blocked = self._blocked_by_stage_prerequisites(stage)
        for ref in stage.checks:
            if only is not None and ref.id not in only:
                continue
            if blocked:
                result = CheckResult(
                    ref.id, ref.definition.title if ref.definition else ref.id, Status.ERRORED, blocked
                )
            else:
                result = self._run_check(stage, ref.id, ref.params, results, recorder)
            results[ref.id] = result
            self.progress(f"  {result.status.value:>7}  {ref.id}" + (f" — {result.reason}" if result.reason else ""))
        status = Status.worst([r.status for r in results.values()])
        finished_wall, duration = utc_now(), time.monotonic() - started
        document = {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": name, "digest": {"sha256": sha256_file(self.root / name)}}
                for name in sorted(recorder.subjects)
                if (self.root / name).is_file()
            ],
            "predicateType": predicate_type(stage.number, stage.name),
            "predicate": {
                "sprint": self.spec.id,
                "stage": {"number": stage.number, "name": stage.name, "title": stage.title},
                "status": status.value,
                "run": {
                    "commit": commit,
                    "dirty": dirty,
                    "started_at": started_wall,
                    "finished_at": finished_wall,
                    "duration_s": round(duration, 3),
                    "backend": self.stack.backend.name if self.stack.backend else None,
                    "stack": self.stack.describe(),
                    "host": socket.gethostname(),
                    "python": platform.python_version(),
                    "sealgate_version": __version__,
                    "tool_versions": dict(sorted(recorder.tool_versions.items())),
                    "options": self.options_record(),
                },
                "checks": [redact_value(r.to_json()) for r in results.values()],
                "commands": [c.to_json() for c in recorder.commands],
                "attachments": [
                    {"name": name, "digest": {"sha256": digest}}
                    for name, digest in sorted(recorder.attachments.items())
                ],
                "waits": recorder.waits,
            },
        }
        path = self.store.commit_stage(stage.number, document, staging)
        outcome = StageOutcome(stage.number, status, list(results.values()), path, duration, self.stack.describe())
        self.outcomes[stage.number] = outcome
        self.progress(f"EIXO {stage.number}: {status.value} ({duration:.1f}s) → {self.store.display(path)}")
        return outcome

    def _blocked_by_stage_prerequisites(self, stage: StageSpec) -> str:
        for required in stage.requires:
            outcome = self.outcomes.get(required)
            if outcome is None:
                return f"prerequisite EIXO {required} was not run in this run"
            if outcome.status is not Status.PASSED:
                return f"prerequisite EIXO {required} did not pass ({outcome.status.value})"
        return ""

    def _run_check(
        self,
        stage: StageSpec,
        check_id: str,
        params: dict[str, Any],
        earlier: dict[str, CheckResult],
        recorder: StageRecorder,
    ) -> CheckResult:
        from sealgate.sprint.registry import REGISTRY

        definition = REGISTRY.get(check_id)
        if definition is None:
            return CheckResult(check_id, check_id, Status.ERRORED, "check not implemented")
        for required in definition.requires:
            previous = earlier.get(required)
            if previous is None or previous.status is not Status.PASSED:
                why = previous.status.value if previous else "not run in this stage"
                return CheckResult(
                    check_id, definition.title, Status.ERRORED, f"prerequisite {required} did not pass ({why})"
                )
        run_dir = self.stack.run_dir / "checks" / check_id.replace("/", "__")
        run_dir.mkdir(parents=True, exist_ok=True)

        def stack_provider() -> StackBackend:
            if not definition.needs_stack:
                raise StackUnavailable(f"{check_id} did not declare needs_stack=True")
            return self.stack.get()

        ctx = Context(
            spec=self.spec,
            stage=stage.number,
            check_id=check_id,
            params=params,
            recorder=recorder,
            options=self.options,
            stack_provider=stack_provider,
            run_dir=run_dir,
        )
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
        except SealgateError as exc:
            status, reason = Status.ERRORED, str(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            status = Status.ERRORED
            reason = unreachable_reason(exc) or crash_reason(exc)
        return CheckResult(
            check_id,
            definition.title,
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


def predicate_of(document: dict[str, Any]) -> dict[str, Any]:
    return document["predicate"]
