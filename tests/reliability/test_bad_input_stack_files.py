"""Property-based bad input for the stack's own files: mutated, truncated and random Prometheus rule files,
Alertmanager configs, Grafana dashboards and compose files fed to every offline check that reads them (run the way
the engine runs them, with the real promtool, amtool and `docker compose config`) and to the `ComposeFile` loader
end in a clean result or a clean error — never an unhandled exception ("check crashed: ..."), never a failure that
does not say where (file, and line or JSON path where the parser knows it).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from checkrun import run_checks
from conftest import PROJECT_ROOT, make_project_copy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import node_paths, replaced, values

from sealgate.backends.composefile import ComposeFile
from sealgate.backends.errors import StackError
from sealgate.kernel.errors import SealgateError
from sealgate.model.results import CheckResult, Severity, Status

RULE_FILES = ("stack/prometheus/alerts/api.yml", "stack/prometheus/alerts/llm.yml")
ALERTMANAGER = "stack/prometheus/alertmanager.yml"
DASHBOARD = "stack/grafana/dashboards/llm_metrics.json"
COMPOSE = "stack/docker-compose.yml"

# The offline checks (needs_stack=False) that read each file, plus what they require in their stage.
RULE_CHECKS = (
    2,
    ["rules/promtool-check", "rules/promtool-test", "rules/inventory", "rules/alertmanager-config", "rules/routing"],
)
ALERTMANAGER_CHECKS = (2, ["rules/alertmanager-config", "rules/routing"])
DASHBOARD_CHECKS = (5, ["dashboard/provisioning", "dashboard/json-structure"])
COMPOSE_CHECKS = (
    1,
    [
        "containerize/compose-services",
        "containerize/images-pinned",
        "containerize/network",
        "containerize/volumes",
        "containerize/config-mounts",
        "containerize/ports-loopback",
    ],
)
# dashboard/provisioning reads the compose file too (through ComposeFile): it must also fail cleanly on it.
COMPOSE_DASHBOARD_CHECKS = (5, ["dashboard/provisioning"])

ORIGINAL = {name: (PROJECT_ROOT / name).read_text() for name in (*RULE_FILES, ALERTMANAGER, DASHBOARD, COMPOSE)}
PARSED = {
    name: (json.loads(text) if name.endswith(".json") else yaml.safe_load(text)) for name, text in ORIGINAL.items()
}

NODES = {name: node_paths(document) for name, document in PARSED.items()}


def _mutated(name: str, path: tuple[Any, ...], value: object) -> str:
    """The file's document with the node at `path` replaced by `value`, written back in the file's format."""
    return _dump(name, replaced(PARSED[name], path, value))


def _dump(name: str, document: object) -> str:
    if name.endswith(".json"):
        return json.dumps(document, indent=2)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _write(root: Path, name: str, text: str) -> None:
    """Put `text` in `name` and every other stack file back as committed (one project copy serves all examples)."""
    for other, original in ORIGINAL.items():
        (root / other).write_text(text if other == name else original)


def _assert_clean(results: dict[str, CheckResult], target: str, expected: list[str]) -> None:
    """Every check ran to a verdict; whatever is not passed says why, and a failure says where."""
    assert sorted(results) == sorted(expected), results
    for check_id, result in results.items():
        described = f"{check_id}: {result.status.value}: {result.reason!r} {[str(f) for f in result.findings]}"
        assert not result.reason.startswith("check crashed:"), described
        if result.status not in (Status.FAILED, Status.ERRORED):
            continue
        assert result.reason.strip(), described
        errors = [f for f in result.findings if f.severity is Severity.ERROR]
        for finding in errors:
            assert finding.location.file, f"finding without a file: {described}"
            if finding.location.file == target and target.endswith(".json"):
                assert finding.location.json_path or finding.location.line, f"no JSON path: {described}"
        if result.status is Status.FAILED and not errors:
            assert target in result.reason, f"failure names neither a finding nor {target}: {described}"


def _run(root: Path, name: str, text: str, checks: tuple[int, list[str]]) -> None:
    _write(root, name, text)
    stage, only = checks
    _assert_clean(run_checks(root, stage, only), name, only)


@pytest.fixture
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project copy per test function; each example rewrites the file under test."""
    return make_project_copy(tmp_path_factory.mktemp("stack-files") / "project")


