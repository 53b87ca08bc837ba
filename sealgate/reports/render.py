"""The SEAL report: Python builds a view of the judgement (every status and sentence decided here); the Jinja2
template (StrictUndefined) only lays it out, in the spec's language.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from sealgate import __version__
from sealgate.evidence.judge import CheckVerdict, CriterionVerdict, Judgement, StageVerdict, Verdict
from sealgate.evidence.model import RunInfo
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import SealgateError
from sealgate.kernel.fsutil import atomic_write, sha256_file
from sealgate.kernel.gitrepo import Repo
from sealgate.reports.catalog import catalog
from sealgate.reports.drill import drill_view
from sealgate.seal import diff as diffing
from sealgate.seal.tag import BaseFacts
from sealgate.sprint.model import Spec, Waiver

REPORTS_DIR = "reports"
MERMAID_CLASS = {
    Verdict.PASSED: "passed",
    Verdict.WAIVED: "waived",
    Verdict.FAILED: "failed",
    Verdict.ERRORED: "errored",
    Verdict.SKIPPED: "skipped",
    Verdict.MISSING: "missing",
    Verdict.STALE: "missing",
}


@dataclass
class SealOutcome:
    kind: str  # "created" | "already" | "not_requested" | "refused" | "pending"
    tag: str
    reasons: list[str] = field(default_factory=list)


def report_path(root: Path, sprint_id: str) -> Path:
    return root / REPORTS_DIR / f"SEAL_{sprint_id}.md"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sealgate.reports", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # markdown, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def build_view(
    judgement: Judgement,
    root: Path,
    *,
    operator: str,
    branch: str,
    declared_branch: str,
    dirty: bool,
    base: BaseFacts,
    outcome: SealOutcome,
    manifest_digest: str | None,
    evidence_folder: str | None = None,
) -> dict[str, Any]:
    """The whole report's view, one builder per section. `evidence_folder`: where the evidence is named in this copy
    of the report (the seal commit's copy sits beside its evidence in `seals/<ID>/`; the run's copy names
    `artifacts/<slug>/`)."""
    spec = judgement.spec
    t = catalog(spec.language)
    store = EvidenceStore(root, spec.slug)
    shown = _evidence_namer(store, evidence_folder)
    runs = _stage_runs(judgement)
    return {
        "t": t,
        **_header_view(t, judgement, runs, operator=operator, base=base, outcome=outcome),
        **_objective_view(spec.raw),
        "stages": _stages_view(t, judgement, shown),
        **_criteria_view(t, judgement, shown),
        **_since_base_view(t, judgement, root, base),
        **_narrative_view(t, judgement),
        **_commit_tag_view(t, judgement, runs, branch=branch, declared=declared_branch, dirty=dirty, tag=outcome.tag),
        **_what_ran_view(t, runs),
        **_appendix_view(t, spec, store, shown, manifest_digest),
    }


def _evidence_namer(store: EvidenceStore, evidence_folder: str | None) -> Callable[[str], str]:
    """How this copy of the report names an evidence path: moved under `evidence_folder` when one is given."""
    run_folder = store.display(store.directory) + "/"

    def shown(path: str) -> str:
        if evidence_folder and path.startswith(run_folder):
            return f"{evidence_folder}/{path[len(run_folder) :]}"
        return path

    return shown


def _stage_runs(judgement: Judgement) -> list[RunInfo]:
    """The runs that wrote the stages' evidence (a stage without evidence has none)."""
    return [stage.statement.run for stage in judgement.stages.values() if stage.statement]


def _header_view(
    t: dict[str, Any],
    judgement: Judgement,
    runs: list[RunInfo],
    *,
    operator: str,
    base: BaseFacts,
    outcome: SealOutcome,
) -> dict[str, Any]:
    """The header: title, first start and last finish of the runs, operator, base and the seal's outcome."""
    spec = judgement.spec
    starts = [run.started_at for run in runs]
    ends = [run.finished_at for run in runs]
    counts = _criteria_counts(judgement)
    not_ok = [f"{s.number} ({s.name})" for s in judgement.stages.values() if not s.verdict.ok]
    stages = t["stages_not_ok"].format(stages=", ".join(not_ok)) if not_ok else ""
    return {
        "title": t["title"].format(id=spec.id, title=spec.raw["title"]),
        "started": _when(min(starts)) if starts else "—",
        "finished": _when(max(ends)) if ends else "—",
        "operator": operator,
        "base": _base_text(t, base, spec.raw.get("base_external")),
        "outcome": t["tag_outcome"][outcome.kind].format(tag=outcome.tag, stages=stages, **counts),
        "outcome_reasons": outcome.reasons,
    }


