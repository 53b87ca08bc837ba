"""What promtool says, made into located findings: `promtool check rules` output (every problem at the file and
line promtool names, a duplicated rule at its second definition), and `promtool test rules` output as JUnit XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sealgate.analysis.rulefiles import Rule
from sealgate.kernel.text import first_line

if TYPE_CHECKING:  # only for typing: `sealgate lint` runs without the check API's imports
    from sealgate.api.context import Context

_PROMTOOL_LOCATED = re.compile(r"^(?P<file>[^\s:][^:]*): (?P<line>\d+):(?P<col>\d+): (?P<what>.+)$")


_PROMTOOL_YAML = re.compile(r"^(?P<file>[^\s:][^:]*): yaml: line (?P<line>\d+): (?P<what>.+)$")


_PROMTOOL_YAML_LINE = re.compile(r"^line (?P<line>\d+): (?P<what>.+)$")


@dataclass(frozen=True)
class ToolProblem:
    file: str
    line: int | None
    what: str


def promtool_problems(output: str, rules: list[Rule]) -> list[ToolProblem]:
    """Problems from `promtool check rules` output (stdout and stderr interleaved, as promtool wrote them), each at
    the file promtool names: located errors carry their own file and line; the rest — `lint error` blocks (a
    duplicated rule, pointed at its second definition), `yaml: unmarshal errors:` lists — belong to the file of the
    last `Checking FILE` header."""
    problems: list[ToolProblem] = []
    current = ""
    lines = output.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if line.startswith("Checking "):
            current = line[len("Checking ") :].strip()
            continue
        if not line or line == "FAILED:" or line.startswith("SUCCESS:"):
            continue
        match = _PROMTOOL_LOCATED.match(line) or _PROMTOOL_YAML.match(line)
        if match:
            # promtool prints `0:0:` when it has no position (e.g. a rule with neither alert nor record).
            problems.append(ToolProblem(match["file"], int(match["line"]) or None, match["what"]))
            continue
        if line.startswith("lint error"):
            index = _duplicates(lines, index, line, current, rules, problems)
            continue
        file, _, what = line.partition(": ")
        if what and file == current:  # `f.yml: yaml: unmarshal errors:` then `  line 1: ...` lines
            while index < len(lines) and _PROMTOOL_YAML_LINE.match(lines[index].strip()):
                item = _PROMTOOL_YAML_LINE.match(lines[index].strip())
                assert item is not None
                problems.append(ToolProblem(file, int(item["line"]) or None, f"{what} {item['what']}"))
                index += 1
            if not problems or problems[-1].file != file or not what.endswith(":"):
                problems.append(ToolProblem(file, None, what))
            continue
        problems.append(ToolProblem(current, None, line))
    unique: dict[ToolProblem, None] = dict.fromkeys(problems)  # promtool repeats unmarshal errors
    return list(unique)


def _duplicates(
    lines: list[str], index: int, header: str, file: str, rules: list[Rule], problems: list[ToolProblem]
) -> int:
    """A `lint error N duplicate rule(s) found.` block: `Metric: NAME`, `Label(s):`, tab-indented `k: v` lines per
    duplicate. Each becomes a problem at the duplicate's second definition in `file`; returns the next line."""
    while index < len(lines) and lines[index].startswith("Metric: "):
        name = lines[index][len("Metric: ") :].strip()
        index += 1
        labels: dict[str, str] = {}
        if index < len(lines) and lines[index].strip() == "Label(s):":
            index += 1
            while index < len(lines) and lines[index].startswith("\t"):
                key, _, value = lines[index].strip().partition(": ")
                labels[key] = value
                index += 1
        same = [r for r in rules if r.file == file and r.name == name and r.labels == labels]
        shown = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        what = f"lint error: duplicate rule {name}{{{shown}}} ({header.removeprefix('lint error ')})"
        problems.append(ToolProblem(file, same[1].line if len(same) > 1 else None, what))
    if index < len(lines) and lines[index].startswith("Might cause"):
        index += 1
    return index


def promtool_findings(ctx: Context, output: str, rules: list[Rule]) -> int:
    """Findings from promtool's output at the file:line it names (see promtool_problems); how many it made."""
    problems = promtool_problems(output, rules)
    for problem in problems:
        ctx.finding(f"promtool: {problem.what}", file=problem.file or None, line=problem.line)
    return len(problems)


def junit_from_promtool(suites: list[tuple[str, list[tuple[str, str | None]], str]]) -> str:
    """JUnit XML from promtool's text output: suites of (file, [(test name, failure text or None)], error)."""
    root = ET.Element("testsuites", name="promtool test rules")
    for file, cases, error in suites:
        failures = sum(1 for _name, failure in cases if failure is not None)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(max(len(cases), 1)),
            failures=str(failures),
            errors="1" if error else "0",
        )
        if error:
            case = ET.SubElement(suite, "testcase", classname=file, name=f"{file} (load)")
            ET.SubElement(case, "error", message=first_line(error)[:200]).text = error
        for name, failure in cases:
            case = ET.SubElement(suite, "testcase", classname=file, name=name)
            if failure is not None:
                ET.SubElement(case, "failure", message=first_line(failure)[:200]).text = failure
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def failed_tests(stderr: str, names: list[str]) -> dict[str, str]:
    """Test name -> its failure text, from promtool 2.x's `FAILED:` blocks (each starts `    name: <test>,`)."""
    failures: dict[str, str] = {}
    current: str | None = None
    for line in stderr.splitlines():
        stripped = line.strip()
        if stripped.startswith("name: "):
            candidate = stripped[len("name: ") :].rstrip(",")
            current = candidate if candidate in names else None
            if current is not None:
                failures.setdefault(current, "")
            continue
        if current is not None:
            failures[current] += line + "\n"
    return failures
