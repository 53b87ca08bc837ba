"""The sprint lifecycle: which sprints in `sprint/` are open, sealed (and still verify), or broken; which one `seal`
works on; and `new`, which drafts the next sprint's spec from the newest sealed one's next steps.

A sprint is *sealed here* when its seal is on HEAD's history: its tag names a sealgate seal whose seal commit (or
judged commit) is an ancestor of HEAD, or — in a clone without tags — HEAD's history holds `seals/<ID>/seal.json`.
Deciding it reads only the specs' headers and git: no spec is loaded, no stack is started.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sealgate.kernel.errors import EXIT_OK, EXIT_REFUSED, EXIT_WAIVER_EXPIRED, InputError, Problem, SealgateError
from sealgate.kernel.fsutil import atomic_write
from sealgate.kernel.gitrepo import Repo
from sealgate.kernel.yamlsource import load_yaml
from sealgate.run.plan import open_spec
from sealgate.seal import commit as sealcommit
from sealgate.seal import verify as verifying
from sealgate.seal.tag import parse_message
from sealgate.sprint import seals
from sealgate.sprint.model import STAGE_WORDS
from sealgate.sprint.seals import SealRef
from sealgate.sprint.spec import SPRINT_DIR, natural_key, spec_files

Printer = Callable[[str], None]


@dataclass(frozen=True)
class SpecHead:
    """What the lifecycle needs of a spec, read without loading it (no schema, no plugins, no check registry)."""

    id: str
    relpath: str
    tag: str | None
    base: str  # "base F9.9-C-SEALED" | "first of its chain" | "no base"
    unreadable: str | None = None


def spec_heads(root: Path) -> list[SpecHead]:
    """Every spec in sprint/, oldest first (natural order: F9.9 before F9.10)."""
    heads = []
    for path in sorted(spec_files(root / SPRINT_DIR), key=lambda p: natural_key(p.stem)):
        relpath = path.relative_to(root).as_posix()
        try:
            raw = load_yaml(path, relpath).value
        except InputError as exc:
            heads.append(SpecHead(path.stem, relpath, None, "?", str(exc.problems[0])))
            continue
        raw = raw if isinstance(raw, dict) else {}
        tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
        if raw.get("base_tag"):
            base = f"base {raw['base_tag']}"
        else:
            base = "first of its chain" if raw.get("first_in_chain") else "no base"
        heads.append(SpecHead(path.stem, relpath, tag, base))
    return heads


@dataclass
class SprintState:
    head: SpecHead
    kind: str  # "open" | "sealed" (on HEAD's history) | "elsewhere" (tag exists, not on HEAD's history) | "broken"
    ref: SealRef | None = None
    judged: str | None = None
    date: datetime.date | None = None
    why: str = ""

    def facts(self) -> str:
        """tag, seal commit, judged commit, date — what `status` and `seal` say about a sealed sprint."""
        assert self.ref is not None
        tag = f"tag {self.ref.tag_name}" + ("" if self.ref.tag else " (not in this clone)")
        judged = f", commit {self.judged[:12]}" if self.judged else ""
        return f"{tag}, seal {self.ref.seal_commit[:12]}{judged}, {self.date}"


def sprint_states(repo: Repo) -> list[SprintState]:
    in_history = seals.seals_in_history(repo)
    head = repo.head()
    states = []
    for spec in spec_heads(repo.root):
        states.append(_state(repo, spec, head, in_history))
    return states


def _state(repo: Repo, spec: SpecHead, head: str, in_history: list[tuple[str, str]]) -> SprintState:
    if spec.unreadable or not spec.tag:
        return SprintState(spec, "open", why=spec.unreadable or "")
    ref = seals.from_tag(repo, spec.tag)
    if ref is not None:
        fields = parse_message(ref.tag.message) if ref.tag else {}
        if ref.sprint != spec.id or "commit" not in fields:
            what = f"names sprint {ref.sprint}" if ref.sprint else "is not a sealgate seal (no sprint:/commit: lines)"
            return SprintState(spec, "broken", ref, why=f"tag {spec.tag} exists but {what}")
        judged = fields["commit"]
        reachable = _ancestor(repo, ref.seal_commit, head) or _ancestor(repo, judged, head)
        date = sealcommit.sealed_date(repo, ref.seal_commit)
        return SprintState(spec, "sealed" if reachable else "elsewhere", ref, judged, date)
    for seal_commit, sprint in in_history:
        if sprint != spec.id:
            continue
        record = seals.read_record(repo, seal_commit, sprint)
        if record is not None and record.get("tag") == spec.tag:
            parents = repo.parents(seal_commit)
            ref = SealRef(spec.tag, sprint, seal_commit, None)
            date = sealcommit.sealed_date(repo, seal_commit)
            return SprintState(spec, "sealed", ref, parents[0] if parents else None, date)
    return SprintState(spec, "open")


def _ancestor(repo: Repo, ancestor: str, descendant: str) -> bool:
    return repo.run("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


# --- which sprint `seal` works on -----------------------------------------------------------------------------


def pick_for_seal(
    repo: Repo, sprint: str | None, out: Printer, reverify: Callable[[str, str], int]
) -> int | str | None:
    """An exit code when there is nothing to run (the sprint is sealed here: said, and re-verified when named);
    otherwise the sprint to seal (None: let the spec loader say what is missing)."""
    states = sprint_states(repo)
    if sprint:
        state = next((s for s in states if s.head.id == sprint), None)
        if state is not None and state.kind == "sealed":
            out(f"{sprint} is sealed on HEAD's history: {state.facts()} — re-verifying it")
            return reverify(state.head.tag or "", sprint)
        return sprint
    open_states = [s for s in states if s.kind == "open"]
    if open_states:
        return open_states[-1].head.id
    if states and states[-1].kind == "sealed":
        newest = states[-1]
        out(
            f"{newest.head.id} is sealed on HEAD's history: {newest.facts()}; no open sprint to seal "
            f"(start the next one: sealgate new <ID>)"
        )
        return EXIT_OK
    return states[-1].head.id if states else None


def sealed_report(repo: Repo, sprint: str) -> tuple[bytes, str] | None:
    """The SEAL report stored in the seal commit, when `sprint` is sealed on HEAD's history (and where it is)."""
    state = next((s for s in sprint_states(repo) if s.head.id == sprint and s.kind == "sealed"), None)
    if state is None or state.ref is None:
        return None
    path = f"{state.ref.folder}/{sealcommit.report_name(sprint)}"
    data = repo.show(state.ref.seal_commit, path)
    return (data, f"{path} in seal {state.ref.seal_commit[:12]}") if data is not None else None


