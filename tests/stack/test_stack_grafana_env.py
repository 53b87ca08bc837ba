"""Grafana provisioning and the LLM dashboard (checked statically: no Grafana can run here; their PromQL runs on a
real Prometheus in test_stack_backup.py), and stack/.env.example against what the code and compose file read."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from stack_content_support import STACK

pytestmark = pytest.mark.stack

GRAFANA = STACK / "grafana"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "llm_metrics.json").read_text())


def test_datasource_provisioning() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert {k: source[k] for k in ("name", "type", "url", "isDefault", "uid")} == {
        "name": "Prometheus",
        "type": "prometheus",
        "url": "http://prometheus:9090",
        "isDefault": True,
        "uid": "prometheus",
    }


def test_dashboard_provider() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "default.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["updateIntervalSeconds"] == 10
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_identity_and_panels() -> None:
    board = dashboard()
    assert board["uid"] == "llm-metrics-f910"
    assert board["tags"] == ["llm", "f9.10", "f9.11"]
    assert 36 <= board["schemaVersion"] <= 41  # Grafana 11
    panels = {p["title"]: p for p in board["panels"]}
    assert [(p["title"], p["type"]) for p in board["panels"]] == [
        ("LLM Request Latency", "timeseries"),
        ("LLM Token Usage", "timeseries"),
        ("LLM Error Rate", "gauge"),
        ("Circuit Breaker State", "stat"),
        ("PostgreSQL Transactions", "timeseries"),  # F9.11, from postgres_exporter
        ("API Rate Limiting (429/s)", "timeseries"),  # F9.11, from the API's rate limiter
    ]
    assert len({p["id"] for p in board["panels"]}) == 6
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), panel["title"]

    latency = panels["LLM Request Latency"]
    quantiles = sorted(
        float(re.match(r"histogram_quantile\((0\.\d+),", t["expr"]).group(1))  # type: ignore[union-attr]
        for t in latency["targets"]
    )
    assert quantiles == [0.5, 0.95, 0.99]
    assert all("llm_request_latency_seconds_bucket" in t["expr"] for t in latency["targets"])
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 5} in steps
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"

    (tokens,) = panels["LLM Token Usage"]["targets"]
    assert tokens["expr"] == "sum by (provider, model, type) (rate(llm_tokens_total[1m]))"

    errors = panels["LLM Error Rate"]
    (target,) = errors["targets"]
    assert re.search(
        r"rate\(llm_errors_total\[5m\]\).*/.*rate\(llm_request_latency_seconds_count\[5m\]\)", target["expr"]
    )
    assert errors["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert {"color": "red", "value": 0.05} in errors["fieldConfig"]["defaults"]["thresholds"]["steps"]

    breaker = panels["Circuit Breaker State"]
    assert "llm_circuit_breaker_state" in breaker["targets"][0]["expr"]
    (mapping,) = breaker["fieldConfig"]["defaults"]["mappings"]
    assert mapping["type"] == "value"
    assert {k: (v["text"], v["color"]) for k, v in mapping["options"].items()} == {
        "0": ("CLOSED", "green"),
        "1": ("OPEN", "red"),
        "2": ("HALF_OPEN", "yellow"),
    }


def test_env_example_documents_every_variable() -> None:
    documented = {}
    for line in (STACK / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line)
        if match:
            documented[match.group(1)] = match.group(2)
    code = "\n".join(p.read_text() for p in (STACK / "app").rglob("*.py"))
    read_by_code = set(re.findall(r"\"(VERITTA_[A-Z0-9_]+)\"", code))
    assert read_by_code == {"VERITTA_CB_THRESHOLD", "VERITTA_CB_TIMEOUT", "VERITTA_RL_LIMIT", "VERITTA_RL_WINDOW"}
    read_by_compose = set(re.findall(r"\$\{([A-Z0-9_]+)", (STACK / "docker-compose.yml").read_text()))
    missing = (read_by_code | read_by_compose | {"GF_SECURITY_ADMIN_PASSWORD"}) - set(documented)
    assert not missing, f"undocumented in stack/.env.example: {sorted(missing)}"
    for name in read_by_code:
        assert re.fullmatch(r"[1-9][0-9]*", documented[name]), f"{name}={documented[name]} is not a valid value"
    assert documented["VERITTA_CB_THRESHOLD"] == "3" and documented["VERITTA_CB_TIMEOUT"] == "60"
    assert documented["VERITTA_RL_LIMIT"] == "100" and documented["VERITTA_RL_WINDOW"] == "10"
    assert documented.get("GF_SECURITY_ADMIN_PASSWORD") not in ("admin", "")


def test_no_machine_paths_or_registry_hosts_in_stack() -> None:
    pattern = re.compile(r"/work/|/root/|deb\.debian\.org|pypi\.org|files\.pythonhosted|registry\.npmjs")
    for path in STACK.rglob("*"):
        if path.is_file() and "backends" not in path.parts and path.suffix != ".pyc":
            assert not pattern.search(path.read_text(errors="replace")), path
