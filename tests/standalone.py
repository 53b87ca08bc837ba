"""A real standalone Prometheus holding history (scraping itself every second into a temp data dir): what EIXO 0
must detect before a containerized one is started over someone's data."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from conftest import need_tool

from sealgate.kernel.procs import terminate


@contextlib.contextmanager
def prometheus_process(
    workdir: Path, port: int, scrape_configs: str, ready: Callable[[str], bool], what: str, timeout: float = 60
) -> Iterator[str]:
    """The real Prometheus binary on 127.0.0.1:`port` (1 s intervals, these scrape configs, its data in `workdir`);
    yields its URL once `ready(url)` holds, fails the test naming `what` if it does not within `timeout`."""
    need_tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n" + scrape_configs)
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
            deadline = time.monotonic() + timeout
            while True:
                assert proc.poll() is None, log_path.read_text()
                with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                    if ready(url):
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"Prometheus at {url}: {what} not seen after {timeout:.0f} s")
                time.sleep(0.5)
            yield url
        finally:
            terminate(proc, grace=20)


@contextlib.contextmanager
def standalone_prometheus(workdir: Path, port: int, history: bool = True) -> Iterator[str]:
    """`history=False`: a Prometheus that scrapes nothing, its TSDB empty."""
    scrape = f"scrape_configs:\n  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"

    def holds_series(url: str) -> bool:  # healthy and holding series (first scrape ~5 s after start)
        stats = requests.get(f"{url}/api/v1/status/tsdb", timeout=2).json()["data"]["headStats"]
        return int(stats["numSeries"]) > 0 or not history

    with prometheus_process(workdir, port, scrape if history else "", holds_series, "series in its TSDB") as url:
        yield url