SLOW = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


# --- Prometheus rule files → rules/promtool-check, promtool-test, inventory, routing ------------------------------

rule_nodes = st.sampled_from(RULE_FILES).flatmap(lambda name: st.tuples(st.just(name), st.sampled_from(NODES[name])))


@settings(max_examples=20, **SLOW)
@given(where=rule_nodes, value=values)
def test_mutated_rule_file_fails_cleanly_in_every_offline_rules_check(
    project: Path, where: tuple[str, tuple[Any, ...]], value: object
) -> None:
    name, path = where
    _run(project, name, _mutated(name, path, value), RULE_CHECKS)


@settings(max_examples=12, **SLOW)
@given(name=st.sampled_from(RULE_FILES), cut=st.floats(0, 1), junk=st.text(max_size=20))
def test_truncated_or_corrupted_rule_file_fails_cleanly(project: Path, name: str, cut: float, junk: str) -> None:
    text = ORIGINAL[name]
    _run(project, name, text[: int(cut * len(text))] + junk, RULE_CHECKS)


@settings(max_examples=6, **SLOW)
@given(document=values)
def test_random_rule_file_fails_cleanly(project: Path, document: object) -> None:
    _run(project, RULE_FILES[0], _dump(RULE_FILES[0], document), RULE_CHECKS)


# --- Alertmanager config → rules/alertmanager-config, rules/routing ----------------------------------------------


@settings(max_examples=60, **SLOW)
@given(path=st.sampled_from(NODES[ALERTMANAGER]), value=values)
def test_mutated_alertmanager_config_fails_cleanly(project: Path, path: tuple[Any, ...], value: object) -> None:
    _run(project, ALERTMANAGER, _mutated(ALERTMANAGER, path, value), ALERTMANAGER_CHECKS)


@settings(max_examples=25, **SLOW)
@given(cut=st.floats(0, 1), junk=st.text(max_size=20))
def test_truncated_or_corrupted_alertmanager_config_fails_cleanly(project: Path, cut: float, junk: str) -> None:
    text = ORIGINAL[ALERTMANAGER]
    _run(project, ALERTMANAGER, text[: int(cut * len(text))] + junk, ALERTMANAGER_CHECKS)


@settings(max_examples=20, **SLOW)
@given(document=values)
def test_random_alertmanager_config_fails_cleanly(project: Path, document: object) -> None:
    _run(project, ALERTMANAGER, _dump(ALERTMANAGER, document), ALERTMANAGER_CHECKS)


# --- Grafana dashboard JSON → dashboard/json-structure, dashboard/provisioning ------------------------------------


@settings(max_examples=150, **SLOW)
@given(path=st.sampled_from(NODES[DASHBOARD]), value=values)
def test_mutated_dashboard_fails_cleanly_with_a_json_path(project: Path, path: tuple[Any, ...], value: object) -> None:
    _run(project, DASHBOARD, _mutated(DASHBOARD, path, value), DASHBOARD_CHECKS)


@settings(max_examples=50, **SLOW)
@given(cut=st.floats(0, 1), junk=st.text(max_size=20))
def test_truncated_or_corrupted_dashboard_fails_cleanly(project: Path, cut: float, junk: str) -> None:
    text = ORIGINAL[DASHBOARD]
    _run(project, DASHBOARD, text[: int(cut * len(text))] + junk, DASHBOARD_CHECKS)


