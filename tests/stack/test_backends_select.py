"""Backend selection: auto picks compose when a Docker engine answers and Compose is installed, else local; the
choice and its reason are recorded on the backend (and from there in evidence)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, need_docker, reference_description

from sealgate.backends import auto_choice, docker_engine_answers, select_backend
from sealgate.kernel.errors import InputError


def test_auto_picks_compose_when_an_engine_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    need_docker()
    monkeypatch.delenv("SEALGATE_BACKEND", raising=False)
    lines: list[str] = []
    backend = select_backend("auto", PROJECT_ROOT, tmp_path, progress=lines.append, description=reference_description())
    assert backend.name == "compose" and backend.containerized
    assert backend.selection == {
        "requested": "auto",
        "chosen": "compose",
        "reason": "a Docker engine answers and Compose is installed",
    }
    assert backend.describe()["selection"] == backend.selection
    assert lines == ["stack: backend compose (auto: a Docker engine answers and Compose is installed)"]


def test_auto_falls_back_to_local_without_an_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A DOCKER_HOST nobody listens on: the engine does not answer, whatever runs on this machine.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.delenv("SEALGATE_BACKEND", raising=False)
    assert not docker_engine_answers()
    assert auto_choice() == ("local", "no Docker engine answers")
    backend = select_backend(
        "auto", PROJECT_ROOT, tmp_path, progress=lambda _m: None, description=reference_description()
    )
    assert backend.name == "local" and not backend.containerized
    assert backend.selection["reason"] == "no Docker engine answers"


def test_environment_overrides_auto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SEALGATE_BACKEND", "local")
    backend = select_backend(
        "auto", PROJECT_ROOT, tmp_path, progress=lambda _m: None, description=reference_description()
    )
    assert backend.name == "local"
    assert backend.selection == {"requested": "local", "chosen": "local", "reason": "asked for explicitly"}


def test_unknown_backend_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match=r"unknown backend 'kubernetes'.*auto, compose, local"):
        select_backend("kubernetes", PROJECT_ROOT, tmp_path)


def test_engine_check_is_bounded():
    import time

    started = time.monotonic()
    docker_engine_answers(timeout=2)
    assert time.monotonic() - started < 5