def _base_text(t: dict[str, Any], base: BaseFacts, external: dict[str, str] | None) -> str:
    """The base line: what was (and was not) verified about the spec's base tag."""
    text = {
        "ok": lambda: t["base_ok"].format(tag=base.tag, commit=(base.commit or "")[:12]),
        "missing": lambda: (
            t["base_external"].format(tag=base.tag, **external) if external else t["base_missing"].format(tag=base.tag)
        ),
        "not_ancestor": lambda: t["base_not_ancestor"].format(tag=base.tag, commit=(base.commit or "")[:12]),
        "first": lambda: t["base_first"],
    }[base.kind]()
    if base.declared_commit:
        text += f"; {t['base_declared'].format(commit=base.declared_commit)}"
    return text


def _objective_view(raw: dict[str, Any]) -> dict[str, Any]:
    """Section 1: the sprint's objective and its expected results."""
    return {"objective": raw["objective"], "expected": raw.get("expected_results", [])}


def _stages_view(t: dict[str, Any], judgement: Judgement, shown: Callable[[str], str]) -> list[dict[str, Any]]:
    """Section 2: every stage with its verdict, duration, evidence and checks."""
    return [
        _stage_view(t, stage, judgement.spec.stages[stage.number].objective, shown)
        for stage in judgement.stages.values()
    ]


def _stage_view(t: dict[str, Any], stage: StageVerdict, objective: str, shown: Callable[[str], str]) -> dict[str, Any]:
    """One stage of section 2: its verdict, flowchart node, duration, evidence, problems and checks."""
    timed = stage.duration_s is not None
    return {
        "number": stage.number,
        "name": stage.name,
        "title": stage.title,
        "objective": objective,
        "verdict": t["verdict"][stage.verdict.value],
        "mermaid_class": MERMAID_CLASS[stage.verdict],
        "mermaid_label": f"{t['stage']} {stage.number} {stage.name}<br/>{stage.verdict.value}"
        + (f" · {stage.duration_s:.1f}s" if timed else ""),
        "duration": f"{stage.duration_s:.1f} s" if timed else "—",
        "evidence": shown(stage.evidence) if stage.statement else f"{shown(stage.evidence)} ({t['no_evidence']})",
        "problems": [str(p) for p in stage.problems],
        "checks": [_check_view(t, check) for check in stage.checks],
    }


def _check_view(t: dict[str, Any], check: CheckVerdict) -> dict[str, Any]:
    """One check row of a stage: verdict, reason, waivers, findings, scalar facts and its drill, if any."""
    result = check.result
    data = result.data if result else {}
    # Only scalars make a one-line fact; structured data stays in the evidence file (a drill's gets its own view).
    facts = {k: v for k, v in data.items() if isinstance(v, (str, int, float, bool))}
    # The judge's reason explains a verdict that is not a pass; a pass shows what the check itself reported.
    reason = check.reason if check.verdict is not Verdict.PASSED else (result.reason if result else "")
    return {
        "id": check.check_id,
        "title": _cell(check.title),
        "verdict": t["verdict"][check.verdict.value],
        "reason": _cell(reason),
        "waiver": "; ".join(
            t["waiver_short"].format(approver=w.approver, expires=w.expires.isoformat()) for w in check.waivers
        ),
        "findings": [
            (f"`{f.location}` {f.summary}" if str(f.location) else f.summary)
            + (f" ({t['covered_by_waiver']})" if f in check.covered else "")
            for f in (result.findings if result else [])
        ],
        "facts": [f"{k}: {v}" for k, v in sorted(facts.items())],
        "drill": drill_view(t, result.data) if result else None,
    }


def _criteria_view(t: dict[str, Any], judgement: Judgement, shown: Callable[[str], str]) -> dict[str, Any]:
    """Section 3: every criterion with its evidence, the pass count and the waivers applied."""
    return {
        "criteria": [_criterion_view(t, criterion, judgement.stages, shown) for criterion in judgement.criteria],
        "criteria_result": t["criteria_result"].format(**_criteria_counts(judgement)),
        "waivers": [_waiver_line(t, w) for w in judgement.waivers_used],
        "stale_waivers": [_cell(str(s)) for s in judgement.stale],
    }


def _criteria_counts(judgement: Judgement) -> dict[str, int]:
    """How many criteria passed on evidence, were waived, are not met — the same three numbers everywhere."""
    passed = sum(c.verdict is Verdict.PASSED for c in judgement.criteria)
    waived = sum(c.verdict is Verdict.WAIVED for c in judgement.criteria)
    total = len(judgement.criteria)
    return {"passed": passed, "waived": waived, "failing": total - passed - waived, "total": total}