# --- status ---------------------------------------------------------------------------------------------------


def status(repo: Repo, out: Printer, verify: bool = True, today: datetime.date | None = None) -> int:
    """One line per sprint: open / sealed / verified / sealed with an expired waiver / broken (why), and its base."""
    states = sprint_states(repo)
    if not states:
        raise InputError(Problem(f"{SPRINT_DIR}/", "no sprint spec found", "write sprint/<ID>.yaml (see README)"))
    width = max(len(s.head.id) for s in states)
    code = EXIT_OK
    for state in states:
        label, detail = _describe(repo, state, verify, today)
        if label == "broken":
            code = EXIT_REFUSED
        elif label == "expired" and code == EXIT_OK:
            code = EXIT_WAIVER_EXPIRED
        shown = "sealed" if label == "expired" else label
        out(f"{state.head.id.ljust(width)}  {shown:<8}  {detail}")
    return code


def _describe(repo: Repo, state: SprintState, verify: bool, today: datetime.date | None) -> tuple[str, str]:
    base = state.head.base
    if state.kind == "open":
        why = f" — spec unreadable: {state.why}" if state.why else ""
        return "open", f"tag {state.head.tag or '?'} not made yet; {base}{why}"
    if state.kind == "broken":
        return "broken", f"{base} — {state.why}"
    facts = state.facts() + ("; not on HEAD's history" if state.kind == "elsewhere" else "")
    if not verify:
        return "sealed", f"{facts}; {base}"
    lines: list[str] = []
    try:
        code = verifying.verify(repo.root, state.head.tag or "", state.head.id, report=lines.append, today=today)
    except SealgateError as exc:
        return "broken", f"{facts}; {base} — {exc.problems[0]}"
    if code == EXIT_OK:
        return "verified", f"{facts}; {base}"
    if code == EXIT_WAIVER_EXPIRED:
        return "expired", f"{facts}; {base} — {lines[-1].split(': ', 1)[1]}"
    return "broken", f"{facts}; {base} — {_first_problem(lines)}"


def _first_problem(lines: list[str]) -> str:
    for index, line in enumerate(lines):
        if line.startswith("FAILED  link"):
            return line[len("FAILED  ") :]
        if line.startswith("FAILED  ") and index + 1 < len(lines):
            return f"{line[len('FAILED  ') :]}: {lines[index + 1].strip()}"
    return lines[-1] if lines else "verify failed"


# --- new ------------------------------------------------------------------------------------------------------

# Keys that describe one sprint; every other top-level key (language, plugins, a stack description) carries over.
SPRINT_SPECIFIC = {
    "sealgate", "id", "title", "branch", "base_tag", "base_commit", "base_external", "first_in_chain", "tag",
    "objective", "expected_results", "blocker", "stages", "criteria", "decisions", "risks", "next_steps", "waivers",
}  # fmt: skip