@settings(max_examples=50, **SLOW)
@given(document=st.one_of(values.map(json.dumps), st.text(max_size=60)))
def test_random_dashboard_text_or_non_object_json_fails_cleanly(project: Path, document: str) -> None:
    _run(project, DASHBOARD, document, DASHBOARD_CHECKS)


# --- Compose file → the static containerize checks, dashboard/provisioning and ComposeFile ------------------------


def _load_compose_file(root: Path, text: str) -> None:
    """ComposeFile loads, and what the backends and preflight then read from it answers; or it refuses with
    sealgate's own error naming the file."""
    path = root / COMPOSE
    path.write_text(text)
    try:
        compose = ComposeFile(path, {})
        compose.enabled({"grafana"})
        for key in compose.volume_keys():
            compose.volume_name(key, "sealgate-test")
        for service in compose.services.values():
            _ = service.image, service.working_dir
            service.mounts(compose.base)
            service.command()
            service.entrypoint()
            service.environment()
            service.published_ports()
    except SealgateError as exc:
        assert exc.problems, exc
        assert all(p.what for p in exc.problems), exc
        assert COMPOSE in str(exc), exc


def _run_compose_checks(root: Path, text: str, compose_v2: bool) -> None:
    """The static containerize checks resolve the file through `docker compose config` where Compose v2 is
    installed, else parse it themselves: both paths must fail cleanly."""
    from sealgate.analysis import compose as containerize

    with pytest.MonkeyPatch.context() as patch:
        if not compose_v2:
            patch.setattr(containerize, "shutil", SimpleNamespace(which=lambda name: None))
        _run(root, COMPOSE, text, COMPOSE_CHECKS)


@settings(max_examples=30, **SLOW)
@given(path=st.sampled_from(NODES[COMPOSE]), value=values, compose_v2=st.booleans())
def test_mutated_compose_file_fails_cleanly_in_static_checks_and_loader(
    project: Path, path: tuple[Any, ...], value: object, compose_v2: bool
) -> None:
    text = _mutated(COMPOSE, path, value)
    _load_compose_file(project, text)
    _run_compose_checks(project, text, compose_v2)
    _run(project, COMPOSE, text, COMPOSE_DASHBOARD_CHECKS)


@settings(max_examples=15, **SLOW)
@given(cut=st.floats(0, 1), junk=st.text(max_size=20), compose_v2=st.booleans())
def test_truncated_or_corrupted_compose_file_fails_cleanly(
    project: Path, cut: float, junk: str, compose_v2: bool
) -> None:
    original = ORIGINAL[COMPOSE]
    text = original[: int(cut * len(original))] + junk
    _load_compose_file(project, text)
    _run_compose_checks(project, text, compose_v2)
    _run(project, COMPOSE, text, COMPOSE_DASHBOARD_CHECKS)


@settings(max_examples=10, **SLOW)
@given(document=values, compose_v2=st.booleans())
def test_random_compose_file_fails_cleanly(project: Path, document: object, compose_v2: bool) -> None:
    text = _dump(COMPOSE, document)
    _load_compose_file(project, text)
    _run_compose_checks(project, text, compose_v2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(NODES[COMPOSE]), value=values)
def test_mutated_compose_file_loads_or_raises_sealgate_error(
    tmp_path: Path, path: tuple[Any, ...], value: object
) -> None:
    (tmp_path / "stack").mkdir(exist_ok=True)
    _load_compose_file(tmp_path, _mutated(COMPOSE, path, value))


# --- regressions: the exact inputs hypothesis found crashing, each now a clean, located failure -------------------


def _failed_at(results: dict[str, CheckResult], check_id: str, file: str) -> list[str]:
    """The check failed (not crashed) with error findings in `file`; returns their text for further asserts."""
    result = results[check_id]
    assert result.status is Status.FAILED, f"{check_id}: {result.status.value}: {result.reason}"
    located = [f for f in result.findings if f.severity is Severity.ERROR and f.location.file == file]
    assert located, f"{check_id}: no finding in {file}: {[str(f) for f in result.findings]}"
    return [str(f) for f in located]


