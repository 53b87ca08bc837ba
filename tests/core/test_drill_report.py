"""The alert drill in the SEAL report (reports/drill.py), from the evidence of a real `--drill all` seal of F9.10 on the
compose backend (tests/fixtures/drill/f9_10_drill_all.json: the data `rules/alert-drill` recorded, as its evidence
holds it): the coverage table in both languages, the gantt's bars at the evidence's times, and the gantt fed to the
real Mermaid renderer — the `mermaid` package in Debian's headless Chromium, driven by `playwright-core`."""

from __future__ import annotations

import copy
import datetime
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from conftest import PROJECT_ROOT, need

from sealgate.reports.catalog import catalog
from sealgate.reports.drill import drill_view, gantt

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "drill" / "f9_10_drill_all.json"
RENDER = PROJECT_ROOT / "tests" / "render" / "mermaid_svg.cjs"
DRILLED = ["LLMProviderDown", "CircuitBreakerOpen", "APIDown", "LLMHighLatency", "LLMErrorRateHigh"]


def evidence() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def ms(iso: str) -> int:
    return round(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_the_fixture_is_a_whole_drill_all_run() -> None:
    data = evidence()
    assert [p["name"] for p in data["phases"]] == ["provider_failure", "api_down", "high_latency", "error_rate"]
    assert all(p["status"] == "passed" for p in data["phases"])
    assert sorted(a for p in data["phases"] for a in p["alerts"]) == sorted(DRILLED)


def test_gantt_bars_are_the_evidence_times_since_the_first_fault() -> None:
    data = evidence()
    text = gantt(catalog("en")["drill"], data["phases"])
    lines = text.splitlines()
    assert lines[:4] == [
        "gantt",
        "  title Alert drill, from each fault to each resolution",
        "  dateFormat x",
        "  axisFormat %M:%S",
    ]
    t0 = min(ms(p["fault_at"]) for p in data["phases"])
    for phase in data["phases"]:
        for alert in phase["alerts"]:
            section = lines.index(f"  section {alert} ({phase['name']})")
            events = phase["events"][alert]
            fault, pending = ms(phase["fault_at"]) - t0, ms(events["pending_prometheus"]["at"]) - t0
            firing = ms(events["fire_prometheus"]["at"]) - t0
            restored, delivered = ms(phase["restored_at"]) - t0, ms(events["resolve_receiver"]["at"]) - t0
            bars = lines[section + 1 : section + 7]
            assert (
                bars[0] == f"    fault injected → pending ({(pending - fault) / 1000:.1f} s) :done, {fault}, {pending}"
            )
            assert bars[1].startswith("    pending → firing (") and bars[1].endswith(f", {pending}, {firing}")
            assert bars[4].startswith("    restored → resolved in Prometheus (") and f":done, {restored}, " in bars[4]
            assert bars[5].endswith(f", {delivered}") or bars[5].endswith(f", {delivered + 1}")
    # Phases ran side by side: every phase's first bar starts within the first minute.
    assert all(ms(p["fault_at"]) - t0 < 60_000 for p in data["phases"])


def test_coverage_table_in_english_and_portuguese() -> None:
    data = evidence()
    en = drill_view(catalog("en"), data)
    pt = drill_view(catalog("pt-BR"), data)
    assert en is not None and pt is not None
    rows = {row["alert"]: row for row in en["coverage"]}
    # The rule files in order (api.yml, then llm.yml), each alert at its first definition.
    assert list(rows) == ["APIDown", "LLMHighLatency", "LLMErrorRateHigh", "CircuitBreakerOpen", "LLMProviderDown"]
    for row in rows.values():
        assert row["unit_test"] == "✅ `stack/prometheus/tests/alerts_test.yml`", row
        assert row["covered"] == "✅ unit test, drill", row
        assert row["drill"].startswith("✅ "), row
    latency = next(r for r in data["coverage"] if r["alert"] == "LLMHighLatency")["drill"]
    assert rows["LLMHighLatency"]["drill"] == (
        f"✅ high_latency: firing {latency['fire_prometheus_s']:.1f} s after the fault, at the receiver "
        f"{latency['fire_receiver_s']:.1f} s; resolution at the receiver {latency['resolve_receiver_s']:.1f} s after "
        "the restore"
    )
    assert en["coverage_summary"] == "5 alerting rules, 0 covered by nothing."
    assert pt["coverage_summary"] == "5 regras de alerta, 0 sem cobertura."
    assert {row["covered"] for row in pt["coverage"]} == {"✅ teste unitário, drill"}
    assert pt["coverage"][1]["drill"].startswith("✅ high_latency: disparou ")
    assert "falha injetada → pendente" in pt["gantt"] and "fault injected" not in pt["gantt"]
    assert en["phases"][0].startswith("`provider_failure`: ✅ passed in ")
    assert pt["phases"][0].startswith("`provider_failure`: ✅ aprovado em ")


def test_an_alert_covered_by_nothing_is_named() -> None:
    data = copy.deepcopy(evidence())
    row = next(r for r in data["coverage"] if r["alert"] == "LLMErrorRateHigh")
    row.update(unit_tests=[], drill={"phase": "error_rate", "status": "on request"}, covered_by=[])
    view = drill_view(catalog("en"), data)
    assert view is not None
    shown = next(r for r in view["coverage"] if r["alert"] == "LLMErrorRateHigh")
    assert shown == {
        "alert": "LLMErrorRateHigh",
        "rule": f"stack/prometheus/alerts/llm.yml:{row['line']}",
        "unit_test": "—",
        "drill": "phase error_rate runs only with `--drill all`",
        "budget": "—",  # evidence made before drills recorded budgets
        "waiver": "—",
        "covered": "❌ by nothing",
    }
    assert view["uncovered"] == ["LLMErrorRateHigh"]
    assert view["coverage_summary"] == "5 alerting rules, 1 covered by nothing."


def test_names_cannot_break_the_diagram_or_the_table() -> None:
    data = copy.deepcopy(evidence())
    phase = data["phases"][0]
    phase["events"]["odd:name;#x"] = phase["events"].pop("LLMProviderDown")
    phase["alerts"] = ["odd:name;#x", "CircuitBreakerOpen"]
    data["coverage"][0]["drill"] = {"phase": "a|b", "status": "failed"}
    text = gantt(catalog("en")["drill"], data["phases"])
    assert "  section odd name x (provider_failure)" in text
    view = drill_view(catalog("en"), data)
    assert view is not None and view["coverage"][0]["drill"] == "a\\|b: ❌ failed"


def test_no_phases_and_no_coverage_is_no_drill_section() -> None:
    assert drill_view(catalog("en"), {"intervals": {"scrape_s": 15}}) is None
    assert gantt(catalog("en")["drill"], []) == ""


# --- the real renderer -------------------------------------------------------------------------------------------


def mermaid_modules() -> Path:
    """Where .ci/setup-system.sh installs `mermaid` and `playwright-core` (outside the repository)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sealgate" / "mermaid"
    return Path(os.environ.get("SEALGATE_MERMAID_DIR") or default)


def render_svg(text: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    chromium = os.environ.get("SEALGATE_CHROMIUM") or shutil.which("chromium")
    modules = mermaid_modules() / "node_modules"
    need(node is not None, "node is not installed (bash .ci/setup-system.sh installs it)")
    need(chromium is not None, "Debian's chromium is not installed (bash .ci/setup-system.sh installs it)")
    for package, marker in (("mermaid", "dist/mermaid.min.js"), ("playwright-core", "package.json")):
        need(
            (modules / package / marker).is_file(),
            f"the npm package {package} is not in {modules} (bash .ci/setup-system.sh installs it there)",
        )
    return subprocess.run(
        [str(node), str(RENDER), str(mermaid_modules()), str(chromium)],
        input=text,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_real_mermaid_renders_the_gantt_naming_every_drilled_alert(tmp_path: Path) -> None:
    text = gantt(catalog("pt-BR")["drill"], evidence()["phases"])
    done = render_svg(text)
    assert done.returncode == 0, done.stderr
    svg = done.stdout
    (tmp_path / "drill.svg").write_text(svg)
    assert svg.startswith("<svg") and 'aria-roledescription="gantt"' in svg, svg[:300]
    for alert in DRILLED:
        assert f">{alert} (" in svg, f"{alert} is not named in the rendered SVG"
    assert "falha injetada → pendente" in svg


def test_the_real_mermaid_refuses_a_broken_gantt() -> None:
    """The renderer test can fail: a task line without its data is Mermaid's parse error, said on stderr."""
    text = gantt(catalog("en")["drill"], evidence()["phases"]) + "\n    a bar without its data\n"
    done = render_svg(text)
    assert done.returncode == 1, done.stdout[:300]
    assert "Parse error" in done.stderr, done.stderr


def test_each_drilled_alert_shows_its_bound_and_stated_budget_beside_what_was_measured() -> None:
    data = copy.deepcopy(evidence())
    data["budgets"] = [
        {"alert": "APIDown", "phase": "api_down", "fire_bound_s": 151.0, "resolve_bound_s": 90.0, "max_fire_s": 120,
         "max_resolve_s": None, "fire_prometheus_s": 70.0, "fire_receiver_s": 80.4, "resolve_receiver_s": 26.6,
         "over_budget": []},
        {"alert": "LLMProviderDown", "phase": "provider_failure", "fire_bound_s": 121.0, "resolve_bound_s": 110.0,
         "max_fire_s": 30, "max_resolve_s": None, "fire_prometheus_s": 40.0, "fire_receiver_s": 49.2,
         "resolve_receiver_s": 15.3,
         "over_budget": ["LLMProviderDown: delivered firing 49.2s after the fault, over its budget max_fire_s 30s (x)"]},
    ]  # fmt: skip
    en, pt = drill_view(catalog("en"), data), drill_view(catalog("pt-BR"), data)
    assert en is not None and pt is not None
    rows = {row["alert"]: row["budget"] for row in en["coverage"]}
    assert rows["APIDown"] == "fire ≤ 151.0 s · 120.0 s; resolve ≤ 90.0 s · —"
    assert rows["LLMProviderDown"] == (
        "fire ≤ 121.0 s · 30.0 s; resolve ≤ 110.0 s · — ❌ LLMProviderDown: delivered firing 49.2s after the fault, "
        "over its budget max_fire_s 30s (x)"
    )
    assert rows["LLMHighLatency"] == "—"  # not drilled in this run
    assert {r["alert"]: r["budget"] for r in pt["coverage"]}[
        "APIDown"
    ] == "disparo ≤ 151.0 s · 120.0 s; resolução ≤ 90.0 s · —"
