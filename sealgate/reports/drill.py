"""The alert drill in the SEAL report: the coverage table and a Mermaid gantt of each alert's way from the fault to
its resolution, built from a check's evidence (`coverage` and `phases`, as `rules/alert-drill` records them).

Every word and every decision is made here (the catalog's `drill:` section gives the words); the template only lays
the rows and the diagram out. Times in the gantt are milliseconds since the first fault of the drill (`dateFormat x`,
axis minutes:seconds), so phases that ran side by side on their own stack copies show side by side.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

# (from, to, catalog key of the label, Mermaid tag) for each alert: where each bar starts and ends in the phase's
# evidence (`fault_at`/`restored_at`, or an event of the alert).
SEGMENTS: tuple[tuple[str, str, str, str], ...] = (
    ("fault_at", "pending_prometheus", "to_pending", "done"),
    ("pending_prometheus", "fire_prometheus", "to_firing", "active"),
    ("fire_prometheus", "fire_alertmanager", "to_alertmanager", "crit"),
    ("fire_alertmanager", "fire_receiver", "to_receiver", "crit"),
    ("restored_at", "resolve_prometheus", "to_resolved", "done"),
    ("resolve_prometheus", "resolve_receiver", "to_resolution_delivered", "done"),
)
_UNSAFE = re.compile(r"[:;#\n\r]+")  # a task's name ends at `:`; `;` and `#` start Mermaid syntax of their own


def _epoch_ms(iso: str | None) -> int | None:
    if not iso:
        return None
    moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


def _safe(text: str) -> str:
    return " ".join(_UNSAFE.sub(" ", str(text)).split())


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else "—"


def drill_view(t: dict[str, Any], data: dict[str, Any]) -> dict[str, Any] | None:
    """The report's view of a drill check's evidence, or None when the check recorded neither phases nor coverage
    (it was skipped, or is another kind of check)."""
    words = t["drill"]
    phases = [p for p in data.get("phases") or [] if isinstance(p, dict)]
    coverage = [row for row in data.get("coverage") or [] if isinstance(row, dict)]
    if not phases and not coverage:
        return None
    on_request = [str(name) for name in data.get("phases_on_request") or []]
    status_words = t["verdict"]  # a phase's status in the report's words (passed, failed, errored)
    budgets = {str(b["alert"]): b for b in data.get("budgets") or [] if isinstance(b, dict)}
    return {
        "coverage": [_coverage_row(words, row, status_words, budgets.get(str(row["alert"]))) for row in coverage],
        "uncovered": [row["alert"] for row in coverage if not row.get("covered_by")],
        "coverage_summary": words["coverage_summary"].format(
            total=len(coverage),
            uncovered=sum(1 for row in coverage if not row.get("covered_by")),
        ),
        "phases": [_phase_line(words, p, status_words) for p in phases],
        "on_request": words["not_requested"].format(phases=", ".join(on_request)) if on_request else "",
        "gantt": gantt(words, phases),
    }


def _budget_cell(words: dict[str, Any], budget: dict[str, Any] | None) -> str:
    """The drilled alert's bound (what the drill waits at most) beside the spec's own budget, and what went over."""
    if budget is None:
        return "—"
    cell = words["budget_cell"].format(
        fire_bound=_seconds(budget.get("fire_bound_s")),
        max_fire=_seconds(budget.get("max_fire_s")),
        resolve_bound=_seconds(budget.get("resolve_bound_s")),
        max_resolve=_seconds(budget.get("max_resolve_s")),
    )
    over = budget.get("over_budget") or []
    return f"{cell} ❌ {'; '.join(over)}" if over else cell


def _coverage_row(
    words: dict[str, Any], row: dict[str, Any], status_words: dict[str, str], budget: dict[str, Any] | None = None
) -> dict[str, str]:
    drill = row.get("drill") or None
    if drill is None:
        drilled = "—"
    elif drill.get("status") == "on request":
        drilled = words["drill_on_request"].format(phase=drill["phase"])
    elif drill.get("status") == "passed":
        drilled = words["drill_passed"].format(
            phase=drill["phase"],
            fired=_seconds(drill.get("fire_prometheus_s")),
            delivered=_seconds(drill.get("fire_receiver_s")),
            resolved=_seconds(drill.get("resolve_receiver_s")),
        )
    else:
        status = str(drill.get("status"))
        drilled = words["drill_not_passed"].format(phase=drill["phase"], status=status_words.get(status, status))
    covered_by = [words["by"][kind] for kind in row.get("covered_by") or []]
    tests = row.get("unit_tests") or []
    cells = {
        "alert": str(row["alert"]),
        "rule": f"{row['file']}:{row['line']}",
        "unit_test": "✅ " + ", ".join(f"`{f}`" for f in tests) if tests else "—",
        "drill": drilled,
        "budget": _budget_cell(words, budget),
        "waiver": words["waived_at"].format(source=row["waiver"]) if row.get("waiver") else "—",
        "covered": "✅ " + ", ".join(covered_by) if covered_by else words["uncovered"],
    }
    return {key: " ".join(value.split()).replace("|", "\\|") for key, value in cells.items()}


def _phase_line(words: dict[str, Any], phase: dict[str, Any], status_words: dict[str, str]) -> str:
    copy = phase.get("copy") or {}
    where = copy.get("project") or copy.get("name") or "—"  # a compose project, or the local copy's name
    return words["phase_line"].format(
        name=phase.get("name"),
        status=status_words.get(str(phase.get("status")), str(phase.get("status"))),
        duration=_seconds(phase.get("duration_s")),
        copy=where,
        waited=_seconds(phase.get("waited_for_copy_s")),
        fault=phase.get("fault"),
        restore=phase.get("restore"),
    )


def gantt(words: dict[str, Any], phases: list[dict[str, Any]]) -> str:
    """The Mermaid gantt of every drilled alert (empty when no phase injected its fault)."""
    starts = [ms for ms in (_epoch_ms(p.get("fault_at")) for p in phases) if ms is not None]
    if not starts:
        return ""
    t0 = min(starts)
    labels = words["gantt"]
    lines = ["gantt", f"  title {_safe(labels['title'])}", "  dateFormat x", "  axisFormat %M:%S"]
    for phase in phases:
        moments = {"fault_at": _epoch_ms(phase.get("fault_at")), "restored_at": _epoch_ms(phase.get("restored_at"))}
        for alert in phase.get("alerts") or []:
            events = (phase.get("events") or {}).get(alert) or {}
            at = {**moments, **{key: _epoch_ms((value or {}).get("at")) for key, value in events.items()}}
            tasks = []
            for begin, end, label, tag in SEGMENTS:
                if at.get(begin) is None or at.get(end) is None:
                    continue
                start, finish = at[begin] - t0, max(at[end] - t0, at[begin] - t0 + 1)  # a bar is never empty
                name = f"{labels[label]} ({(finish - start) / 1000:.1f} s)"
                tasks.append(f"    {_safe(name)} :{tag}, {start}, {finish}")
            if not tasks:
                continue
            lines.append(f"  section {_safe(alert)} ({_safe(phase.get('name', ''))})")
            lines += tasks
    return "\n".join(lines) if len(lines) > 4 else ""