def _edited(name: str, old: str, new: str) -> tuple[str, int]:
    """The committed file with `old` (whole lines, once) replaced by `new`, and the line of the first changed line."""
    text = ORIGINAL[name]
    assert text.count(old) == 1, f"{name}: anchor {old!r} not found exactly once"
    pairs = zip(old.splitlines(), new.splitlines(), strict=False)  # `new` may add lines
    changed = next((i for i, (was, now) in enumerate(pairs) if was != now), len(old.splitlines()))
    return text.replace(old, new), text[: text.index(old)].count("\n") + 1 + changed


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("groups:\n", "groups: 1\nold_groups:\n", "$.groups must be a list, not int 1"),
        ("    rules:\n", "    rules: 1\n    old_rules:\n", "$.groups[0].rules must be a list, not int 1"),
        (
            "        labels:\n          severity: critical\n",
            "        labels: x\n",
            "$.groups[0].rules[0].labels must be a mapping, not str 'x'",
        ),
        (
            '        annotations:\n          summary: "techno-os-api down',
            '        annotations: 1\n        old_annotations:\n          summary: "techno-os-api down',
            "$.groups[0].rules[0].annotations must be a mapping, not int 1",
        ),
    ],
)
def test_rule_file_with_a_wrong_type_fails_at_its_line_instead_of_crashing(
    project: Path, old: str, new: str, what: str
) -> None:
    name = RULE_FILES[0]
    text, line = _edited(name, old, new)
    _write(project, name, text)
    results = run_checks(project, 2, ["rules/promtool-check"])
    assert f"{name}:{line}: {what}" in _failed_at(results, "rules/promtool-check", name)


def test_promtool_error_without_a_position_is_a_finding_without_line_0(project: Path) -> None:
    # promtool says `api.yml: 0:0: group "api", rule 1, "": one of 'record' or 'alert' must be set`: a finding at
    # line 0 made the stage's evidence fail its schema (EvidenceError), losing every result of the stage.
    name = RULE_FILES[0]
    _write(project, name, _mutated(name, ("groups", 0, "rules", 0, "alert"), [1]))
    results = run_checks(project, 2, ["rules/promtool-check"])
    findings = _failed_at(results, "rules/promtool-check", name)
    assert any("one of 'record' or 'alert' must be set" in f for f in findings), findings
    assert all(f.location.line != 0 for f in results["rules/promtool-check"].findings)


def test_tool_output_that_is_not_utf8_is_recorded_not_a_crash(project: Path) -> None:
    # promtool quotes the file's first bytes cut at a byte count, here inside a 4-byte character: the check crashed
    # decoding its output (UnicodeDecodeError in Context.run).
    name = RULE_FILES[0]
    _write(project, name, "\U00010000\U00010000\u0800")
    results = run_checks(project, 2, ["rules/promtool-check"])
    assert any("cannot unmarshal" in f for f in _failed_at(results, "rules/promtool-check", name))


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("route:\n", "route: 1\nold_route:\n", "$.route: 1 is not of type 'object', 'null'"),
        ("  routes:\n", "  routes: 1\n  old_routes:\n", "$.route.routes: 1 is not of type 'array', 'null'"),
        ("receivers:\n", "receivers: 1\nold_receivers:\n", "$.receivers: 1 is not of type 'array', 'null'"),
        (
            "  - name: console-log\n    webhook_configs:\n",
            "  - name: console-log\n    webhook_configs: x\n    old_webhook_configs:\n",
            "$.receivers[0].webhook_configs: 'x' is not of type 'array', 'null'",
        ),
        (
            "  - name: oncall-critical\n    webhook_configs:\n",
            "  - name: oncall-critical\n    webhook_configs:\n      - null\n",
            "$.receivers[1].webhook_configs[0]: None is not of type 'object'",
        ),
        # hypothesis found these crashing the search for inline secrets ("'bool' object has no attribute 'get'").
        ("global:\n", "global: true\nold_global:\n", "$.global: True is not of type 'object', 'null'"),
        (
            "    slack_configs:\n",
            "    slack_configs: true\n    old_slack_configs:\n",
            "$.receivers[1].slack_configs: True is not of type 'array', 'null'",
        ),
        (
            "    pagerduty_configs:\n      - routing_key_file",
            "    pagerduty_configs:\n      - http_config: true\n        routing_key_file",
            "$.receivers[1].pagerduty_configs[0].http_config: True is not of type 'object', 'null'",
        ),
    ],
)
def test_alertmanager_config_with_a_wrong_type_fails_at_its_line_instead_of_crashing(
    project: Path, old: str, new: str, what: str
) -> None:
    text, line = _edited(ALERTMANAGER, old, new)
    _write(project, ALERTMANAGER, text)
    results = run_checks(project, 2, ALERTMANAGER_CHECKS[1])
    assert f"{ALERTMANAGER}:{line}: {what}" in _failed_at(results, "rules/alertmanager-config", ALERTMANAGER)
    assert results["rules/routing"].status is Status.ERRORED  # its prerequisite did not pass


