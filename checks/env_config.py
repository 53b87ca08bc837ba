"""EIXO 4 — the circuit breaker configured by the environment (VERITTA_CB_THRESHOLD, VERITTA_CB_TIMEOUT).

Every claim is proven on the real service: `python3 -m app` (cwd `stack/`) started as a subprocess on 127.0.0.1 with
a chosen environment, and asked over HTTP what it does. Reading the code would only show what it says it does; a
breaker that ignores its variable, or a typo in the variable's name, is only caught by starting the service.
"""

from __future__ import annotations

import ast
import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealgate.procs import terminate
from sealgate.sprint.context import Context
from sealgate.sprint.model import Severity
from sealgate.sprint.registry import check

APP_DIR = "stack/app"
ENV_EXAMPLE = "stack/.env.example"
VAR_PATTERN = re.compile(r"^VERITTA_[A-Z0-9_]+$")
LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")
START_TIMEOUT_S = 15.0  # a healthy start takes ~0.2 s; a hung one must not hang the stage
BAD_VALUE_WAIT_S = 10.0  # how long a start with a bad value may take to refuse

BREAKER_VARS = {"threshold": "VERITTA_CB_THRESHOLD", "timeout_s": "VERITTA_CB_TIMEOUT"}

_COMMON_PARAMS: dict[str, Any] = {
    "app_dir": {"type": "string", "description": "directory holding the app package (python3 -m app runs there)"},
}


# --- the real API as a subprocess ---------------------------------------------------------------------------------


@dataclass
class ApiRun:
    """One start of the API with a chosen environment; what evidence records about it."""

    env: dict[str, str]
    argv: list[str]
    base_url: str | None = None
    exit_code: int | None = None
    output: list[str] = field(default_factory=list)
    started_in_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "argv": self.argv,
            "listening": self.base_url,
            "exit_code": self.exit_code,
            "started_in_s": None if self.started_in_s is None else round(self.started_in_s, 3),
            "output": self.output[-20:],
        }


def _app_cwd(ctx: Context) -> Path:
    app_dir = ctx.path(ctx.params.get("app_dir", APP_DIR))
    if not (app_dir / "__main__.py").is_file():
        ctx.fail(f"{APP_DIR}/__main__.py not found: the API cannot be started")
    return app_dir.parent


