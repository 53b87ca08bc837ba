"""Where the running stack is, for the F9.10 stack suite.

This suite tests a *running* stack; it does not start one. Whoever started the stack (sealgate's tests/stack-suite
check, or a person with a stack of their own) describes it through the variables sealgate sets for any stack:

  SEALGATE_STACK_BACKEND            compose | local (required: without it every test is skipped, saying why)
  SEALGATE_STACK_<SERVICE>_URL      http://127.0.0.1:PORT of each service of stack/stack.yaml that runs, the name
                                    upper-cased with `-` as `_`: SEALGATE_STACK_PROMETHEUS_URL,
                                    SEALGATE_STACK_ALERTMANAGER_URL, SEALGATE_STACK_API_URL (techno-os-api),
                                    SEALGATE_STACK_GRAFANA_URL (empty or unset where no Grafana runs), ...
  SEALGATE_STACK_UNAVAILABLE        JSON {service: why it has no URL} (the Grafana scenario's skip reason)
  SEALGATE_STACK_CONTAINERS         JSON {service: {"id": container id, "image": image}} of a containerized stack
  SEALGATE_STACK_SERVICES           JSON {service: {"running": bool, "pid": int|null, ...}} of every service

and, set by the person running it (this suite's own): SEALGATE_STACK_GRAFANA_USER / _PASSWORD, the Grafana API
credentials; default: the ones the stack gives Grafana (GF_SECURITY_ADMIN_USER / GF_SECURITY_ADMIN_PASSWORD), else
admin / admin.

An empty value counts as unset, so a runner can blank a variable it inherited instead of leaking it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

STACK_DIR = Path(__file__).resolve().parent.parent  # stack/: the governed project's own files
NO_STACK = (
    "no running stack is described: SEALGATE_STACK_BACKEND is not set. This suite tests a live stack; "
    "`sealgate eixo 6` brings one up and sets SEALGATE_STACK_* (see stack/tests/conftest.py)"
)


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _json_env(name: str) -> dict[str, Any]:
    raw = _env(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise pytest.UsageError(f"{name} must be a JSON object of service -> details")
    return value


def url_variable(service: str) -> str:
    """The variable holding a service's address: SEALGATE_STACK_<NAME>_URL, `-` (any non-alphanumeric) as `_`."""
    return f"SEALGATE_STACK_{re.sub(r'[^A-Za-z0-9]', '_', service).upper()}_URL"


@dataclass(frozen=True)
class Stack:
    backend: str
    grafana_auth: tuple[str, str]
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def containerized(self) -> bool:
        return bool(self.containers)

    def address(self, service: str) -> str:
        """The service's base URL, or "" where it has none (read when asked: any service of the stack)."""
        return _env(url_variable(service)).rstrip("/")

    def url(self, service: str) -> str:
        """The base URL of a service the scenario needs; the scenario fails, saying why, when it has none."""
        value = self.address(service)
        if not value:
            why = self.unavailable.get(service, "not running on this stack")
            pytest.fail(f"{url_variable(service)} is not set: {service}: {why}")
        return value

    @property
    def grafana_url(self) -> str:
        return self.address("grafana")

    @property
    def grafana_unavailable(self) -> str:
        return self.unavailable.get("grafana", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every scenario needs the stack (the static ones judge the same checkout the stack runs from), so without a
    # described stack nothing here can say anything true: skip all, with the reason.
    if _env("SEALGATE_STACK_BACKEND"):
        return
    marker = pytest.mark.skip(reason=NO_STACK)
    for item in items:
        item.add_marker(marker)


@pytest.fixture(scope="session")
def stack() -> Stack:
    return Stack(
        backend=_env("SEALGATE_STACK_BACKEND"),
        grafana_auth=(
            _env("SEALGATE_STACK_GRAFANA_USER") or _env("GF_SECURITY_ADMIN_USER") or "admin",
            _env("SEALGATE_STACK_GRAFANA_PASSWORD") or _env("GF_SECURITY_ADMIN_PASSWORD") or "admin",
        ),
        containers=_json_env("SEALGATE_STACK_CONTAINERS"),
        services=_json_env("SEALGATE_STACK_SERVICES"),
        unavailable=_json_env("SEALGATE_STACK_UNAVAILABLE"),
    )


@pytest.fixture(scope="session")
def stack_dir() -> Path:
    return STACK_DIR