def test_alertmanager_config_that_is_a_list_is_refused_not_read_as_pairs(project: Path) -> None:
    _write(project, ALERTMANAGER, "- [route, x]\n")
    results = run_checks(project, 2, ["rules/alertmanager-config"])
    assert any(
        "is not of type 'object', 'null'" in f for f in _failed_at(results, "rules/alertmanager-config", ALERTMANAGER)
    )


@pytest.mark.parametrize(
    ("path", "value", "json_path"),
    [
        (("panels",), 1, "$.panels"),
        (("panels", 0, "title"), [], "$.panels[0].title"),
        (("panels", 0, "targets"), 1, "$.panels[0].targets"),
        (("panels", 0, "datasource", "uid"), {}, "$.panels[0].datasource.uid"),
        (("panels", 0, "fieldConfig"), 1, "$.panels[0].fieldConfig"),
        (("panels", 0, "fieldConfig", "defaults"), "x", "$.panels[0].fieldConfig.defaults"),
        (("panels", 0, "fieldConfig", "defaults", "thresholds"), 1, "$.panels[0].fieldConfig.defaults.thresholds"),
        (
            ("panels", 0, "fieldConfig", "defaults", "thresholds", "steps"),
            1,
            "$.panels[0].fieldConfig.defaults.thresholds.steps",
        ),
        (("panels", 3, "fieldConfig", "defaults", "mappings"), 1, "$.panels[3].fieldConfig.defaults.mappings"),
        (
            ("panels", 3, "fieldConfig", "defaults", "mappings", 0, "options"),
            "x",
            "$.panels[3].fieldConfig.defaults.mappings[0].options",
        ),
        (("tags",), 1, "$.tags"),
        # Read by panel_queries for the live query checks: `"|".join(value)` crashed on a number.
        (
            ("templating",),
            {"list": [{"name": "x", "current": {"value": [1]}}]},
            "$.templating.list[0].current.value[0]",
        ),
    ],
)
def test_dashboard_with_a_wrong_type_fails_at_its_json_path_instead_of_crashing(
    project: Path, path: tuple[Any, ...], value: object, json_path: str
) -> None:
    _write(project, DASHBOARD, _mutated(DASHBOARD, path, value))
    results = run_checks(project, 5, ["dashboard/json-structure"])
    _failed_at(results, "dashboard/json-structure", DASHBOARD)
    paths = [f.location.json_path for f in results["dashboard/json-structure"].findings]
    assert json_path in paths, paths


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (("services", "api"), 1, "$.services.api: a service must be a mapping, found int"),
        (("services", "api"), [1], "$.services.api: a service must be a mapping, found list"),
        (("services", "grafana", "profiles"), 1, "$.services.grafana.profiles: must be a list, found int"),
        (("services", "api", "volumes"), 1, "$.services.api.volumes: must be a list, found int"),
        (
            ("services", "api", "volumes", 0),
            None,
            "$.services.api.volumes[0]: must be SOURCE:TARGET text or a mapping, found null",
        ),
        (("services", "api", "environment"), "x", "$.services.api.environment: must be a list or a mapping, found str"),
        (("services", "api", "networks"), 1, "$.services.api.networks: must be a list or a mapping, found int"),
        (("services", "api", "networks", 0), [1], "$.services.api.networks[0]: must be a network name, found list"),
        (
            ("services", "api", "ports", 0),
            "a:b:c",
            "$.services.api.ports[0]: 'a:b:c' is not a port mapping sealgate can read",
        ),
        (
            ("services", "api", "ports", 0),
            [{"a": "b"}],
            "$.services.api.ports[0]: [{'a': 'b'}] is not a port mapping sealgate can read",
        ),
        (("volumes",), "x", "$.volumes: must be a mapping of volume names, found str"),
        (("volumes", "grafana_data"), 1, "$.volumes.grafana_data: must be a mapping (or empty), found int"),
        (("networks",), [1], "$.networks: must be a mapping of network names, found list"),
    ],
)
def test_compose_file_with_a_wrong_type_raises_stack_error_naming_file_and_path(
    tmp_path: Path, path: tuple[Any, ...], value: object, where: str
) -> None:
    compose = tmp_path / COMPOSE
    compose.parent.mkdir()
    compose.write_text(_mutated(COMPOSE, path, value))
    with pytest.raises(StackError) as raised:
        ComposeFile(compose, {})
    assert f"{compose}: {where}" in str(raised.value)


