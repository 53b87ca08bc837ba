"""Where the running stack is, for the F9.10 stack suite.

This suite tests a *running* stack; it does not start one. Whoever started the stack (sealgate's EIXO 6, or a
person with a stack of their own) describes it through environment variables:

  SEALGATE_STACK_BACKEND            compose | local (required: without it every test is skipped, saying why)
  SEALGATE_STACK_PROMETHEUS_URL     http://127.0.0.1:PORT of Prometheus
  SEALGATE_STACK_ALERTMANAGER_URL   http://127.0.0.1:PORT of Alertmanager
  SEALGATE_STACK_API_URL            http://127.0.0.1:PORT of techno-os-api
  SEALGATE_STACK_GRAFANA_URL        http://127.0.0.1:PORT of Grafana; empty or unset where no Grafana runs
  SEALGATE_STACK_GRAFANA_UNAVAILABLE  why no Grafana runs (shown in the skip reason)
  SEALGATE_STACK_UNAVAILABLE        JSON {service: why it has no URL} for any service of the four that has none
  SEALGATE_STACK_GRAFANA_USER / _PASSWORD  Grafana API credentials; default: the ones the stack gives Grafana
                                    (GF_SECURITY_ADMIN_USER / GF_SECURITY_ADMIN_PASSWORD), else admin / admin
  SEALGATE_STACK_CONTAINERS         JSON {service: {"id": container id, "image": image}} of a containerized stack
  SEALGATE_STACK_SERVICES           JSON {service: {"running": bool, "pid": int|null, ...}} of every service

An empty value counts as unset, so a runner can blank a variable it inherited instead of leaking it.
"""

from __future__ import annotations

import json
import os
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


@dataclass(frozen=True)
class Stack:
    backend: str
    prometheus_url: str
    alertmanager_url: str
    api_url: str
    grafana_url: str
    grafana_unavailable: str
    grafana_auth: tuple[str, str]
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def containerized(self) -> bool:
        return bool(self.containers)

    def url(self, service: str) -> str:
        value = {"prometheus": self.prometheus_url, "alertmanager": self.alertmanager_url, "api": self.api_url}[service]
        if not value:
            why = self.unavailable.get(service, "not running on this stack")
            pytest.fail(f"SEALGATE_STACK_{service.upper()}_URL is not set: {service}: {why}")
        return value.rstrip("/")


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
        prometheus_url=_env("SEALGATE_STACK_PROMETHEUS_URL"),
        alertmanager_url=_env("SEALGATE_STACK_ALERTMANAGER_URL"),
        api_url=_env("SEALGATE_STACK_API_URL"),
        grafana_url=_env("SEALGATE_STACK_GRAFANA_URL").rstrip("/"),
        grafana_unavailable=_env("SEALGATE_STACK_GRAFANA_UNAVAILABLE"),
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
