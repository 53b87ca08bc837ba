"""The verbs (seal, eixo, report, verify): spec → run → evidence → criteria → report → tag, one way.

Nox sessions and the `sealgate` console script are both thin wrappers around these functions.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import fcntl
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import git

from sealgate.api.context import RunOptions
from sealgate.evidence import integrity, signing
from sealgate.evidence.judge import Judgement, judge
from sealgate.evidence.reuse import reusable
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import EXIT_OK, EXIT_REFUSED, InputError, Interrupted, Problem, SealgateError
from sealgate.kernel.fsutil import STATE_DIR, atomic_write
from sealgate.kernel.gitrepo import Repo
from sealgate.reports.ci_outputs import write_ci_outputs
from sealgate.reports.render import SealOutcome, build_view, render, report_path, write_report
from sealgate.run.plan import open_spec
from sealgate.run.runner import Runner, StackManager
from sealgate.seal import commit as sealcommit
from sealgate.seal import lifecycle
from sealgate.seal import publish as publishing
from sealgate.seal import tag as tagging
from sealgate.seal.verify import verify as verify_seal
from sealgate.seal.vsa import write_summary
from sealgate.sprint import seals
from sealgate.sprint.model import Spec

Printer = Callable[[str], None]


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
    return repo, open_spec(repo.root, sprint)


def check_backend(name: str) -> None:
    """Refuse a backend no installed distribution provides — before anything runs or is written (a run would
    otherwise judge the static checks, overwrite the stage's evidence and only then fail to start the stack)."""
    from sealgate.backends import available_backends, requested_backend

    requested = requested_backend(name)
    known = sorted(available_backends())
    if requested == "auto" or requested in known:
        return
    # The command line's default is the environment's value (and `auto` defers to it): name where it came from.
    from_environment = name.strip().lower() in ("", "auto", os.environ.get("SEALGATE_BACKEND", "").strip().lower())
    option = "SEALGATE_BACKEND" if from_environment else "--backend"
    close = difflib.get_close_matches(requested, known, n=1)
    hint = (f"did you mean {close[0]!r}? " if close else "") + f"choose one of auto, {', '.join(known)}"
    raise InputError(Problem(option, f"unknown backend {requested!r}", hint))


def _check_stage(root: Path, spec: Spec, number: int) -> None:
    """A stage number the spec does not declare is bad input, said at the spec's `stages:` line."""
    if number in spec.stages:
        return
    from sealgate.sprint.spec import read_spec

    where = read_spec(root, spec.id).doc.where(["stages"])
    declared = ", ".join(map(str, spec.stages))
    first = next(iter(spec.stages))
    raise InputError(
        Problem(
            where,
            f"sprint {spec.id} declares no {spec.stage_word} {number}",
            f"it declares {spec.stage_word} {declared}: run one of them, e.g. `sealgate eixo {first}`",
        )
    )


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
        stack = StackManager(
            repo.root, options.backend, run_dir, progress=out, factory=stack_factory, description=spec.stack
        )
        runner = Runner(repo.root, spec, options, stack, progress=out)
        # The plan: which stages' evidence stands (decided here, from evidence and the judge), which run.
        head = repo.head()
        reused = {
            n: found
            for n in (numbers if reuse else [])
            if (found := reusable(repo.root, spec, runner.store, spec.stages[n], runner.options_record(), head, out))
        }
        current = None
        try:
            runner.prepare([spec.stages[n] for n in numbers if n not in reused])
            for number in numbers:
                current = number
                runner.run_stage(spec.stages[number], reused=reused.get(number), overlap=True)
            current = None
            runner.finish()  # concurrent checks (drills) that outlived their stage
        except (KeyboardInterrupt, Interrupted) as exc:
            # The interrupted stage, and any whose concurrent check still ran, wrote nothing (evidence is written
            # atomically when a stage ends); say which they were.
            running = [f"{spec.stage_label(n)} ({spec.stages[n].name})" for n in sorted(runner.pending)]
            where = [f"{spec.stage_label(current)} ({spec.stages[current].name})"] if current is not None else []
            exc.args = ("during " + " with ".join([*where, *running]) if where or running else "",)
            runner.cancel()
            raise
        finally:
            stack.close()
            runner.join()
        integrity.finalize(repo.root, spec, repo.head(), numbers, sign=options.sign)  # envelopes, manifest, keys


def seal(
    root: Path,
    sprint: str | None,
    options: RunOptions,
    out: Printer = print,
    stack_factory: Callable[..., Any] | None = None,
) -> int:
    if stack_factory is None:  # a factory given (tests) replaces the backends altogether
        check_backend(options.backend)
    # A sprint already sealed on HEAD's history is never run again (said, and re-verified when named); without
    # --sprint the newest *open* sprint is the one sealed.
    picked = lifecycle.pick_for_seal(Repo(root), sprint, out, lambda tag, sid: _reverify(root, tag, sid, out))
    if isinstance(picked, int):
        return picked
    repo, spec = _open(root, picked)
    head = repo.head()
    if options.sign:
        signing.signer_for(repo)  # a missing signing setting is said now, not after the stages ran
    _run_stages(repo, spec, list(spec.stages), options, out, stack_factory, reuse=not options.force)
    judgement, digest = _judge_disk(repo, spec, head)
    assert digest is not None  # _run_stages just wrote the manifest
    _say_stale(judgement, out)
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
        # The seal commit's copy of the report names the evidence beside it, in seals/<ID>/.
        sealed_text = _render_report(repo, judgement, head, outcome, digest, seals.seal_folder(spec.id))
        try:  # the seal commit (evidence + report in git objects), the tag on it, the branch fast-forwarded
            for line in sealcommit.create(repo, judgement, head, digest, base, sealed_text, options.sign):
                out(line)
        except (git.GitCommandError, SealgateError) as exc:
            why = exc.stderr.strip() if isinstance(exc, git.GitCommandError) else str(exc)
            outcome, code = SealOutcome("refused", spec.tag, [f"the seal could not be made: {why}"]), EXIT_REFUSED
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
    if stack_factory is None:
        check_backend(options.backend)
    repo, spec = _open(root, sprint)
    _check_stage(repo.root, spec, number)
    _run_stages(repo, spec, [number], options, out, stack_factory)
    judgement = judge(spec, repo.root, repo.head(), stages=[number])
    verdict = judgement.stages[number]
    for cv in verdict.checks:
        for waiver in cv.waivers:
            out(f"  waived   {cv.check_id}: {waiver.target_kind} {waiver.target} — {waiver.justification}")
    _say_stale(judgement, out)
    out(f"{spec.stage_label(number)} verdict: {verdict.verdict.value}")
    return EXIT_OK if verdict.verdict.ok else EXIT_REFUSED


def report(root: Path, sprint: str | None, out: Printer = print) -> int:
    repo, spec = _open(root, sprint)
    sealed = lifecycle.sealed_report(repo, spec.id)
    if sealed is not None:  # the report of record is the one in the seal commit
        text, where = sealed
        atomic_write(report_path(repo.root, spec.id), text)
        out(f"report: {report_path(repo.root, spec.id).relative_to(repo.root)} (the sealed report, from {where})")
        return EXIT_OK
    head = repo.head()
    judgement, digest = _judge_disk(repo, spec, head)
    _write_report(repo, judgement, head, SealOutcome("pending", spec.tag), digest, out)
    return EXIT_OK


def init(root: Path, sprint_id: str, compose: str | None, out: Printer = print, example: str | None = None) -> int:
    from sealgate import scaffold

    done = scaffold.init(root.resolve(), sprint_id, compose, example)
    for name in done.written:
        out(f"wrote {name}")
    for note in done.notes:
        out(f"note: {note}")
    # What the written spec still needs (an example's paths are its own layout): said now, at its lines, rather
    # than by the first run.
    try:
        open_spec(root.resolve(), sprint_id)
    except InputError as exc:
        for problem in exc.problems:
            out(f"todo: {problem}")
    reviewed = "the stack description and " if done.stack_path else ""
    out(f"next: review {reviewed}sprint/{sprint_id}.yaml, then `nox -s seal` (or `sealgate seal`)")
    return EXIT_OK


def verify(
    root: Path,
    tag_name: str,
    sprint: str | None,
    out: Printer = print,
    today: datetime.date | None = None,
    vsa: Path | None = None,
    sign: bool = False,
) -> int:
    """From git objects alone (the tag, its seal commit, the judged commit), then the chain of bases: 0, 1 or 3.
    `vsa`: also write what it concluded there as a SLSA Verification Summary (`sign`: in a signed DSSE envelope)."""
    if sign and vsa is None:
        raise InputError(Problem("--sign", "signs the verification summary: give --vsa FILE too"))
    if vsa is not None:
        return write_summary(root, tag_name, sprint, vsa, sign=sign, report=out, today=today)
    return verify_seal(root, tag_name, sprint, report=out, today=today)


def _reverify(root: Path, tag_name: str, sprint: str, out: Printer) -> int:
    code = verify(root, tag_name, sprint, out)
    if code == EXIT_OK:
        out(f"already sealed: {tag_name} (verified)")
    return code


def status(root: Path, out: Printer = print, verify: bool = True, today: datetime.date | None = None) -> int:
    return lifecycle.status(Repo(root), out, verify=verify, today=today)


def publish(root: Path, remote: str = "origin", out: Printer = print) -> int:
    return publishing.publish(Repo(root), remote, out)


def new(root: Path, sprint: str, out: Printer = print) -> int:
    lifecycle.new_sprint(Repo(root), sprint, out)
    return EXIT_OK


def diff(
    root: Path,
    a: str,
    b: str | None,
    open_sprint: bool = False,
    sprint: str | None = None,
    fmt: str = "text",
    out: Printer = print,
) -> int:
    """`sealgate diff A [B]`: seal A against seal B, or against the open sprint's evidence (B omitted or --open).
    Always 0 when both sides can be read: a diff is information, not a verdict."""
    import json

    from sealgate.seal import diff as diffing

    if b is not None and open_sprint:
        raise InputError(Problem("diff", f"B ({b}) and --open both name the later side", "give one of them"))
    if b is not None and sprint:
        raise InputError(Problem("diff --sprint", "names the open sprint, but B is a seal", "drop --sprint or B"))
    result = diffing.diff(Repo(root), a, b, sprint)
    if fmt == "json":
        out(json.dumps(result.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        for line in diffing.text_lines(result):
            out(line)
    return EXIT_OK


def _say_stale(judgement: Judgement, out: Printer) -> None:
    for stale in judgement.stale:
        out(f"stale: {stale} — remove it")


def _judge_disk(repo: Repo, spec: Spec, head: str) -> tuple[Judgement, str | None]:
    store = EvidenceStore(repo.root, spec.slug)
    try:
        manifest, digest = store.read_manifest()
        problems = store.manifest_problems(manifest, spec.stages)
    except SealgateError:
        digest, problems = None, []
    judgement = judge(spec, repo.root, head)
    if problems:  # evidence edited after the run: nothing on disk can be trusted for a seal
        for stage in judgement.stages.values():
            stage.problems = problems + stage.problems
        raise SealgateError(*problems)
    return judgement, digest


def _render_report(
    repo: Repo,
    judgement: Judgement,
    head: str,
    outcome: SealOutcome,
    digest: str | None,
    evidence_folder: str | None = None,
) -> str:
    spec = judgement.spec
    base = tagging.base_facts(repo, judgement, head)
    view = build_view(
        judgement,
        repo.root,
        operator=repo.operator(),
        branch=repo.current_branch() or "HEAD (detached)",
        declared_branch=str(spec.raw.get("branch", "")),
        dirty=repo.is_dirty(),
        base=base,
        outcome=outcome,
        manifest_digest=digest,
        evidence_folder=evidence_folder,
    )
    return render(view)


def _write_report(
    repo: Repo, judgement: Judgement, head: str, outcome: SealOutcome, digest: str | None, out: Printer
) -> None:
    text = _render_report(repo, judgement, head, outcome, digest)
    out(f"report: {write_report(repo.root, judgement.spec.id, text).relative_to(repo.root)}")
    write_ci_outputs(repo.root, judgement)
