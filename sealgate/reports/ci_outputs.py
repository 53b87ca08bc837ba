"""Machine-readable outputs for CI tools, written next to the report from the same judgement:

- `reports/out/criteria.junit.xml`: one test case per acceptance criterion (failed/errored/stale → failure,
  skipped/missing → skipped, waived → skipped with the waiver, passed → pass), so CI test views show the gate;
- `reports/out/findings.sarif`: SARIF 2.1.0, one result per finding with its file and line (inline on a PR), and one
  per non-passed check without findings.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sealgate import __version__
from sealgate.evidence.judge import Judgement, Verdict
from sealgate.kernel.fsutil import atomic_write
from sealgate.model.results import Severity

OUT_DIR = "reports/out"
SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def criteria_junit(judgement: Judgement) -> bytes:
    spec = judgement.spec
    criteria = judgement.criteria
    failures = sum(c.verdict in (Verdict.FAILED, Verdict.ERRORED, Verdict.STALE) for c in criteria)
    skipped = sum(c.verdict in (Verdict.SKIPPED, Verdict.MISSING, Verdict.WAIVED) for c in criteria)
    suites = ET.Element("testsuites", name=f"SEAL {spec.id}")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"SEAL {spec.id} criteria",
        tests=str(len(criteria)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for criterion in criteria:
        case = ET.SubElement(
            suite, "testcase", classname=f"sealgate.{spec.slug}", name=f"{criterion.id} {criterion.title}"
        )
        if criterion.verdict is Verdict.WAIVED and criterion.waiver is None:
            text = "; ".join(f"{c.check_id}: {w.justification}" for c in criterion.checks for w in c.waivers)
            ET.SubElement(case, "skipped", message=f"waived: {text}")
        elif criterion.verdict is Verdict.WAIVED and criterion.waiver is not None:
            ET.SubElement(case, "skipped", message=f"waived: {criterion.waiver.justification}")
        elif criterion.verdict in (Verdict.SKIPPED, Verdict.MISSING):
            ET.SubElement(case, "skipped", message=f"{criterion.verdict.value}: {criterion.reason}")
        elif criterion.verdict is not Verdict.PASSED:
            failure = ET.SubElement(case, "failure", message=f"{criterion.verdict.value}: {criterion.reason}")
            failure.text = "\n".join(f"{c.check_id}: {c.verdict.value} {c.reason}" for c in criterion.checks)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def findings_sarif(judgement: Judgement) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for stage in judgement.stages.values():
        for cv in stage.checks:
            rules.setdefault(cv.check_id, {"id": cv.check_id, "shortDescription": {"text": cv.title}})
            findings = cv.result.findings if cv.result else []
            for finding in findings:
                result: dict[str, Any] = {
                    "ruleId": cv.check_id,
                    "level": SARIF_LEVEL[finding.severity],
                    "message": {"text": finding.summary},
                }
                if finding.location.file:
                    region = {"startLine": finding.location.line} if finding.location.line else {}
                    result["locations"] = [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": finding.location.file},
                                **({"region": region} if region else {}),
                            }
                        }
                    ]
                results.append(result)
            if cv.verdict not in (Verdict.PASSED, Verdict.WAIVED) and not findings:
                results.append(
                    {
                        "ruleId": cv.check_id,
                        "level": "error"
                        if cv.verdict in (Verdict.FAILED, Verdict.ERRORED, Verdict.STALE)
                        else "warning",
                        "message": {"text": f"{cv.verdict.value}: {cv.reason}"},
                    }
                )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "sealgate", "version": __version__, "rules": list(rules.values())}},
                "results": results,
            }
        ],
    }


def write_ci_outputs(root: Path, judgement: Judgement) -> list[Path]:
    out = root / OUT_DIR
    junit, sarif = out / "criteria.junit.xml", out / "findings.sarif"
    atomic_write(junit, criteria_junit(judgement))
    atomic_write(sarif, (json.dumps(findings_sarif(judgement), indent=2, sort_keys=True) + "\n").encode())
    return [junit, sarif]
