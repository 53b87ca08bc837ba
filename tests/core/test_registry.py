"""One check id, one definition: the registry answers to a renamed check's former ids, and refuses a second
definition of an id — a plugin adds checks, it never replaces one (the spec that loads it is bad input, exit 2,
naming both places)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, commit_all
from demo import make_demo_repo

from sealgate import cli
from sealgate.checks import library
from sealgate.kernel.errors import InputError
from sealgate.model.registry import DuplicateCheck, Registry
from sealgate.model.results import CheckDef
from sealgate.run.plan import open_spec


def noop(ctx: object) -> None:
    """A check that proves nothing."""


def other(ctx: object) -> None:
    """Another one."""


def test_a_former_id_resolves_to_the_check_it_became() -> None:
    registry = library()
    assert registry["env_config/breaker-defaults"] is registry["env_config/defaults"]
    assert "env_config/breaker-defaults" in registry
    assert "env_config/breaker-defaults" not in list(registry)  # listed once, by its current id
    assert registry.canonical("env_config/breaker-behaviour") == "env_config/behaviour"


def test_a_sealed_spec_naming_former_ids_still_loads_and_keeps_its_own_ids() -> None:
    """F9.10 was sealed with the circuit-breaker ids: its spec loads as written, so its evidence (keyed by the ids
    the spec names) is judged and verified as it was sealed."""
    spec = open_spec(PROJECT_ROOT, "F9.10")
    refs = {ref.id: ref for stage in spec.stages.values() for ref in stage.checks}
    assert refs["env_config/breaker-overrides"].definition is library()["env_config/overrides"]
    assert "env_config/overrides" not in refs


def test_a_second_definition_of_an_id_is_refused_naming_both() -> None:
    registry = Registry()
    registry.add(CheckDef("demo/x", "X", noop))
    registry.add(CheckDef("demo/x", "X again", noop))  # the same function registered again: a re-import
    with pytest.raises(DuplicateCheck) as refused:
        registry.add(CheckDef("demo/x", "X", other))
    message = str(refused.value)
    assert "check id 'demo/x' is already defined at" in message
    assert f"{Path(__file__).resolve()}:" in message and "test_registry.noop" in message
    assert "test_registry.other) may not define it again" in message


def test_an_alias_cannot_take_an_id_another_check_holds() -> None:
    registry = Registry()
    registry.add(CheckDef("demo/x", "X", noop))
    with pytest.raises(DuplicateCheck, match="check id 'demo/x' is already defined"):
        registry.add(CheckDef("demo/y", "Y", other, aliases=("demo/x",)))
    assert list(registry) == ["demo/x"]


THIEF = '''"""A plugin that tries to replace a library check with one that proves nothing."""

from sealgate.api.registry import check


@check("rules/promtool-check", title="promtool check (always passes)")
def promtool_check(ctx):
    pass
'''


def test_a_plugin_that_redefines_a_library_check_is_refused_naming_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_demo_repo(tmp_path)
    (root / "sprint" / "plugins" / "thief.py").write_text(THIEF)
    spec_file = root / "sprint" / "DEMO.yaml"
    spec_file.write_text(
        spec_file.read_text().replace(
            "plugins: [sprint/plugins/demo_checks.py]",
            "plugins: [sprint/plugins/demo_checks.py, sprint/plugins/thief.py]",
        )
    )
    commit_all(root, "a plugin that replaces a library check")
    with pytest.raises(InputError) as refused:
        open_spec(root, "DEMO")
    [problem] = refused.value.problems
    library_place = re.escape("sealgate/checks/rules.py:")
    assert problem.where == "sprint/DEMO.yaml:10"
    assert re.fullmatch(
        rf"plugin sprint/plugins/thief.py defines check 'rules/promtool-check' at sprint/plugins/thief.py:6, "
        rf"which {library_place}\d+ already defines",
        problem.what,
    ), problem.what
    assert "never replaces one" in problem.hint
    # Through the console script: bad input, exit 2, one line, nothing run.
    assert cli.main(["seal", "--repo", str(root), "--sprint", "DEMO", "--no-tag", "--backend", "local"]) == 2
    err = capsys.readouterr().err
    assert "sealgate: sprint/DEMO.yaml:10: plugin sprint/plugins/thief.py defines check 'rules/promtool-check'" in err
    assert not (root / "artifacts").exists()
    assert library()["rules/promtool-check"].func.__module__ == "sealgate.checks.rules"  # the library's stands
