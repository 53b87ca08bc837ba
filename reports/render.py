"""The SEAL report: Python builds a view of the judgement (every status and sentence decided here); the Jinja2
template (StrictUndefined) only lays it out, in the spec's language.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from sealgate import __version__
from sealgate.evidence.judge import Judgement, Verdict
from sealgate.evidence.store import EvidenceStore
from sealgate.fsutil import atomic_write, sha256_file
from sealgate.reports.catalog import catalog
from sealgate.reports.drill import drill_view

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
class BaseFacts:
    """What was (and was not) verified about the spec's base tag."""

    kind: str  # "ok" | "missing" | "not_ancestor" | "first"
    tag: str | None
    commit: str | None = None
    declared_commit: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "first")


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
    dirty: bool,
    base: BaseFacts,
    outcome: SealOutcome,
    manifest_digest: str | None,
    evidence_folder: str | None = None,
) -> dict[str, Any]:
    """`evidence_folder`: where the evidence is named in this copy of the report (the seal commit's copy sits beside
    its evidence in `seals/<ID>/`; the run's copy names `artifacts/<slug>/`)."""
    spec = judgement.spec
    t = catalog(spec.language)
    verdict_text = t["verdict"]
    store = EvidenceStore(root, spec.slug)
    run_folder = store.display(store.directory) + "/"

    def shown(path: str) -> str:
        return (
            f"{evidence_folder}/{path[len(run_folder) :]}" if evidence_folder and path.startswith(run_folder) else path
        )

    runs = [s.statement.run for s in judgement.stages.values() if s.statement]
    starts = [run.started_at for run in runs]
    ends = [run.finished_at for run in runs]
    backends = sorted({run.backend for run in runs if run.backend})

    stages = []
    for stage in judgement.stages.values():
        checks = []
        for cv in stage.checks:
            result = cv.result
            facts = {k: v for k, v in (result.data.items() if result else []) if isinstance(v, (str, int, float, bool))}
            checks.append(
                {
                    "id": cv.check_id,
                    "title": _cell(cv.title),
                    "verdict": verdict_text[cv.verdict.value],
                    "reason": _cell(cv.reason)
                    if cv.verdict is not Verdict.PASSED
                    else _cell(result.reason if result else ""),
                    "waiver": "; ".join(
                        t["waiver_short"].format(approver=w.approver, expires=w.expires.isoformat()) for w in cv.waivers
                    ),
                    "findings": [
                        f"`{f.location}` {f.summary}" if str(f.location) else f.summary
                        for f in (result.findings if result else [])
                    ],
                    "facts": [f"{k}: {v}" for k, v in sorted(facts.items())],
                    "drill": drill_view(t, result.data) if result else None,
                }
            )
        spec_stage = spec.stages[stage.number]
        stages.append(
            {
                "number": stage.number,
                "name": stage.name,
                "title": stage.title,
                "objective": spec_stage.objective,
                "verdict": verdict_text[stage.verdict.value],
                "mermaid_class": MERMAID_CLASS[stage.verdict],
                "mermaid_label": f"{t['stage']} {stage.number} {stage.name}<br/>{stage.verdict.value}"
                + (f" · {stage.duration_s:.1f}s" if stage.duration_s is not None else ""),
                "duration": f"{stage.duration_s:.1f} s" if stage.duration_s is not None else "—",
                "evidence": shown(stage.evidence)
                if stage.statement
                else f"{shown(stage.evidence)} ({t['no_evidence']})",
                "problems": [str(p) for p in stage.problems],
                "checks": checks,
            }
        )

    criteria = []
    for cv in judgement.criteria:
        files = sorted({shown(judgement.stages[c.stage].evidence) for c in cv.checks})
        criteria.append(
            {
                "id": cv.id,
                "title": _cell(cv.title),
                "verdict": verdict_text[cv.verdict.value],
                "reason": _cell(cv.reason),
                "evidence": ", ".join(f"`{f}`" for f in files),
                "checks": ", ".join(f"`{c.check_id}`" for c in cv.checks),
            }
        )
    passed = sum(c.verdict is Verdict.PASSED for c in judgement.criteria)
    waived = sum(c.verdict is Verdict.WAIVED for c in judgement.criteria)
    failing = len(judgement.criteria) - passed - waived

    check_verdicts = {cv.check_id: cv.verdict for s in judgement.stages.values() for cv in s.checks}

    def proven(ids: list[str]) -> str:
        if not ids:
            return t["mitigation_untested"]
        bad = [i for i in ids if not check_verdicts.get(i, Verdict.MISSING).ok]
        return t["mitigation_verified"] if not bad else t["mitigation_unverified"].format(checks=", ".join(bad))

    raw = spec.raw
    external = raw.get("base_external")
    base_text = {
        "ok": lambda: t["base_ok"].format(tag=base.tag, commit=(base.commit or "")[:12]),
        "missing": lambda: (
            t["base_external"].format(tag=base.tag, **external) if external else t["base_missing"].format(tag=base.tag)
        ),
        "not_ancestor": lambda: t["base_not_ancestor"].format(tag=base.tag, commit=(base.commit or "")[:12]),
        "first": lambda: t["base_first"],
    }[base.kind]()
    if base.declared_commit:
        base_text += f"; {t['base_declared'].format(commit=base.declared_commit)}"

    evidence_files = [{"name": shown(store.display(p)), "sha256": sha256_file(p)} for p in store.evidence_files()]
    outcome_text = t["tag_outcome"][outcome.kind].format(
        tag=outcome.tag, all=t["all_pass"] if judgement.all_ok else t["not_all_pass"]
    )
    return {
        "t": t,
        "title": t["title"].format(id=spec.id, title=raw["title"]),
        "started": _when(min(starts)) if starts else "—",
        "finished": _when(max(ends)) if ends else "—",
        "operator": operator,
        "base": base_text,
        "outcome": outcome_text,
        "outcome_reasons": outcome.reasons,
        "objective": raw["objective"],
        "expected": raw.get("expected_results", []),
        "stages": stages,
        "criteria": criteria,
        "criteria_result": t["criteria_result"].format(
            passed=passed, total=len(judgement.criteria), waived=waived, failing=failing
        ),
        "waivers": [_waiver_line(t, w) for w in judgement.waivers_used],
        "blocker": raw.get("blocker"),
        "blocker_status": t["blocker_resolved"] if judgement.all_ok else t["blocker_open"],
        "decisions": [
            {**d, "proof": proven(d.get("checks", [])), "context": d.get("context", ""), "future": d.get("future", "")}
            for d in raw.get("decisions", [])
        ],
        "risks": [{**r, "proof": proven(r.get("checks", []))} for r in raw.get("risks", [])],
        "next_steps": [{"title": n["title"], "entries": n["items"]} for n in raw.get("next_steps", [])],
        "branch": branch or "—",
        "commit": judgement.head,
        "dirty": dirty,
        "tag": outcome.tag,
        "backend": ", ".join(backends) or "—",
        "evidence_files": evidence_files,
        "manifest_digest": manifest_digest or "—",
        "generated": t["generated"].format(version=__version__),
        "end": t["end"].format(id=spec.id),
        "rendered_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _when(iso: str) -> str:
    """`2026-11-25T08:20:56.592Z` → `2026-11-25 08:20:56 UTC`: a real date a reviewer reads at a glance."""
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _waiver_line(t: dict[str, Any], waiver: Any) -> str:
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
