"""Whether a stage's evidence on disk can stand for a re-run: the decision a re-seal makes before running anything.

It belongs to the engine's plan (spec → which stages run → run), not to the runner: the runner runs what it is told
and never judges. Evidence stands only when it is valid, was written by this checkout (its envelope or keyed digest
verifies), was made at HEAD under the same options for the same checks with every judged file unchanged, and the
judge would let every check of it through (passed, or waived by the spec as it is now). A stage holding a *volatile*
check (one that judges the environment, e.g. free ports or a standalone server, not files) is always re-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealgate.evidence.integrity import reuse_refusal
from sealgate.evidence.judge import check_verdict
from sealgate.evidence.store import EvidenceStore, freshness, working_tree_digests
from sealgate.kernel.errors import SealgateError
from sealgate.model.results import CheckResult, Status
from sealgate.sprint.model import Spec, StageSpec


@dataclass(frozen=True)
class ReusedStage:
    number: int
    status: Status
    results: list[CheckResult]
    evidence: Path


def reusable(
    root: Path,
    spec: Spec,
    store: EvidenceStore,
    stage: StageSpec,
    options: dict[str, Any],
    head: str,
    progress: Callable[[str], None],
) -> ReusedStage | None:
    if any(ref.definition is not None and ref.definition.volatile for ref in stage.checks):
        return None
    try:
        statement = store.read_statement(stage.number)
    except SealgateError:
        return None
    display = store.display(store.stage_path(stage.number))
    # The manifest proves nothing against an edit made to it as well: only the envelope or the keyed digest does.
    refusal = reuse_refusal(root, store, stage.number)
    if refusal:
        progress(f"re-running {spec.stage_label(stage.number)}: {refusal}")
        return None
    if (
        statement.run.options != options
        or statement.check_ids != [ref.id for ref in stage.checks]
        or not freshness(statement, head, display, working_tree_digests(root))
    ):
        return None
    results = statement.checks
    # A failure is always re-run, and a skip only stands when a waiver of the spec as it is now still accepts it.
    if not all(check_verdict(spec, r.check_id, stage.number, r).verdict.ok for r in results):
        return None
    return ReusedStage(stage.number, statement.status, results, store.stage_path(stage.number))