def _criterion_view(
    t: dict[str, Any], criterion: CriterionVerdict, stages: dict[int, StageVerdict], shown: Callable[[str], str]
) -> dict[str, Any]:
    """One criterion row of section 3: its verdict, reason, and the checks and evidence files that decide it."""
    files = sorted({shown(stages[c.stage].evidence) for c in criterion.checks})
    return {
        "id": criterion.id,
        "title": _cell(criterion.title),
        "verdict": t["verdict"][criterion.verdict.value],
        "reason": _cell(criterion.reason),
        "evidence": ", ".join(f"`{f}`" for f in files),
        "checks": ", ".join(f"`{c.check_id}`" for c in criterion.checks),
    }


def _since_base_view(t: dict[str, Any], judgement: Judgement, root: Path, base: BaseFacts) -> dict[str, Any]:
    """Since <base tag>: what changed from the base's seal to this run — criteria, rules, alert coverage and drill
    times, restore times, images and tools (`sealgate diff <base tag>`'s facts, in the spec's language). Only when
    the base is a sealgate seal this repository holds; a base seal that cannot be read is said, never fatal."""
    if base.kind != "ok" or not base.commit or not base.tag:
        return {"since": None}
    repo = Repo(root)
    ref = diffing.seal_at(repo, base.commit, base.tag)
    if ref is None:  # a plain tag (or another tool's): no seal to compare with
        return {"since": None}
    said = t["since"]
    heading = said["heading"].format(tag=base.tag)
    try:
        side = diffing.sealed_side(repo, ref)
        result = diffing.compare(repo, side, diffing.judged_side(judgement))
    except SealgateError as exc:
        why = _cell(str(exc.problems[0]))
        return {"since": {"heading": heading, "intro": said["unreadable"].format(tag=base.tag, why=why), "rows": [],
                          "notes": [], "none": ""}}  # fmt: skip
    words = {**diffing.WORDS, **said["words"], "verdict": t["verdict"]}
    rows, notes = [], []
    for name in diffing.REPORT_GROUPS:
        group = result.groups[name]
        if group.recorded in ("a", "b"):
            side_label = base.tag if group.recorded == "a" else judgement.spec.id
            notes.append(said["not_recorded"].format(group=words["group"][name], side=side_label))
        rows += [
            {
                "group": words["group"][name],
                "change": words["change"][change.change],
                "subject": _cell(change.subject),
                "detail": _cell(diffing.describe(change, words)),
            }
            for change in group.changes
        ]
    sealed_at = _when(side.sealed_at) if side.sealed_at else "—"
    return {
        "since": {
            "heading": heading,
            "intro": said["intro"].format(tag=base.tag, seal=ref.seal_commit[:12], sealed_at=sealed_at),
            "rows": rows,
            "notes": notes,
            "none": "" if rows else said["none"],
        }
    }


def _narrative_view(t: dict[str, Any], judgement: Judgement) -> dict[str, Any]:
    """Sections 4–7: the blocker and its status, decisions and risks with their proof, and the next steps."""
    raw = judgement.spec.raw
    verdicts = {cv.check_id: cv.verdict for stage in judgement.stages.values() for cv in stage.checks}
    return {
        "blocker": raw.get("blocker"),
        "blocker_status": t["blocker_resolved"] if judgement.all_ok else t["blocker_open"],
        "decisions": [
            {
                **d,
                "proof": _proof_text(t, d.get("checks", []), verdicts),
                "context": d.get("context", ""),
                "future": d.get("future", ""),
            }
            for d in raw.get("decisions", [])
        ],
        "risks": [{**r, "proof": _proof_text(t, r.get("checks", []), verdicts)} for r in raw.get("risks", [])],
        "next_steps": [{"title": n["title"], "entries": n["items"]} for n in raw.get("next_steps", [])],
    }


def _proof_text(t: dict[str, Any], check_ids: list[str], verdicts: dict[str, Verdict]) -> str:
    """Whether the checks a decision or risk names prove it: not checked, verified, or which of them did not hold."""
    if not check_ids:
        return t["mitigation_untested"]
    # A named check the judgement does not know (a typo, a removed check) counts as unproven, never as proven.
    unproven = [i for i in check_ids if not verdicts.get(i, Verdict.MISSING).ok]
    return t["mitigation_unverified"].format(checks=", ".join(unproven)) if unproven else t["mitigation_verified"]


