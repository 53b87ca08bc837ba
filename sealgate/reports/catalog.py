"""The report's language catalogs (`reports/i18n/<language>.yaml`): every fixed word of the SEAL report in that
language. (A check's title in a language is the check's own: `@check(..., titles={"pt-BR": ...})`.)"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def catalog(language: str) -> dict[str, Any]:
    text = (resources.files("sealgate.reports") / "i18n" / f"{language}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)
