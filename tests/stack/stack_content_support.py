"""Real processes for the stack-content tests: the API, console-log, Prometheus and PostgreSQL on 127.0.0.1.

Every start has a bounded wait and every process is stopped (SIGTERM, then SIGKILL) when its context ends.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealgate.kernel.ports import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACK = PROJECT_ROOT / "stack"
LISTENING = re.compile(r"listening on http://[^:/]+:(\d+)")


def free_port() -> int:
    return free_ports(1)[0]


def http(url: str, body: Any = None, timeout: float = 10, method: str | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method or ("GET" if body is None else "POST"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_json(url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    status, raw = http(url, body, timeout)
    return status, json.loads(raw or b"null")


def wait_http(url: str, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode} before {url} answered")
        try:
            status, _ = http(url, timeout=2)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s ({last})")


def wait_until(what: str, predicate: Any, timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s")


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


@dataclass
class PyService:
    """A Python service of the stack (app or console_log) started with `--port 0`."""

    proc: subprocess.Popen[str]
    port: int | None
    first_lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        assert self.port is not None, f"not listening: {self.first_lines}"
        return f"http://127.0.0.1:{self.port}"


def clean_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without anything the stack's services read, plus overrides: 'unset' really is unset."""
    prefixes = ("VERITTA_", "API_", "CONSOLE_LOG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # never leave __pycache__ in stack/
    env.update(overrides or {})
    return env


def _read_until_listening(proc: subprocess.Popen[str], stream: Any, timeout: float) -> tuple[int | None, list[str]]:
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                if proc.poll() is not None:
                    break
                continue
            line = stream.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match:
                return int(match.group(1)), lines
    finally:
        selector.close()
    return None, lines


@contextlib.contextmanager
def python_service(
    module: str, env: Mapping[str, str] | None = None, timeout: float = 15, listen_on: str = "stdout"
) -> Iterator[PyService]:
    """`python -m MODULE --host 127.0.0.1 --port 0` with cwd stack/; yields once it listens or has exited."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0"],
        cwd=STACK,
        env=clean_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stream = proc.stdout if listen_on == "stdout" else proc.stderr
        port, lines = _read_until_listening(proc, stream, timeout)
        if port is None and proc.poll() is None:
            raise AssertionError(f"{module} neither listened nor exited within {timeout}s: {lines}")
        yield PyService(proc, port, lines)
    finally:
        stop(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def read_lines(stream: Any, count: int, timeout: float) -> list[str]:
    """Up to `count` lines from a pipe, giving up after `timeout` seconds (never blocks past it).

    Reads the raw descriptor, not the text stream: a buffered `readline()` may pull two lines into Python's
    buffer while the selector, which only sees the descriptor, then waits for data that already arrived.
    """
    fd = stream.fileno()
    pending = b""
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while len(lines) < count and time.monotonic() < deadline:
            if not selector.select(timeout=min(0.2, max(0.0, deadline - time.monotonic()))):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            lines.extend(line.decode(errors="replace") for line in complete)
    finally:
        selector.close()
    return lines


def collect(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str, str]:
    """Wait for a process that must exit by itself; its exit code and remaining output."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# --- Prometheus / PostgreSQL ------------------------------------------------------------------------------------


def prometheus_config(scrape_target: str, alertmanager: str | None) -> dict[str, Any]:
    """The repository's prometheus.yml with its container addresses replaced and rule_files on the repo's files."""
    config = yaml.safe_load((STACK / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(STACK / "prometheus" / "alerts" / "*.yml")]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [scrape_target]
    if alertmanager is None:
        config.pop("alerting", None)
    else:
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    return config


@contextlib.contextmanager
def prometheus(tmp: Path, data_dir: Path, scrape_target: str | None = None, timeout: float = 30) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 with the repository's config and rules, the admin API on; yields its URL.
    The techno-os-api job scrapes `scrape_target`, by default this Prometheus itself (so the TSDB gets data)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp / "prometheus.yml"
    settings = prometheus_config(scrape_target or f"127.0.0.1:{port}", None)
    # Only this copy scrapes every second (the repository's 15 s stay as they are): the first scrape then lands right
    # after Prometheus 2.42's fixed ~5 s discovery delay instead of up to 20 s later.
    settings["global"]["scrape_interval"] = "1s"
    config.write_text(yaml.safe_dump(settings))
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-admin-api",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready", timeout, proc)
        yield url
    finally:
        stop(proc)
        log.close()


def postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates and Path(candidates[-1], "initdb").exists():
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@contextlib.contextmanager
def traversable_tmpdir(prefix: str) -> Iterator[Path]:
    """A fresh directory directly under the system temp dir that other users may traverse (not list): pytest's
    tmp_path parents are 0700, which the postgres user could not cross."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    bindir: Path

    def psql(self, sql: str, db: str = "postgres") -> str:
        return subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout


@contextlib.contextmanager
def postgres(data_dir: Path, user: str = "techno") -> Iterator[Postgres]:
    """A real PostgreSQL cluster in data_dir on a free 127.0.0.1 port. As root it runs as user postgres (the server
    refuses root), so every parent of data_dir must be traversable by that user (see traversable_tmpdir)."""
    bindir = postgres_bindir()
    assert bindir is not None
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_dir = data_dir.parent / "pg-run"  # socket and server log: must be writable by the server's user
    socket_dir.mkdir(exist_ok=True)
    prefix: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for path in (data_dir, socket_dir):
            os.chown(path, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data_dir.chmod(0o700)
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data_dir), "-U", user, "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    log = socket_dir / "postgres.log"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log),
            "-w",
            "-t",
            "30",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir}",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield Postgres("127.0.0.1", port, user, bindir)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
