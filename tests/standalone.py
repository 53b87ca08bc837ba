"""A real standalone Prometheus holding history (scraping itself every second into a temp data dir): what EIXO 0
must detect before a containerized one is started over someone's data."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import need_tool

from sealgate.procs import terminate


@contextlib.contextmanager
def standalone_prometheus(workdir: Path, port: int, history: bool = True) -> Iterator[str]:
    """`history=False`: a Prometheus that scrapes nothing, its TSDB empty."""
    need_tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + (
            f"scrape_configs:\n  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            if history
            else ""
        )
    )
    log_path = workdir / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # healthy and holding series (first scrape ~5 s after start)
                try:
                    stats = requests.get(f"{url}/api/v1/status/tsdb", timeout=2).json()["data"]["headStats"]
                    if int(stats["numSeries"]) > 0 or not history:
                        break
                except (requests.RequestException, ValueError, KeyError):
                    pass
                assert proc.poll() is None, log_path.read_text()
                time.sleep(0.5)
            else:
                pytest.fail(f"standalone Prometheus at {url} holds no series after 60 s")
            yield url
        finally:
            terminate(proc, grace=20)