def new_sprint(repo: Repo, new_id: str, out: Printer) -> Path:
    """Write sprint/<new_id>.yaml drafted from the newest sealed spec's next steps; never overwrite."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", new_id):
        raise InputError(Problem(f"sprint id {new_id!r}", "must be letters, digits, '.', '_' or '-'"))
    target = repo.root / SPRINT_DIR / f"{new_id}.yaml"
    relpath = target.relative_to(repo.root).as_posix()
    if target.exists():
        raise InputError(Problem(relpath, "already exists: sealgate new never overwrites a spec"))
    sealed = [s for s in sprint_states(repo) if s.kind == "sealed"]
    if not sealed:
        raise InputError(
            Problem(f"{SPRINT_DIR}/", "no sprint is sealed on HEAD's history to start from", "seal one first")
        )
    base = sealed[-1]
    assert base.ref is not None and base.judged
    text = repo.show(base.judged, base.head.relpath)
    raw = yaml.safe_load(text) if text else None
    if not isinstance(raw, dict):
        raise InputError(Problem(f"{base.head.relpath} at {base.judged[:12]}", "cannot be read back from git"))
    document = draft(raw, new_id, base.ref)
    header = (
        f"# Drafted by `sealgate new {new_id}` from the next steps of {base.head.id} (sealed as {base.ref.tag_name},\n"
        f"# seal {base.ref.seal_commit[:12]}). Every check is a placeholder (todo/…, planned: true): the sprint is\n"
        "# refused until each is replaced by a real check, and its criteria say what must hold.\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=116, default_flow_style=False)
    atomic_write(target, (header + body).encode())
    try:
        open_spec(repo.root, new_id)
    except SealgateError:
        target.unlink()
        raise
    word = STAGE_WORDS.get(str(document["language"]), "stage")
    out(f"wrote {relpath}: base {base.ref.tag_name}, {len(document['stages'])} {word}(s) of planned checks")
    return target


def draft(raw: dict[str, Any], new_id: str, base: SealRef) -> dict[str, Any]:
    groups = [g for g in raw.get("next_steps") or [] if isinstance(g, dict) and g.get("title")]
    where = f"{SPRINT_DIR}/{raw.get('id')}.yaml: next_steps"
    if not groups:
        raise InputError(Problem(where, "is empty: nothing to draft the next sprint from", "write its spec by hand"))
    base_id = str(raw.get("id"))
    suffix = base.tag_name[len(base_id) :] if base.tag_name.startswith(base_id) else "-SEALED"
    stages, criteria, seen, names = [], [], set(), set()
    for number, group in enumerate(groups):
        items = [str(i) for i in group.get("items") or []] or [str(group["title"])]
        checks = []
        for item in items:
            check_id = _placeholder_id(item, seen)
            checks.append({"id": check_id, "planned": True})
        name = _stage_name(str(group["title"]), names)
        stages.append(
            {
                "number": number,
                "name": name,
                "title": str(group["title"]),
                "objective": "; ".join(items),
                "checks": checks,
            }
        )
        criteria.append({"id": f"C{number + 1}", "title": str(group["title"]), "stages": [number]})
    document: dict[str, Any] = {
        "sealgate": 1,
        "id": new_id,
        "title": " · ".join(str(g["title"]) for g in groups),
        "language": raw.get("language", "en"),
        "base_tag": base.tag_name,
        "base_commit": base.seal_commit,
        "tag": f"{new_id}{suffix}",
        "objective": f"Next steps of {base_id} ({raw.get('title', '')}): "
        + "; ".join(str(g["title"]) for g in groups)
        + ".",
        "expected_results": [f"{g['title']}: {item}" for g in groups for item in g.get("items") or []],
    }
    document.update({k: v for k, v in raw.items() if k not in SPRINT_SPECIFIC and k not in document})
    document["stages"] = stages
    document["criteria"] = criteria
    return document


def _slug(text: str, separator: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", separator, ascii_text).strip(separator)[:48].strip(separator)


def _stage_name(title: str, taken: set[str]) -> str:
    """The stage's machine name, made from the next-steps group's title (unique within the spec)."""
    base = _slug(title, "_") or "eixo"
    base = base if base[0].isalpha() else f"eixo_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _placeholder_id(text: str, seen: set[str]) -> str:
    slug = _slug(text, "-") or "item"
    check_id, n = f"todo/{slug}", 2
    while check_id in seen:
        check_id, n = f"todo/{slug}-{n}", n + 1
    seen.add(check_id)
    return check_id
