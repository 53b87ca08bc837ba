"""`sealgate diff A B`: what changed from one seal to the next — or to the open sprint's evidence — so that seals
stop being islands: criteria and checks, the alerting and recording rules, alert coverage and drill times, restore
times, waivers, images and tool versions.

Both sides are read the way `verify` reads a seal: from git objects. A seal is its `seals/<ID>/` (statements and
`seal.json`) in its seal commit, found by its tag, by its record in HEAD's history (a tag-less clone) or by the seal
commit itself; the rule files are the subjects of the statements of the stages that ran a `rules/` check, read as of
the commit each statement was made at. The open side is the open sprint judged from `artifacts/` by the one judge.

A diff is information, never a verdict: nothing here decides whether a seal holds (that is `verify`). What a side
does not record (a seal of a sprint with no alert drill, a run on a backend that names no images, evidence written
before a fact was recorded) is said per group — "not recorded by A" — rather than shown as everything added or
removed.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sealgate.analysis.rulefiles import Rule, parse_rule_file
from sealgate.checks import library
from sealgate.evidence.judge import Judgement, judge
from sealgate.evidence.model import Statement
from sealgate.evidence.store import schema_problems
from sealgate.kernel.errors import InputError, Problem
from sealgate.kernel.gitrepo import Repo
from sealgate.model.results import Status
from sealgate.run.plan import open_spec
from sealgate.seal import commit as sealcommit
from sealgate.seal import lifecycle
from sealgate.sprint import seals
from sealgate.sprint.seals import RECORD, SEALS_DIR, SealRef
from sealgate.sprint.spec import SPRINT_DIR

# Every group, in the order a diff prints them; the SEAL report's "since <base>" section shows REPORT_GROUPS.
GROUPS = ("criteria", "checks", "rules", "coverage", "drill", "restore", "waivers", "images", "versions", "tools")
REPORT_GROUPS = ("criteria", "rules", "coverage", "drill", "restore", "images", "versions", "tools")
CHANGE_KINDS = ("added", "removed", "changed", "expired")

DRILL_CHECK = "rules/alert-drill"
RESTORE_CHECKS = "backup/*restore-drill"  # a glob: the local restore drill and the offsite one alike
RULES_PREFIX = "rules/"  # a stage that runs one of these judged the rule files among its subjects

# Fields that locate a value rather than describe it: a rule moved two lines down did not change.
_NOT_COMPARED = {"rules": {"line"}, "coverage": {"file", "line"}, "drill": {"phase"}}
# A rule file is YAML with a `groups:` key (at the top, or under a PrometheusRule's `spec:`): a cheap test before
# parsing a subject as one (subjects are also specs, Python files, dashboards, …).
_RULES_HINT = re.compile(rb"^\s*groups\s*:", re.MULTILINE)
# The version in a tool's version line: stages record the same tool differently ("2.42.0+ds" and "2.42.0+ds (branch:
# …)"), so the versions are compared, not the lines.
_VERSION = re.compile(r"\d+(?:\.\d+)+(?:[-+~][0-9A-Za-z.+~-]*)?")

# The words a diff is told in. `sealgate diff` prints these; the SEAL report passes its language's catalog instead.
WORDS: dict[str, Any] = {
    "change": {"added": "added", "removed": "removed", "changed": "changed", "expired": "expired"},
    "group": {
        "criteria": "criteria",
        "checks": "checks",
        "rules": "alerting and recording rules",
        "coverage": "alert coverage",
        "drill": "alert drill (seconds after the fault / the restore)",
        "restore": "restore time",
        "waivers": "waivers",
        "images": "images",
        "versions": "service versions",
        "tools": "tool versions",
    },
    "verdict": {},  # verdicts as the evidence spells them
    "covered_by": {"unit_test": "unit test", "drill": "drill", "waiver": "waiver"},
    "by_nothing": "nothing",
    "fire": "delivered firing",
    "resolve": "resolution delivered",
    "never": "never",
    "bound": "bound",
    "budget": "budget",
    "took": "took",
    "rto": "RTO",
    "expires": "expires {date}",
    "expired_on": "expired on {date}",
    "approver": "approved by {approver}",
}


# --- the model --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    group: str
    change: str  # one of CHANGE_KINDS
    subject: str  # what changed: a criterion id, a check id, "alert NAME", a service, a tool
    before: Any  # A's value (None: absent from A)
    after: Any  # B's value (None: absent from B)

    def to_json(self) -> dict[str, Any]:
        return {"change": self.change, "subject": self.subject, "before": self.before, "after": self.after}


@dataclass
class Side:
    """One side of a diff: a seal read back from git objects, or the open sprint judged from `artifacts/`."""

    label: str  # the seal's tag, or "<ID> (open)"
    sprint: str
    tag: str
    commit: str  # the judged commit (a seal) or HEAD (the open sprint)
    seal_commit: str | None  # None: the open sprint
    sealed_at: str | None
    criteria: dict[str, dict[str, Any]]
    checks: dict[str, dict[str, Any]]
    waivers: dict[str, dict[str, Any]]
    statements: list[Statement]  # stage order

    @property
    def open(self) -> bool:
        return self.seal_commit is None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "sprint": self.sprint,
            "tag": self.tag,
            "commit": self.commit,
            "seal_commit": self.seal_commit,
            "sealed_at": self.sealed_at,
            "open": self.open,
        }


@dataclass
class GroupDiff:
    group: str
    recorded: str  # "both" | "a" | "b" | "neither": which sides record the facts the group compares
    changes: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "changes": [c.to_json() for c in self.changes]}


@dataclass
class Diff:
    a: Side
    b: Side
    groups: dict[str, GroupDiff]

    @property
    def changes(self) -> list[Change]:
        return [c for g in self.groups.values() for c in g.changes]

    def to_json(self) -> dict[str, Any]:
        """Stable keys: `a`, `b`, `groups` (every group of GROUPS, always), `count`."""
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "groups": {name: self.groups[name].to_json() for name in GROUPS},
            "count": len(self.changes),
        }


# --- finding a seal -----------------------------------------------------------------------------------------------


def resolve(repo: Repo, name: str, which: str) -> SealRef:
    """The seal NAME is: a seal tag; a seal in HEAD's history whose record names that tag (a tag-less clone); or a
    seal commit (any commit-ish naming one). Anything else is bad input, said in one line. Nothing is fetched: a
    diff reads what the clone holds."""
    tag = seals.from_tag(repo, name)
    if tag is not None and tag.sprint and seals.read_record(repo, tag.seal_commit, tag.sprint) is not None:
        return tag
    if tag is None:
        found = seals.in_history(repo, name)
        if found is not None:
            return found
    done = repo.run("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", check=False)
    commit = done.stdout.decode().strip() if done.returncode == 0 else ""
    if not commit:
        raise InputError(
            Problem(
                f"{which} {name}",
                "no such tag or commit in this repository, and no seal in HEAD's history names it",
                f"fetch it with `git fetch origin tag {name}`, or name a seal commit",
            )
        )
    ref = seal_at(repo, commit, tag.tag_name if tag else None)
    if ref is None:
        what = "tag" if tag is not None else "commit"
        raise InputError(
            Problem(
                f"{which} {name}",
                f"is a {what} but not a sealgate seal: commit {commit[:12]} adds no {SEALS_DIR}/<ID>/{RECORD}",
                "name a seal tag or a seal commit",
            )
        )
    return ref


def seal_at(repo: Repo, commit: str, tag_name: str | None = None) -> SealRef | None:
    """The seal a commit is — one that adds `seals/<ID>/seal.json` — or None. Its tag is the one its record names."""
    done = repo.run(
        "diff-tree", "-r", "--root", "--no-commit-id", "--name-only", "--diff-filter=A", commit, "--",
        f"{SEALS_DIR}/*/{RECORD}", check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    for path in done.stdout.decode(errors="replace").splitlines():
        parts = path.split("/")
        if len(parts) != 3:
            continue
        record = seals.read_record(repo, commit, parts[1])
        if record is not None:
            tag = repo.tag(tag_name) if tag_name else repo.tag(str(record.get("tag", "")))
            return SealRef(str(record.get("tag") or tag_name or commit[:12]), parts[1], commit, tag)
    return None


# --- reading a side ---------------------------------------------------------------------------------------------


def sealed_side(repo: Repo, ref: SealRef) -> Side:
    """A seal from git objects: its record, and every statement it holds (schema-validated, as verify reads them)."""
    folder = ref.folder
    display = f"{folder}/{RECORD} in seal {ref.seal_commit[:12]}"
    record = seals.read_record(repo, ref.seal_commit, ref.sprint)
    if record is None:
        raise InputError(
            Problem(display, "missing or not JSON: not a readable seal", f"sealgate verify {ref.tag_name}")
        )
    problems = sealcommit.record_problems(record, display)
    statements = []
    listing = repo.out("ls-tree", "--name-only", ref.seal_commit, "--", f"{folder}/")
    names = [n for n in listing.splitlines() if re.fullmatch(r"eixo_\d+\.json", n.rsplit("/", 1)[-1])]
    for name in sorted(names, key=lambda n: int(re.sub(r"\D", "", n.rsplit("/", 1)[-1]))):
        data = repo.show(ref.seal_commit, name)
        try:
            document = json.loads(data or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, f"not valid JSON: {exc}"))
            continue
        found = schema_problems(document, "eixo.schema.json", name)
        if found:
            problems += found
            continue
        statements.append(Statement.from_json(document))
    if problems:
        first = problems[0]
        raise InputError(Problem(first.where, first.what, f"is this a seal? sealgate verify {ref.tag_name}"))
    canonical = library().canonical
    checks = {}
    for statement in statements:
        for result in statement.checks:
            # A seal holds only passed or waived checks (verify re-judges that): anything not passed is waived.
            waived = result.status is not Status.PASSED or bool(result.waivers)
            checks[canonical(result.check_id)] = {
                "verdict": "waived" if waived else "passed",
                "status": result.status.value,
            }
    return Side(
        label=ref.tag_name,
        sprint=ref.sprint,
        tag=str(record["tag"]),
        commit=str(record["commit"]),
        seal_commit=ref.seal_commit,
        sealed_at=str(record["sealed_at"]),
        criteria={c["id"]: {"title": c["title"], "verdict": c["verdict"]} for c in record["criteria"]},
        checks=checks,
        waivers={f"{w['kind']} {w['target']}": _waiver_value(w) for w in record["waivers"]},
        statements=statements,
    )


def judged_side(judgement: Judgement) -> Side:
    """The open sprint as the judge sees its evidence in `artifacts/` (what its SEAL report says)."""
    spec = judgement.spec
    canonical = library().canonical
    checks = {}
    for stage in judgement.stages.values():
        for cv in stage.checks:
            checks[canonical(cv.check_id)] = {
                "verdict": cv.verdict.value,
                "status": cv.result.status.value if cv.result else None,
            }
    return Side(
        label=f"{spec.id} (open)",
        sprint=spec.id,
        tag=spec.tag,
        commit=judgement.head,
        seal_commit=None,
        sealed_at=None,
        criteria={c.id: {"title": c.title, "verdict": c.verdict.value} for c in judgement.criteria},
        checks=checks,
        waivers={f"{w.target_kind} {w.target}": _waiver_value(w.to_json()) for w in judgement.waivers_used},
        statements=[s.statement for s in judgement.stages.values() if s.statement],
    )


def open_side(repo: Repo, sprint: str | None) -> Side:
    """The open sprint (`sprint`, else the newest open one in sprint/) judged from `artifacts/` at HEAD."""
    if sprint is None:
        open_states = [s for s in lifecycle.sprint_states(repo) if s.kind == "open"]
        if not open_states:
            raise InputError(
                Problem(f"{SPRINT_DIR}/", "no open sprint to compare with", "name B: a seal tag or a seal commit")
            )
        sprint = open_states[-1].head.id
    spec = open_spec(repo.root, sprint)
    return judged_side(judge(spec, repo.root, repo.head()))


def _waiver_value(record: dict[str, Any]) -> dict[str, Any]:
    """What a waiver says (its file:line is where it is written, not what it says)."""
    return {k: record.get(k) for k in ("expires", "approver", "accepts", "justification")}


# --- the facts each group compares ------------------------------------------------------------------------------

Facts = dict[str, Any] | None  # subject → value; None: the side does not record them


def _results(side: Side, pattern: str) -> list[tuple[str, Any]]:
    """(canonical id, result) of every check in the side's evidence whose id matches the glob."""
    canonical = library().canonical
    found = []
    for statement in side.statements:
        for result in statement.checks:
            check_id = canonical(result.check_id)
            if fnmatch.fnmatchcase(check_id, pattern):
                found.append((check_id, result))
    return found