def _commit_tag_view(
    t: dict[str, Any], judgement: Judgement, runs: list[RunInfo], *, branch: str, declared: str, dirty: bool, tag: str
) -> dict[str, Any]:
    """Section 8 (commit and tag): the branch and judged commit it was sealed on (the spec's declared branch beside
    it when they differ) and the tag; also the backends the stages ran on (header)."""
    shown = f"`{branch}`" if branch else "—"
    if declared and declared != branch:
        shown += f" ({t['branch_declared'].format(branch=declared)})"
    return {
        "branch": shown,
        "commit": judgement.head,
        "dirty": dirty,
        "tag": tag,
        "backend": ", ".join(sorted({run.backend for run in runs if run.backend})) or "—",
    }


def _what_ran_view(t: dict[str, Any], runs: list[RunInfo]) -> dict[str, Any]:
    """Section 8.1 (what ran): per backend, one small table of each service's image (reference, ID, repository
    digest) or program and the version it reported, over every stage's run (`run.stack`), each distinct row once; the
    compose file's digest; and the lines where a version differs from its compose pin. Evidence that records none of
    it (written before it was recorded) adds nothing."""
    said = t["what_ran"]
    backends: dict[str, dict[str, Any]] = {}
    for run in runs:
        stack = run.stack or {}
        if not run.backend or not any(k in stack for k in ("images", "versions", "tools", "version_drift")):
            continue
        entry = backends.setdefault(run.backend, {"rows": [], "compose": [], "drift": []})
        if stack.get("compose_file_sha256"):
            compose = f"`{stack.get('compose_file') or '?'}` sha256 `{stack['compose_file_sha256']}`"
            if compose not in entry["compose"]:
                entry["compose"].append(compose)
        for row in _what_ran_rows(stack):
            if row not in entry["rows"]:
                entry["rows"].append(row)
        for line in stack.get("version_drift") or []:
            if _cell(line) not in entry["drift"]:
                entry["drift"].append(_cell(line))
    return {
        "what_ran": [
            {
                "backend": said["backend"].format(backend=name),
                "compose": "; ".join(entry["compose"]) or "—",
                "rows": sorted(entry["rows"], key=lambda row: (row["service"], row["ran"])),
                "drift": entry["drift"],
            }
            for name, entry in sorted(backends.items())
        ]
    }


def _what_ran_rows(stack: dict[str, Any]) -> list[dict[str, str]]:
    """One row per service of one run's `run.stack`: the image it ran from (a reference string in evidence older
    than image IDs), else the program the backend ran; the version it reported, else why there is none."""
    images, tools = stack.get("images") or {}, stack.get("tools") or {}
    versions, unknown = stack.get("versions") or {}, stack.get("versions_unknown") or {}
    rows = []
    for service in sorted({*images, *tools, *versions, *unknown}):
        image = images.get(service)
        image = image if isinstance(image, dict) else {"image": image}
        tool = tools.get(service) if isinstance(tools.get(service), dict) else {}
        ran = image.get("image") or tool.get("tool")
        version = versions.get(service)
        rows.append(
            {
                "service": _cell(service),
                "ran": f"`{_cell(ran)}`" if ran else "—",
                "id": f"`{image['id']}`" if image.get("id") else "—",
                "digest": f"`{image['repo_digest']}`" if image.get("repo_digest") else "—",
                "version": _cell(version or (f"— ({unknown[service]})" if service in unknown else "—")),
            }
        )
    return rows


def _appendix_view(
    t: dict[str, Any], spec: Spec, store: EvidenceStore, shown: Callable[[str], str], manifest_digest: str | None
) -> dict[str, Any]:
    """Section 10 (appendix) and the closing lines: every evidence file with its sha256, the manifest digest."""
    return {
        "evidence_files": [
            {"name": shown(store.display(p)), "sha256": sha256_file(p)} for p in store.evidence_files(spec.stages)
        ],
        "manifest_digest": manifest_digest or "—",
        "generated": t["generated"].format(version=__version__),
        "end": t["end"].format(id=spec.id),
        "rendered_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _when(iso: str) -> str:
    """`2026-11-25T08:20:56.592Z` → `2026-11-25 08:20:56 UTC`: a real date a reviewer reads at a glance."""
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _waiver_line(t: dict[str, Any], waiver: Waiver) -> str:
    return t["waiver_line"].format(
        kind=waiver.target_kind,
        target=waiver.target,
        justification=_cell(waiver.justification),
        approver=waiver.approver,
        expires=waiver.expires.isoformat(),
    )


def render(view: dict[str, Any]) -> str:
    return _environment().get_template("seal.md.j2").render(**view)


def write_report(root: Path, sprint_id: str, text: str) -> Path:
    path = report_path(root, sprint_id)
    atomic_write(path, text.encode())
    return path
