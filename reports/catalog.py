"""The report's language catalogs (`reports/i18n/<language>.yaml`): every fixed word of the SEAL report in that
language, and the check library's titles translated into it.

A check's title, wherever one is shown (evidence, report, JUnit/SARIF), is the sprint spec's own `title:` for it when
it gives one, else the catalog's title for the check's id in the spec's language, else the title the check was
registered with (English).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from sealgate.sprint.spec import Spec


@cache
def catalog(language: str) -> dict[str, Any]:
    text = (resources.files("sealgate.reports") / "i18n" / f"{language}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def check_title(spec: Spec, check_id: str, fallback: str | None = None) -> str:
    """The title of `check_id` in `spec`'s report: the spec's `title:`, the catalog's in the spec's language, the one
    the check is registered with, else `fallback` (e.g. the title evidence recorded), else the id."""
    registered = None
    for stage in spec.stages.values():
        for ref in stage.checks:
            if ref.id == check_id:
                if ref.title:
                    return str(ref.title)
                registered = ref.definition.title if ref.definition else None
    translated = (catalog(spec.language).get("checks") or {}).get(check_id)
    return str(translated or registered or fallback or check_id)
