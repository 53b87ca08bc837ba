"""sprint/F9.11.yaml, the second link of the chain: it loads, every check it names is a real library check with valid
parameters (it plans: nothing left `planned`), its criteria cover its EIXOs, decision 5.2 tells APIHighErrorRate's
history, and once F9.10 is sealed it is the sprint `seal` picks."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import PROJECT_ROOT, commit_all, git, make_project_copy

from sealgate.kernel.gitrepo import Repo
from sealgate.run.plan import open_spec
from sealgate.seal.lifecycle import pick_for_seal, sprint_states

# The EIXOs this part of the sprint writes (2 integrations and 4 offsite_backup are written alongside).
OWN_EIXOS = {0: "preflight", 1: "http_metrics", 3: "dashboards", 5: "tests"}


def test_f9_11_loads_and_plans() -> None:
    spec = open_spec(PROJECT_ROOT, "F9.11")
    assert (spec.id, spec.tag, spec.base_tag, spec.language) == ("F9.11", "F9.11-SEALED", "F9.10-SEALED", "pt-BR")
    assert {number: spec.stages[number].name for number in OWN_EIXOS} == OWN_EIXOS
    placed = {ref.id for stage in spec.stages.values() for ref in stage.checks}
    for number in OWN_EIXOS:
        for ref in spec.stages[number].checks:
            assert ref.definition is not None, f"EIXO {number}: {ref.id} is not a registered check"
            assert not ref.id.startswith("todo/"), ref.id
    # Every check of these EIXOs backs a criterion (a criterion's stages are expanded into its checks).
    judged = {check for c in spec.criteria for check in c.checks}
    own = {ref.id for number in OWN_EIXOS for ref in spec.stages[number].checks}
    unjudged = own - judged - {"preflight/tools", "preflight/ports-free", "preflight/worktree", "preflight/disk-space"}
    assert unjudged == {"preflight/base-tag"}, unjudged  # preflight gates the run; it proves no result
    assert placed >= {"rules/metrics-exist", "dashboard/panel-jobs", "dashboard/queries-answer", "tests/stack-suite"}


def test_f9_11_decision_5_2_tells_both_links_of_its_history() -> None:
    raw = open_spec(PROJECT_ROOT, "F9.11").raw
    decision = next(d for d in raw["decisions"] if d["id"] == "5.2")
    assert "F9.10" in decision["context"] and "F9.11" in decision["context"]
    assert "removida" in decision["context"] and "http_requests_total" in decision["context"]
    assert {"rules/inventory", "rules/metrics-exist"} <= set(decision["checks"])
    inventory = next(c for c in raw["stages"][1]["checks"] if c["id"] == "rules/inventory")["with"]
    assert {"alert": "APIHighErrorRate", "severity": "warning", "for": "5m"} in inventory["groups"]["api"]
    assert "removed" not in inventory  # F9.10's `removed: [APIHighErrorRate]` is history, not a claim of F9.11


def test_f9_11_is_the_open_sprint_once_f9_10_is_sealed(tmp_path: Path) -> None:
    """The lifecycle's view of a clone where F9.10's seal is on HEAD's history (a seal commit holding
    seals/F9.10/seal.json, as a tagless clone sees it): F9.10 sealed, F9.11 open, and `seal` takes F9.11."""
    root = make_project_copy(tmp_path / "project")
    record = root / "seals" / "F9.10" / "seal.json"
    record.parent.mkdir(parents=True, exist_ok=True)  # the copy may already hold the real one
    record.write_text(json.dumps({"tag": "F9.10-SEALED", "sprint": "F9.10"}))
    commit_all(root, "seal F9.10 (as a tagless clone sees it)")
    repo = Repo(root)
    states = {s.head.id: s.kind for s in sprint_states(repo)}
    assert states["F9.10"] == "sealed" and states["F9.11"] == "open", states
    assert pick_for_seal(repo, None, out=lambda _line: None, reverify=lambda _tag, _sprint: 0) == "F9.11"
    assert git(root, "log", "-1", "--format=%s") == "seal F9.10 (as a tagless clone sees it)"