def _drill_data(side: Side) -> dict[str, Any]:
    results = _results(side, DRILL_CHECK)
    return results[0][1].data if results else {}


def rule_facts(repo: Repo, side: Side) -> list[Rule] | None:
    """Every alerting and recording rule of the rule files the side's rules stages judged, as of the commit each
    statement was made at (None: no stage of the side ran a rules check)."""
    statements = [s for s in side.statements if any(c.check_id.startswith(RULES_PREFIX) for c in s.checks)]
    if not statements:
        return None
    files: dict[str, str] = {}
    for statement in statements:
        for subject in statement.subjects:
            files.setdefault(subject.name, statement.run.commit)
    rules: list[Rule] = []
    for name, commit in sorted(files.items()):
        data = repo.show(commit, name)
        if data is None or not _RULES_HINT.search(data):
            continue
        rules += parse_rule_file(data, name, []).rules  # its problems are its checks' findings, not the diff's
    return rules


def keyed_rules(a: list[Rule], b: list[Rule]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both sides' rules keyed alike, `alert NAME` / `record NAME`; a name defined more than once on either side (a
    warning/critical pair) is keyed by its labels on both, so each definition is compared with its own."""
    per_side = [Counter((r.kind, r.name) for r in rules) for rules in (a, b)]
    counts = per_side[0] | per_side[1]  # the larger count of either side

    def keyed(rules: list[Rule]) -> dict[str, Any]:
        return {_rule_subject(r, labelled=counts[(r.kind, r.name)] > 1): _rule_value(r) for r in rules}

    return keyed(a), keyed(b)


def _rule_subject(rule: Rule, labelled: bool) -> str:
    if not labelled:
        return f"{rule.kind} {rule.name}"
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(rule.labels.items()))
    return f"{rule.kind} {rule.name}{{{labels}}}"


def _rule_value(rule: Rule) -> dict[str, Any]:
    return {
        "file": rule.file,
        "line": rule.line,
        "group": rule.group,
        "expr": " ".join(rule.expr.split()),  # re-wrapping an expression is not a change
        "for": _duration(rule.for_s) if rule.kind == "alert" else None,
        "labels": dict(sorted(rule.labels.items())),
        "annotations": dict(sorted(rule.annotations.items())),
    }


def _duration(seconds: float) -> str:
    """Seconds as Prometheus writes a duration: 300 → 5m, 90 → 1m30s, 0 → 0s."""
    if seconds <= 0:
        return "0s"
    text, rest = "", seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            text += f"{int(rest // size)}{unit}"
            rest -= (rest // size) * size
    if rest:
        text += f"{rest:g}s"
    return text


def coverage_facts(side: Side) -> Facts:
    rows = _drill_data(side).get("coverage")
    if not isinstance(rows, list):
        return None
    return {
        f"alert {row['alert']}": {
            "covered_by": list(row.get("covered_by") or []),
            "file": row.get("file"),
            "line": row.get("line"),
        }
        for row in rows
        if isinstance(row, dict) and row.get("alert")
    }


def drill_facts(side: Side) -> Facts:
    """Per drilled alert: the measured seconds (fired in Prometheus, delivered, resolution delivered) and, where the
    evidence records them, the bound the drill waited and the budget the spec states."""
    data = _drill_data(side)
    alerts = data.get("alerts")
    if not isinstance(alerts, dict):
        return None
    budgets = {row.get("alert"): row for row in data.get("budgets") or [] if isinstance(row, dict)}
    phases = {  # evidence written before budgets were recorded names each alert's phase in its coverage row
        row.get("alert"): (row.get("drill") or {}).get("phase")
        for row in data.get("coverage") or []
        if isinstance(row, dict) and isinstance(row.get("drill"), dict)
    }
    facts = {}
    for alert, times in sorted(alerts.items()):
        times = times if isinstance(times, dict) else {}
        budget = budgets.get(alert, {})
        facts[f"alert {alert}"] = {
            "phase": budget.get("phase") or phases.get(alert),
            "fire_prometheus_s": times.get("fire_prometheus_s"),
            "fire_receiver_s": times.get("fire_receiver_s"),
            "resolve_receiver_s": times.get("resolve_receiver_s"),
            "fire_bound_s": budget.get("fire_bound_s"),
            "resolve_bound_s": budget.get("resolve_bound_s"),
            "max_fire_s": budget.get("max_fire_s"),
            "max_resolve_s": budget.get("max_resolve_s"),
        }
    return facts


def restore_facts(side: Side) -> Facts:
    """Each restore drill (`backup/*restore-drill`): its status and how long it took, and the per-volume restore
    times it records (`restore_times: {volume: {seconds, rto_s}}`) when it records them."""
    results = _results(side, RESTORE_CHECKS)
    if not results:
        return None
    facts: dict[str, Any] = {}
    for check_id, result in results:
        facts[check_id] = {"status": result.status.value, "duration_s": round(result.duration_s, 1)}
        times = result.data.get("restore_times")
        for volume, measured in sorted(times.items()) if isinstance(times, dict) else []:
            measured = measured if isinstance(measured, dict) else {"seconds": measured}
            facts[f"{check_id} {volume}"] = {"seconds": measured.get("seconds"), "rto_s": measured.get("rto_s")}
    return facts


def image_facts(side: Side) -> Facts:
    """Each service's image over the side's statements (`run.stack.images`, later stages last): its reference, and
    its image ID and repository digest where the backend records them (a plain reference otherwise). An empty
    mapping is recorded too: nothing ran from an image."""
    return _stack_facts(side, "images", _image_value)


def version_facts(side: Side) -> Facts:
    """Each service's version as the running software reported it (`run.stack.versions`), where recorded."""
    return _stack_facts(side, "versions", lambda value: value if isinstance(value, str) else _compact(value))


