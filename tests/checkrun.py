"""Run some checks of one stage of a sprint in a repository, the way the engine does, and return their results.

For check tests: break something in a `project_copy`, run the check, assert on its status and findings. Pass a
running stack from the session fixtures (`compose_stack`, `local_stack`) so each test does not start its own; it is
never stopped here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import PROJECT_ROOT

from sealgate.api.context import RunOptions
from sealgate.evidence.store import EvidenceStore
from sealgate.model.results import CheckResult
from sealgate.run.plan import open_spec
from sealgate.run.runner import Runner, StackManager


def run_checks(
    root: Path,
    stage: int,
    only: list[str] | None = None,
    *,
    stack: Any = None,
    options: RunOptions | None = None,
    sprint: str = "F9.10",
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, CheckResult]:
    return run_stages(root, {stage: only}, stack=stack, options=options, sprint=sprint, progress=progress)


def run_stages(
    root: Path,
    stages: dict[int, list[str] | None],
    *,
    stack: Any = None,
    options: RunOptions | None = None,
    sprint: str = "F9.10",
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, CheckResult]:
    """Some checks of several stages, in order, in one run: a check may require one of an earlier stage."""
    spec = open_spec(root, sprint)
    options = options or RunOptions(backend=stack.name if stack is not None else "local")
    manager = StackManager(root, options.backend, root / ".sealgate" / spec.slug, owned=stack is None)
    manager.backend = stack
    runner = Runner(root, spec, options, manager, progress=progress)
    if root.resolve() == PROJECT_ROOT.resolve():
        # Never overwrite the developer's own evidence (artifacts/) with a test's partial stage.
        runner.store = EvidenceStore(Path(tempfile.mkdtemp(prefix="sealgate-checkrun-")), spec.slug)
    results: dict[str, CheckResult] = {}
    try:
        for stage, only in stages.items():
            outcome = runner.run_stage(spec.stages[stage], only=set(only) if only else None)
            results.update({r.check_id: r for r in outcome.results})
    finally:
        manager.close()
    return results


def explain(result: CheckResult) -> str:
    """A result in one line, for assertion messages."""
    return f"{result.status.value}: {result.reason} {[str(f) for f in result.findings]}"