def test_compose_file_that_is_not_utf8_raises_stack_error(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_bytes(b"services:\n  api: {image: \xff}\n")
    with pytest.raises(StackError, match="cannot read"):
        ComposeFile(compose, {})


def test_dashboard_provisioning_fails_cleanly_on_a_compose_service_of_the_wrong_type(project: Path) -> None:
    _write(project, COMPOSE, _mutated(COMPOSE, ("services", "grafana", "volumes"), [1]))
    result = run_checks(project, 5, ["dashboard/provisioning"])["dashboard/provisioning"]
    assert result.status is Status.FAILED, result.reason
    assert result.reason.startswith(f"{COMPOSE}: ") and "$.services.grafana.volumes[0]" in result.reason


@pytest.mark.parametrize("compose_v2", [True, False], ids=["docker-compose-config", "parsed-here"])
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- services\n", f"{COMPOSE}:1: a compose file is a YAML mapping (services:, volumes:, ...), not ['services']"),
        ("services: 1\n", f"{COMPOSE}: "),
        (_mutated(COMPOSE, ("services", "api"), [1]), f"{COMPOSE}: "),
        (_mutated(COMPOSE, ("services", "api", "networks", 0), 1), f"{COMPOSE}: "),
    ],
)
def test_static_containerize_checks_fail_cleanly_on_a_malformed_compose_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, compose_v2: bool, text: str, reason: str
) -> None:
    # The profiles are gathered before Compose reads the file (a crash on `services: 1` or a list service), and the
    # fallback without Compose v2 read services/networks of any type: both are now a failure naming the file.
    from sealgate.analysis import compose as containerize

    if not compose_v2:
        monkeypatch.setattr(containerize, "shutil", SimpleNamespace(which=lambda name: None))
    _write(project, COMPOSE, text)
    results = run_checks(project, 1, COMPOSE_CHECKS[1])
    _assert_clean(results, COMPOSE, COMPOSE_CHECKS[1])
    for check_id, result in results.items():
        assert result.status is Status.FAILED, f"{check_id}: {result.status.value}: {result.reason}"
        assert result.reason.startswith(reason), f"{check_id}: {result.reason}"