def _clean_environ(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any VERITTA_* (so 'unset' really means unset), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERITTA_") and k not in ("API_PORT", "API_HOST")}
    env["PYTHONUNBUFFERED"] = "1"  # the "listening" line must reach us as soon as it is printed
    env.update(overrides)
    return env


@contextmanager
def api_process(ctx: Context, overrides: Mapping[str, str], *, expect_start: bool = True) -> Iterator[ApiRun]:
    """Start the API on a free 127.0.0.1 port (`--port 0`: the kernel picks it, no race with other runs) and stop it
    on exit. Yields once it either prints its "listening" line or exits; `run.base_url` is None when it exited.
    """
    cwd = _app_cwd(ctx)
    # The interpreter running sealgate has prometheus_client (a dependency of this package); so does the stack image.
    argv = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", "0"]
    run = ApiRun(env=dict(overrides), argv=["python3", "-m", "app", "--host", "127.0.0.1", "--port", "0"])
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=_clean_environ(overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_listening(proc, run, START_TIMEOUT_S if expect_start else BAD_VALUE_WAIT_S)
        run.started_in_s = time.monotonic() - started
        yield run
    finally:
        terminate(proc, grace=5)
        if proc.stdout is not None:
            rest = proc.stdout.read()
            run.output += [line for line in rest.splitlines() if line.strip()]
            proc.stdout.close()
        if run.exit_code is None:
            run.exit_code = proc.returncode
        ctx.data.setdefault("api_runs", []).append(run.to_json())


def _wait_listening(proc: subprocess.Popen[str], run: ApiRun, timeout: float) -> None:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                if proc.poll() is not None:
                    break
                continue
            line = proc.stdout.readline()
            if not line:  # EOF: the process exited
                proc.wait(timeout=5)
                break
            run.output.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match:
                run.base_url = f"http://127.0.0.1:{match.group(2)}"
                return
    finally:
        selector.close()
    if proc.poll() is not None:
        run.exit_code = proc.returncode


def _request(base_url: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url + path,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload or b"{}")
        except json.JSONDecodeError:
            return exc.code, {"raw": payload.decode(errors="replace")}


def _breaker(ctx: Context, base_url: str) -> dict[str, Any]:
    status, view = _request(base_url, "/admin/breaker")
    if status != 200:
        ctx.fail(f"GET /admin/breaker answered {status}: {view}")
    return view


def _started(ctx: Context, run: ApiRun, what: str) -> str:
    if run.base_url is None:
        tail = " | ".join(run.output[-3:]) or "no output"
        ctx.fail(f"the API did not start with {what} (exit code {run.exit_code}): {tail}")
    return run.base_url


def _judge_app(ctx: Context) -> list[Path]:
    """Every Python file of the app is a subject: the breaker's behaviour depends on all of them."""
    root = ctx.path(ctx.params.get("app_dir", APP_DIR))
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    for path in files:
        ctx.judge(path.relative_to(ctx.root.resolve()))
    return files


def _compare_config(ctx: Context, view: dict[str, Any], expected: Mapping[str, int], source: str, what: str) -> None:
    for key, value in expected.items():
        if view.get(key) != value:
            ctx.finding(
                f"with {what}: breaker {key} is {view.get(key)!r}, expected {value} ({BREAKER_VARS[key]})",
                file=f"{APP_DIR}/llm/circuit_breaker_singleton.py",
            )
        reported = (view.get("source") or {}).get(key)
        if reported != source:
            ctx.finding(
                f"with {what}: breaker reports {key} from {reported!r}, expected {source!r}",
                file=f"{APP_DIR}/llm/circuit_breaker_singleton.py",
            )


# --- checks --------------------------------------------------------------------------------------------------------


@check(
    "env_config/breaker-defaults",
    stage=4,
    title="Com VERITTA_CB_* ausentes o breaker usa os defaults 3 e 60",
    params={
        "type": "object",
        "properties": {
            **_COMMON_PARAMS,
            "threshold": {"type": "integer", "minimum": 1},
            "timeout_s": {"type": "integer", "minimum": 1},
        },
        "required": ["threshold", "timeout_s"],
        "additionalProperties": False,
    },
)
def breaker_defaults(ctx: Context) -> None:
    _judge_app(ctx)
    expected = {"threshold": ctx.params["threshold"], "timeout_s": ctx.params["timeout_s"]}
    with api_process(ctx, {}) as run:
        view = _breaker(ctx, _started(ctx, run, "VERITTA_CB_* unset"))
    ctx.record("breaker", view)
    _compare_config(ctx, view, expected, "default", "VERITTA_CB_* unset")


@check(
    "env_config/breaker-overrides",
    stage=4,
    title="VERITTA_CB_THRESHOLD e VERITTA_CB_TIMEOUT definidos sobrepõem os defaults",
    params={
        "type": "object",
        "properties": {
            **_COMMON_PARAMS,
            "cases": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "VERITTA_CB_THRESHOLD": {"type": "string"},
                        "VERITTA_CB_TIMEOUT": {"type": "string"},
                        "expect": {
                            "type": "object",
                            "properties": {
                                "threshold": {"type": "integer"},
                                "timeout_s": {"type": "integer"},
                            },
                            "additionalProperties": False,
                        },
                    },
                    "required": ["expect"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["cases"],
        "additionalProperties": False,
    },
)
def breaker_overrides(ctx: Context) -> None:
    _judge_app(ctx)
    seen = []
    for case in ctx.params["cases"]:
        env = {k: v for k, v in case.items() if k.startswith("VERITTA_")}
        what = " ".join(f"{k}={v}" for k, v in env.items())
        with api_process(ctx, env) as run:
            view = _breaker(ctx, _started(ctx, run, what))
        seen.append({"env": env, "breaker": view})
        for key, value in case["expect"].items():
            source = "env" if BREAKER_VARS[key] in env else "default"
            _compare_config(ctx, view, {key: value}, source, what)
    ctx.record("cases", seen)


@check(
    "env_config/breaker-behaviour",
    stage=4,
    title="Após THRESHOLD falhas o breaker abre, após TIMEOUT deixa passar uma chamada (half-open) e fecha no sucesso",
    params={
        "type": "object",
        "properties": {
            **_COMMON_PARAMS,
            "threshold": {"type": "integer", "minimum": 1, "maximum": 20},
            "timeout_s": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["threshold", "timeout_s"],
        "additionalProperties": False,
    },
)
def breaker_behaviour(ctx: Context) -> None:
    _judge_app(ctx)
    threshold, timeout_s = ctx.params["threshold"], ctx.params["timeout_s"]
    env = {"VERITTA_CB_THRESHOLD": str(threshold), "VERITTA_CB_TIMEOUT": str(timeout_s)}
    timeline: list[dict[str, Any]] = []
    t0 = time.monotonic()

    def step(what: str, status: int | None = None, body: dict[str, Any] | None = None, state: str = "") -> None:
        entry: dict[str, Any] = {"t_s": round(time.monotonic() - t0, 3), "what": what}
        if status is not None:
            entry["status"] = status
            entry["error_type"] = (body or {}).get("error_type")
        if state:
            entry["state"] = state
        timeline.append(entry)

    with api_process(ctx, env) as run:
        base = _started(ctx, run, " ".join(f"{k}={v}" for k, v in env.items()))
        try:
            _breaker_scenario(ctx, base, threshold, timeout_s, step)
        finally:
            ctx.record("timeline", timeline)


def _call(base: str) -> tuple[int, dict[str, Any]]:
    return _request(base, "/v1/complete", {"prompt": "sealgate breaker drill", "provider": "sim", "model": "sim-1"})


def _breaker_scenario(ctx: Context, base: str, threshold: int, timeout_s: int, step: Any) -> None:
    def state() -> str:
        return str(_breaker(ctx, base).get("state"))

    status, body = _request(base, "/admin/provider", {"fail": True})
    if status != 200:
        ctx.error(f"POST /admin/provider {{fail: true}} answered {status}: {body}")
    step("provider set to fail")
    # THRESHOLD - 1 failures leave it closed; the THRESHOLD-th opens it.
    for n in range(1, threshold + 1):
        status, body = _call(base)
        now = state()
        step(f"call {n} (provider failing)", status, body, now)
        if body.get("error_type") != "provider_unavailable":
            ctx.fail(f"call {n} of {threshold} did not reach the failing provider: {status} {body}")
        if n < threshold and now != "closed":
            ctx.fail(f"breaker is {now} after {n} failure(s); VERITTA_CB_THRESHOLD={threshold} should keep it closed")
    opened_at = time.monotonic()
    if now != "open":
        ctx.fail(f"breaker is {now} after {threshold} consecutive failures (VERITTA_CB_THRESHOLD={threshold})")
    status, body = _call(base)
    step("call while open", status, body, state())
    if body.get("error_type") != "circuit_open":
        ctx.fail(f"a call while open was not rejected by the breaker: {status} {body}")

    # After TIMEOUT: half-open. A failing trial re-opens it (the trial really reached the provider)...
    half_open_after = _wait_half_open(ctx, state, opened_at, timeout_s)
    step(f"half_open after {half_open_after:.2f}s", state="half_open")
    status, body = _call(base)
    after = state()
    step("trial call (provider failing)", status, body, after)
    if body.get("error_type") != "provider_unavailable" or after != "open":
        ctx.fail(f"half-open trial with a failing provider: {status} {body}, breaker {after} (expected open again)")
    reopened_at = time.monotonic()

    # ...and a successful trial closes it.
    status, body = _request(base, "/admin/provider", {"fail": False})
    step("provider healthy again")
    again = _wait_half_open(ctx, state, reopened_at, timeout_s)
    step(f"half_open again after {again:.2f}s", state="half_open")
    status, body = _call(base)
    after = state()
    step("trial call (provider healthy)", status, body, after)
    if status != 200 or after != "closed":
        ctx.fail(f"half-open trial with a healthy provider: {status} {body}, breaker {after} (expected closed)")
    ctx.record("half_open_after_s", round(half_open_after, 3))


def _wait_half_open(ctx: Context, state: Any, opened_at: float, timeout_s: int) -> float:
    """Poll until half_open; it must not come before TIMEOUT, and must come soon after it."""
    deadline = opened_at + timeout_s + 3.0
    while True:
        now = state()
        elapsed = time.monotonic() - opened_at
        if now == "half_open":
            if elapsed < timeout_s - 0.05:
                ctx.fail(f"breaker half_open {elapsed:.2f}s after opening, before VERITTA_CB_TIMEOUT={timeout_s}")
            ctx.note_wait(f"breaker timeout VERITTA_CB_TIMEOUT={timeout_s}", elapsed)
            return elapsed
        if now != "open":
            ctx.fail(f"breaker went {now} {elapsed:.2f}s after opening (expected open, then half_open)")
        if time.monotonic() > deadline:
            ctx.fail(f"breaker still open {elapsed:.1f}s after opening; VERITTA_CB_TIMEOUT={timeout_s} was ignored")
        time.sleep(0.05)


@check(
    "env_config/bad-values",
    stage=4,
    title="Valores inválidos de VERITTA_CB_* impedem o serviço de iniciar, nomeando a variável",
    params={
        "type": "object",
        "properties": {
            **_COMMON_PARAMS,
            "values": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "required": ["values"],
        "additionalProperties": False,
    },
)
def bad_values(ctx: Context) -> None:
    _judge_app(ctx)
    outcomes = []
    for variable in BREAKER_VARS.values():
        for value in ctx.params["values"]:
            what = f"{variable}={value!r}"
            with api_process(ctx, {variable: value}, expect_start=False) as run:
                message = next((line for line in run.output if variable in line), "")
                outcomes.append(
                    {
                        "env": {variable: value},
                        "exit_code": run.exit_code,
                        "started": run.base_url is not None,
                        "message": message,
                    }
                )
                if run.base_url is not None:
                    ctx.finding(f"the API started with {what} (it must refuse to start)")
                elif run.exit_code in (None, 0):
                    ctx.finding(f"with {what} the API neither started nor exited non-zero (exit {run.exit_code})")
                elif not message:
                    ctx.finding(
                        f"with {what} the API exited {run.exit_code} without naming {variable}: "
                        f"{' | '.join(run.output[-2:]) or 'no output'}"
                    )
                elif "Traceback" in "\n".join(run.output):
                    ctx.finding(f"with {what} the API died with a traceback instead of a clear message")
    ctx.record("outcomes", outcomes)


# --- .env.example ---------------------------------------------------------------------------------------------------


def variables_read(files: list[Path], root: Path) -> dict[str, tuple[str, int]]:
    """Every VERITTA_* name the code mentions as a string literal -> (file, line) of its first use.

    A literal rather than only `os.getenv(...)` calls: the singleton passes the name to a helper with `os.environ`,
    and any way of reading a variable needs its name spelled somewhere. Docstrings are not uses.
    """
    found: dict[str, tuple[str, int]] = {}
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and VAR_PATTERN.match(node.value)
                and id(node) not in docstrings
            ):
                found.setdefault(node.value, (path.relative_to(root).as_posix(), node.lineno))
    return dict(sorted(found.items()))


def parse_env_example(text: str) -> dict[str, tuple[str, int]]:
    """KEY=VALUE assignments (not commented out) -> (value, line)."""
    values: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = (value, number)
    return values


@check(
    "env_config/env-example",
    stage=4,
    title="stack/.env.example documenta toda variável VERITTA_* lida pelo código, com valores que o serviço aceita",
    params={
        "type": "object",
        "properties": {**_COMMON_PARAMS, "env_example": {"type": "string"}},
        "additionalProperties": False,
    },
)
def env_example(ctx: Context) -> None:
    files = _judge_app(ctx)
    example_rel = ctx.params.get("env_example", ENV_EXAMPLE)
    example = parse_env_example(ctx.judge(example_rel).read_text())
    used = variables_read(files, ctx.root.resolve())
    ctx.record("variables_in_code", {k: f"{f}:{n}" for k, (f, n) in used.items()})
    ctx.record("documented", {k: v for k, (v, _n) in example.items() if k.startswith("VERITTA_")})
    if not used:
        ctx.fail(f"no VERITTA_* variable found in {APP_DIR}: nothing reads the breaker's configuration")
    for name, (file, line) in used.items():
        if name not in example:
            ctx.finding(f"{name} is read by the code but not documented in {example_rel}", file=file, line=line)
    for name, (_value, line) in example.items():
        if VAR_PATTERN.match(name) and name not in used:
            ctx.finding(
                f"{name} is documented but no code reads it", file=example_rel, line=line, severity=Severity.WARNING
            )
    # "Each documented value parses": the service itself is the parser — start it with the documented values.
    documented = {name: value for name, (value, _line) in example.items() if name in used}
    what = f"the values of {example_rel}"
    with api_process(ctx, documented) as run:
        if run.base_url is None:
            tail = " | ".join(run.output[-2:]) or "no output"
            line = min((example[n][1] for n in documented if n in tail), default=None)
            ctx.finding(f"the API refuses {what}: {tail}", file=example_rel, line=line)
            return
        view = _breaker(ctx, run.base_url)
    ctx.record("breaker_with_documented_values", view)
    for key, variable in BREAKER_VARS.items():
        if variable in documented and str(view.get(key)) != documented[variable].strip():
            ctx.finding(
                f"{variable}={documented[variable]} documented, but the service runs with {key}={view.get(key)}",
                file=example_rel,
                line=example[variable][1],
            )


# --- live --------------------------------------------------------------------------------------------------------


def _api_environment(ctx: Context) -> dict[str, str]:
    """The environment the running API process was given, read from the container or the process."""
    state = ctx.stack.services().get("api")
    if state is None or not state.running:
        ctx.error(f"the stack's api service is not running ({state.detail if state else 'unknown'})")
    if ctx.stack.containerized:
        if not state.container_id:
            ctx.error("the api container has no id")
        result = ctx.run(["docker", "inspect", "--format", "{{json .Config.Env}}", state.container_id], timeout=30)
        if not result.ok:
            ctx.error(f"docker inspect of the api container failed: {result.stderr.strip()[-300:]}")
        pairs = json.loads(result.stdout or "[]")
        # A bare `NAME` (Compose's pass-through of a variable unset on the host) is not set in the container.
        return {k: v for k, sep, v in (str(p).partition("=") for p in pairs) if sep}
    if not state.pid:
        ctx.error("the local api process has no pid")
    try:
        raw = Path(f"/proc/{state.pid}/environ").read_bytes()
    except OSError as exc:
        ctx.error(f"cannot read the environment of api process {state.pid}: {exc.strerror}")
    return {k: v for k, _, v in (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)}


@check(
    "env_config/live-settings",
    stage=4,
    title="O breaker da API em execução expõe exatamente o que o seu ambiente definiu",
    needs_stack=True,
    params={
        "type": "object",
        "properties": {
            **_COMMON_PARAMS,
            "defaults": {
                "type": "object",
                "properties": {"threshold": {"type": "integer"}, "timeout_s": {"type": "integer"}},
                "required": ["threshold", "timeout_s"],
                "additionalProperties": False,
            },
        },
        "required": ["defaults"],
        "additionalProperties": False,
    },
)
def live_settings(ctx: Context) -> None:
    _judge_app(ctx)
    environment = _api_environment(ctx)
    configured = {k: v for k, v in environment.items() if k.startswith("VERITTA_")}
    view = _breaker(ctx, ctx.stack.url("api"))
    ctx.record("environment", configured)
    ctx.record("breaker", view)
    for key, variable in BREAKER_VARS.items():
        if variable in configured:
            raw = configured[variable].strip()
            if not raw.isdigit():
                ctx.finding(f"the running API has {variable}={configured[variable]!r}, a value it must refuse")
                continue
            expected, source = int(raw), "env"
        else:
            expected, source = ctx.params["defaults"][key], "default"
        _compare_config(ctx, view, {key: expected}, source, f"the running API ({variable}={configured.get(variable)})")
