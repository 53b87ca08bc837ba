"""The verbs (seal, eixo, report, verify): spec → run → evidence → criteria → report → tag, one way.

Nox sessions and the `sealgate` console script are both thin wrappers around these functions.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import git

from sealgate.errors import EXIT_OK, EXIT_REFUSED, SealgateError, SealRefused
from sealgate.evidence.judge import Judgement, judge
from sealgate.evidence.store import EvidenceStore
from sealgate.gitrepo import Repo
from sealgate.reports import tag as tagging
from sealgate.reports.ci_outputs import write_ci_outputs
from sealgate.reports.render import SealOutcome, build_view, render, write_report
from sealgate.reports.verify import verify as verify_tag
from sealgate.sprint.context import RunOptions
from sealgate.sprint.runner import Runner, StackManager
from sealgate.sprint.spec import Spec, load_spec

STATE_DIR = ".sealgate"

Printer = Callable[[str], None]


class Interrupted(BaseException):
    """SIGTERM during a run: unwinds like KeyboardInterrupt so the stack is stopped and no tag is made."""

    exit_code = 143


@contextlib.contextmanager
def _run_guard(root: Path, slug: str) -> Iterator[Path]:
    """One run per checkout at a time (a lock), and SIGTERM turned into a clean unwind."""
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    lock_file = open(state / "lock", "a+")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise SealgateError(
            f"{STATE_DIR}/lock: another sealgate run is using this checkout (pid {holder}); wait for it to finish"
        ) from None
    lock_file.truncate(0)
    lock_file.write(str(os.getpid()))
    lock_file.flush()

    def on_term(signum: int, frame: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield state / slug
    finally:
        signal.signal(signal.SIGTERM, previous)
        fcntl.flock(lock_file, fcntl.LOCK_UN)
        lock_file.close()


def _open(root: Path, sprint: str | None) -> tuple[Repo, Spec]:
    repo = Repo(root)
    return repo, load_spec(repo.root, sprint)


def _run_stages(
    repo: Repo,
    spec: Spec,
    numbers: list[int],
    options: RunOptions,
    out: Printer,
    stack_factory: Callable[..., Any] | None = None,
    reuse: bool = False,
) -> None:
    with _run_guard(repo.root, spec.slug) as run_dir:
        stack = StackManager(repo.root, options.backend, run_dir, progress=out, factory=stack_factory)
        runner = Runner(repo.root, spec, options, stack, progress=out)
        current = None
        try:
            for number in numbers:
                current = number
                runner.run_stage(spec.stages[number], reuse=reuse)
        except (KeyboardInterrupt, Interrupted) as exc:
            # The interrupted stage wrote nothing (its evidence is written atomically at its end); say which it was.
            exc.args = (f"during EIXO {current} ({spec.stages[current].name})" if current is not None else "",)
            raise
        finally:
            stack.close()
        EvidenceStore(repo.root, spec.slug).write_manifest(spec.id, repo.head())


def seal(
    root: Path,
    sprint: str | None,
    options: RunOptions,
    out: Printer = print,
    stack_factory: Callable[..., Any] | None = None,
) -> int:
    repo, spec = _open(root, sprint)
    head = repo.head()
    existing = repo.tag(spec.tag)
    if existing is not None and existing.commit == head:
        # HEAD is already sealed: the tag is never moved, so only the evidence on disk matters. Identical → done;
        # anything else (edited, deleted, re-run evidence) is refused, naming what differs.
        try:
            judgement, digest = _judge_disk(repo, spec, head)
        except SealgateError as exc:
            raise SealRefused(
                *exc.problems, f"{spec.tag} already seals {head[:12]}: its evidence must not change"
            ) from None
        if tagging.parse_message(existing.message).get("manifest-sha256") != digest or not judgement.all_ok:
            raise SealRefused(f"{spec.tag} already seals {head[:12]} with other evidence than artifacts/{spec.slug}/")
        _write_report(repo, judgement, head, SealOutcome("already", spec.tag), digest, out)
        out(f"already sealed: {spec.tag} at {head[:12]} with identical evidence")
        return EXIT_OK
    _run_stages(repo, spec, list(spec.stages), options, out, stack_factory, reuse=not options.force)
    judgement, digest = _judge_disk(repo, spec, head)
    assert digest is not None  # _run_stages just wrote the manifest
    base = tagging.base_facts(repo, judgement, head)
    decision = tagging.decide(repo, judgement, head, base, digest)
    if options.no_tag:
        outcome = SealOutcome("not_requested", spec.tag, [] if judgement.all_ok else decision.reasons)
        code = EXIT_OK if judgement.all_ok else EXIT_REFUSED
    elif decision.already_sealed:
        outcome, code = SealOutcome("already", spec.tag), EXIT_OK
    elif decision.allowed:
        outcome, code = SealOutcome("created", spec.tag), EXIT_OK
    else:
        outcome, code = SealOutcome("refused", spec.tag, decision.reasons), EXIT_REFUSED
    report_text = _render_report(repo, judgement, head, outcome, digest)  # a template error must not follow a tag
    if outcome.kind == "created":
        try:
            repo.create_tag(spec.tag, tagging.message(judgement, head, digest, base), sign=options.sign)
        except git.GitCommandError as exc:
            outcome, code = SealOutcome("refused", spec.tag, [f"git tag failed: {exc.stderr.strip()}"]), EXIT_REFUSED
            report_text = _render_report(repo, judgement, head, outcome, digest)
    out(f"report: {write_report(repo.root, spec.id, report_text).relative_to(repo.root)}")
    write_ci_outputs(repo.root, judgement)
    if code == EXIT_OK:
        out(f"SEALED {spec.tag}" if outcome.kind in ("created", "already") else "all criteria pass (no tag requested)")
    else:
        out(f"NOT SEALED: {len(outcome.reasons)} reason(s)")
        for reason in outcome.reasons:
            out(f"  - {reason}")
    return code


def eixo(
    root: Path,
    sprint: str | None,
    number: int,
    options: RunOptions,
    out: Printer = print,
    stack_factory: Callable[..., Any] | None = None,
) -> int:
    repo, spec = _open(root, sprint)
    if number not in spec.stages:
        raise SealgateError(
            f"{spec.relpath}: sprint {spec.id} declares no EIXO {number} (it has {sorted(spec.stages)})"
        )
    _run_stages(repo, spec, [number], options, out, stack_factory)
    verdict = judge(spec, repo.root, repo.head(), stages=[number]).stages[number]
    for cv in verdict.checks:
        for waiver in cv.waivers:
            out(f"  waived   {cv.check_id}: {waiver.target_kind} {waiver.target} — {waiver.justification}")
    out(f"EIXO {number} verdict: {verdict.verdict.value}")
    return EXIT_OK if verdict.verdict.ok else EXIT_REFUSED


def report(root: Path, sprint: str | None, out: Printer = print) -> int:
    repo, spec = _open(root, sprint)
    head = repo.head()
    judgement, digest = _judge_disk(repo, spec, head)
    existing = repo.tag(spec.tag)
    sealed = (
        existing is not None
        and existing.commit == head
        and digest is not None
        and tagging.parse_message(existing.message).get("manifest-sha256") == digest
    )
    _write_report(repo, judgement, head, SealOutcome("already" if sealed else "pending", spec.tag), digest, out)
    return EXIT_OK


def verify(root: Path, tag_name: str, sprint: str | None, out: Printer = print) -> int:
    repo = Repo(root)
    ok = verify_tag(repo.root, tag_name, sprint, report=out)
    out(f"verify {tag_name}: {'OK' if ok else 'FAILED'}")
    return EXIT_OK if ok else EXIT_REFUSED


def _judge_disk(repo: Repo, spec: Spec, head: str) -> tuple[Judgement, str | None]:
    store = EvidenceStore(repo.root, spec.slug)
    try:
        manifest, digest = store.read_manifest()
        problems = store.manifest_problems(manifest)
    except SealgateError:
        digest, problems = None, []
    judgement = judge(spec, repo.root, head)
    if problems:  # evidence edited after the run: nothing on disk can be trusted for a seal
        for stage in judgement.stages.values():
            stage.problems = problems + stage.problems
        raise SealgateError(*problems)
    return judgement, digest


def _render_report(repo: Repo, judgement: Judgement, head: str, outcome: SealOutcome, digest: str | None) -> str:
    spec = judgement.spec
    base = tagging.base_facts(repo, judgement, head)
    view = build_view(
        judgement,
        repo.root,
        operator=repo.operator(),
        branch=spec.raw.get("branch", ""),
        dirty=repo.is_dirty(),
        base=base,
        outcome=outcome,
        manifest_digest=digest,
    )
    return render(view)


def _write_report(
    repo: Repo, judgement: Judgement, head: str, outcome: SealOutcome, digest: str | None, out: Printer
) -> None:
    text = _render_report(repo, judgement, head, outcome, digest)
    out(f"report: {write_report(repo.root, judgement.spec.id, text).relative_to(repo.root)}")
    write_ci_outputs(repo.root, judgement)


def main_guard(func: Callable[[], int]) -> int:
    """Run a verb: user mistakes become one clear line and a non-zero exit, never a traceback."""
    try:
        return func()
    except SealgateError as exc:
        for problem in exc.problems:
            print(f"sealgate: {problem}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"sealgate: interrupted (SIGINT) {_where(exc)}: stack stopped, no tag created", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"sealgate: interrupted (SIGTERM) {_where(exc)}: stack stopped, no tag created", file=sys.stderr)
        return 143


def _where(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args and exc.args[0] else "before any stage ran"