def _stack_facts(side: Side, key: str, value_of: Callable[[Any], Any]) -> Facts:
    merged: dict[str, Any] | None = None
    for statement in side.statements:
        found = (statement.run.stack or {}).get(key)
        if isinstance(found, dict):
            merged = {**(merged or {}), **{str(k): value_of(v) for k, v in found.items()}}
    return merged


def _image_value(value: Any) -> dict[str, Any]:
    """An image as `{image, id, digest}` whatever the backend recorded: a reference string, or a mapping with the
    reference, the image ID and a repository digest (`repo@sha256:…`, kept as its `sha256:…`)."""
    if not isinstance(value, dict):
        return {"image": str(value), "id": None, "digest": None}
    digest = value.get("repo_digest") or value.get("digest") or next(iter(value.get("repo_digests") or []), None)
    return {
        "image": value.get("image") or value.get("ref"),
        "id": value.get("id") or value.get("image_id"),
        "digest": str(digest).rsplit("@", 1)[-1] if digest else None,
    }


def _same_image(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Same reference, and the same ID and digest wherever both sides record them (a seal made before IDs were
    recorded does not differ from one that records them only for that)."""
    return before["image"] == after["image"] and all(
        before[k] == after[k] for k in ("id", "digest") if before[k] and after[k]
    )


def _image_text(value: dict[str, Any]) -> str:
    text = str(value["image"] or "?")
    if value["digest"]:
        text += f"@{value['digest']}"
    if value["id"]:
        text += f" (id {str(value['id'])[:19]})"
    return text


def tool_facts(side: Side) -> Facts:
    """Each tool's version, over the side's statements (distinct versions joined: stages ran at one commit)."""
    seen: dict[str, list[str]] = {}
    for statement in side.statements:
        for tool, line in statement.run.tool_versions.items():
            match = _VERSION.search(str(line))
            version = match[0] if match else str(line).strip()
            if version not in seen.setdefault(tool, []):
                seen[tool].append(version)
    return {tool: " / ".join(sorted(versions)) for tool, versions in sorted(seen.items())} or None


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --- comparing ----------------------------------------------------------------------------------------------------


def compare(repo: Repo, a: Side, b: Side, today: datetime.date | None = None) -> Diff:
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    pairs: dict[str, tuple[Facts, Facts]] = {
        "criteria": (a.criteria, b.criteria),
        "checks": (a.checks, b.checks),
        "coverage": (coverage_facts(a), coverage_facts(b)),
        "drill": (drill_facts(a), drill_facts(b)),
        "restore": (restore_facts(a), restore_facts(b)),
        "waivers": (a.waivers, b.waivers),
        "images": (image_facts(a), image_facts(b)),
        "versions": (version_facts(a), version_facts(b)),
        "tools": (tool_facts(a), tool_facts(b)),
    }
    rules_a, rules_b = rule_facts(repo, a), rule_facts(repo, b)
    if rules_a is not None and rules_b is not None:
        pairs["rules"] = keyed_rules(rules_a, rules_b)
    else:
        pairs["rules"] = (None if rules_a is None else {}, None if rules_b is None else {})
    groups = {}
    for group in GROUPS:
        before, after = pairs[group]
        recorded = {(True, True): "both", (True, False): "a", (False, True): "b", (False, False): "neither"}[
            (before is not None, after is not None)
        ]
        result = GroupDiff(group, recorded)
        if recorded == "both":
            assert before is not None and after is not None
            result.changes = _changes(group, before, after)
            if group == "waivers":
                result.changes += [
                    Change(group, "expired", subject, None, value)
                    for subject, value in sorted(after.items())
                    if _date(value.get("expires")) and _date(value["expires"]) < today  # type: ignore[operator]
                ]
        groups[group] = result
    return Diff(a, b, groups)


def _changes(group: str, before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    ignored = _NOT_COMPARED.get(group, set())

    def compared(value: Any) -> Any:
        return {k: v for k, v in value.items() if k not in ignored} if isinstance(value, dict) else value

    def same(old: Any, new: Any) -> bool:
        return _same_image(old, new) if group == "images" else compared(old) == compared(new)

    changes = []
    for subject in sorted(set(before) | set(after), key=_natural):
        old, new = before.get(subject), after.get(subject)
        if old is None:
            changes.append(Change(group, "added", subject, None, new))
        elif new is None:
            changes.append(Change(group, "removed", subject, old, None))
        elif not same(old, new):
            changes.append(Change(group, "changed", subject, old, new))
    return sorted(changes, key=lambda c: CHANGE_KINDS.index(c.change))  # stable: subjects stay in order


def _natural(text: str) -> list[Any]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def _date(text: Any) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(str(text))
    except ValueError:
        return None


def diff(repo: Repo, a: str, b: str | None, sprint: str | None = None, today: datetime.date | None = None) -> Diff:
    """A (a seal) against B (a seal), or against the open sprint when B is None."""
    side_a = sealed_side(repo, resolve(repo, a, "A"))
    side_b = sealed_side(repo, resolve(repo, b, "B")) if b is not None else open_side(repo, sprint)
    return compare(repo, side_a, side_b, today)


# --- telling it -----------------------------------------------------------------------------------------------


def describe(change: Change, words: dict[str, Any] = WORDS) -> str:
    """One change's detail in `words` (numbers, names and file paths are the same in every language)."""
    tell: Callable[[Any, Any, dict[str, Any]], str] = _DESCRIBERS.get(change.group, _describe_plain)
    if change.change == "expired":
        return words["expired_on"].format(date=change.after["expires"])
    return tell(change.before, change.after, words)


def _arrow(before: Any, after: Any, text: Callable[[Any], str]) -> str:
    if before is None:
        return text(after)
    if after is None:
        return text(before)
    return f"{text(before)} → {text(after)}"


def _verdict(value: dict[str, Any], words: dict[str, Any]) -> str:
    verdicts = words.get("verdict") or {}
    shown = verdicts.get(value["verdict"], value["verdict"])
    status = value.get("status")
    if status and status != value["verdict"]:
        shown += f" ({verdicts.get(status, status)})"
    return shown


def _describe_criterion(before: Any, after: Any, words: dict[str, Any]) -> str:
    text = _arrow(before, after, lambda v: _verdict(v, words))
    titles = [v["title"] for v in (before, after) if v is not None]
    title = titles[-1] if len(set(titles)) == 1 else " → ".join(repr(t) for t in titles)
    return f"{text} — {title}"


def _describe_check(before: Any, after: Any, words: dict[str, Any]) -> str:
    return _arrow(before, after, lambda v: _verdict(v, words))


def _describe_rule(before: Any, after: Any, words: dict[str, Any]) -> str:
    where = after or before
    place = f"{where['file']}:{where['line']}"
    if before is None or after is None:
        return place
    changed = []
    for key in ("expr", "for", "group", "file"):
        if before[key] != after[key]:
            changed.append(key if key == "expr" else f"{key} {before[key]} → {after[key]}")
    for key in ("labels", "annotations"):
        old, new = before[key], after[key]
        for name in sorted(set(old) | set(new)):
            if old.get(name) == new.get(name):
                continue
            if key == "annotations":  # long prose: naming it is enough
                changed.append(f"{key}.{name}")
            else:
                changed.append(f"{key}.{name} {old.get(name, '∅')} → {new.get(name, '∅')}")
    return f"{'; '.join(changed)} ({place})"


def _describe_coverage(before: Any, after: Any, words: dict[str, Any]) -> str:
    def covered(value: dict[str, Any]) -> str:
        names = [words["covered_by"].get(n, n) for n in value["covered_by"]]
        return ", ".join(names) if names else words["by_nothing"]

    return _arrow(before, after, covered)


def _seconds(value: Any, words: dict[str, Any]) -> str:
    return words["never"] if value is None else f"{value}s"


def _delta(before: Any, after: Any) -> str:
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return ""
    return f" ({after - before:+.1f}s)"


def _describe_drill(before: Any, after: Any, words: dict[str, Any]) -> str:
    parts = []
    for label, key, bound, stated in (
        ("fire", "fire_receiver_s", "fire_bound_s", "max_fire_s"),
        ("resolve", "resolve_receiver_s", "resolve_bound_s", "max_resolve_s"),
    ):
        old, new = (before or {}).get(key), (after or {}).get(key)
        if before is None or after is None or old == new:
            text = _seconds(old if after is None else new, words)
        else:
            text = f"{_seconds(old, words)} → {_seconds(new, words)}{_delta(old, new)}"
        latest = after or before
        limits = [f"{words[name]} ≤ {latest[k]}s" for name, k in (("bound", bound), ("budget", stated)) if latest[k]]
        parts.append(f"{words[label]} {text}" + (f" [{', '.join(limits)}]" if limits else ""))
    return " · ".join(parts)


def _describe_restore(before: Any, after: Any, words: dict[str, Any]) -> str:
    latest = after or before
    if "seconds" in latest:  # one volume's restore time
        if before is None or after is None:
            text = _seconds(latest["seconds"], words)
        else:
            old, new = before["seconds"], after["seconds"]
            text = f"{_seconds(old, words)} → {_seconds(new, words)}{_delta(old, new)}"
        return text + (f" ({words['rto']} {latest['rto_s']}s)" if latest.get("rto_s") else "")
    verdicts = words.get("verdict") or {}
    took = _arrow(before, after, lambda v: f"{v['duration_s']}s")
    if before is not None and after is not None:
        took += _delta(before["duration_s"], after["duration_s"])
    status = _arrow(before, after, lambda v: verdicts.get(v["status"], v["status"]))
    return f"{status}, {words['took']} {took}"


def _describe_waiver(before: Any, after: Any, words: dict[str, Any]) -> str:
    def text(value: dict[str, Any]) -> str:
        return words["expires"].format(date=value["expires"])

    latest = after or before
    renewed = before is not None and after is not None and before["expires"] != after["expires"]
    said = f"{text(before)} → {text(after)}" if renewed else text(latest)
    # A re-approved or re-justified waiver names what was rewritten (the prose itself is in the spec and the JSON).
    rewritten = [k for k in ("approver", "accepts", "justification") if before and after and before[k] != after[k]]
    return f"{said}; {words['approver'].format(approver=latest['approver'])}" + (
        f"; {', '.join(rewritten)}" if rewritten else ""
    )


def _describe_plain(before: Any, after: Any, words: dict[str, Any]) -> str:
    return _arrow(before, after, str)


_DESCRIBERS: dict[str, Callable[[Any, Any, dict[str, Any]], str]] = {
    "criteria": _describe_criterion,
    "checks": _describe_check,
    "rules": _describe_rule,
    "coverage": _describe_coverage,
    "drill": _describe_drill,
    "restore": _describe_restore,
    "waivers": _describe_waiver,
    "images": lambda before, after, words: _arrow(before, after, _image_text),
}


def text_lines(result: Diff) -> list[str]:
    """`sealgate diff`'s text: the two sides, then each group with one aligned line per change."""
    lines = [f"diff {result.a.label} → {result.b.label}"]
    for name, side in (("A", result.a), ("B", result.b)):
        if side.open:
            where = f"open sprint {side.sprint}, judged from its evidence at HEAD {side.commit[:12]}"
        else:
            assert side.seal_commit
            where = f"sprint {side.sprint}, seal {side.seal_commit[:12]} on commit {side.commit[:12]}, {side.sealed_at}"
        lines.append(f"  {name}  {side.label}: {where}")
    for group in GROUPS:
        found = result.groups[group]
        lines.append("")
        lines.append(WORDS["group"][group])
        if found.recorded != "both":
            lines.append(f"  {_not_recorded(found.recorded, result)}")
            continue
        if not found.changes:
            lines.append("  no change")
            continue
        width = min(max(len(c.subject) for c in found.changes), 56)
        for change in found.changes:
            lines.append(f"  {change.change:<8} {change.subject:<{width}}  {describe(change)}".rstrip())
    count = len(result.changes)
    per_group = ", ".join(f"{len(g.changes)} {name}" for name, g in result.groups.items() if g.changes)
    lines.append("")
    lines.append(f"{count} change(s)" + (f": {per_group}" if per_group else ""))
    return lines


def _not_recorded(recorded: str, result: Diff) -> str:
    if recorded == "neither":
        return "recorded by neither side"
    missing = result.b.label if recorded == "a" else result.a.label
    return f"not recorded by {missing}: not compared"
