"""Configuration by environment: a service's settings come from environment variables, with defaults, overrides,
refused bad values, documented values — and the behaviour they configure.

Every claim is proven on the real service: the described service (`with.service`, a Python service: its command is
the one the local backend derives from the compose file) started as a subprocess on 127.0.0.1 and a free port with a
chosen environment, and asked over HTTP what it does. Reading the code would only show what it says it does; a
setting that ignores its variable, or a typo in the variable's name, is only caught by starting the service.

Parameters every check of this room takes:

    service     the described service to start;
    variables   environment variable -> the setting it configures (a JSON field of the settings answer);
    settings    where the running service reports its effective settings: `path` (GET, a JSON object holding each
                setting's field) and, optionally, `source_field` (a field mapping each setting to `env` or `default`,
                where its value came from).

The `behaviour` check runs the spec's scenario: requests (`get`/`post` a path, with a JSON `body`) whose answers and
reported settings must match, and waits for a setting to reach a value no sooner and no later than stated.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealgate.analysis.described import described_service, param_error
from sealgate.api.context import Context, Server
from sealgate.api.params import REPO_PATH
from sealgate.api.registry import check
from sealgate.backends.composefile import ComposeFile
from sealgate.backends.errors import StackError
from sealgate.backends.http import request
from sealgate.backends.localprocs import python_command
from sealgate.kernel.poll import poll
from sealgate.kernel.ports import free_ports
from sealgate.model.results import Severity

START_TIMEOUT_S = 15.0  # a healthy start takes well under a second; a hung one must not hang the stage
BAD_VALUE_WAIT_S = 10.0  # how long a start with a bad value may take to refuse
POLL_S = 0.05

_NAME = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
_SERVICE_PARAMS: dict[str, Any] = {
    "service": {"type": "string", "description": "the described (Python) service to start"},
    "variables": {
        "type": "object",
        "description": "environment variable -> the setting it configures",
        "minProperties": 1,
        "propertyNames": _NAME,
        "additionalProperties": {"type": "string"},
    },
    "settings": {
        "type": "object",
        "description": "where the running service reports its effective settings",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {"type": "string", "pattern": "^/", "examples": ["/settings"]},
            "source_field": {"type": "string"},
        },
    },
}
_REQUIRED = ["service", "variables", "settings"]
_VALUES = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": ["integer", "number", "string", "boolean"]},
}
_ENV = {"type": "object", "propertyNames": _NAME, "additionalProperties": {"type": "string"}}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**_SERVICE_PARAMS, **properties},
        "required": [*_REQUIRED, *required],
        "additionalProperties": False,
    }


# --- the real service as a subprocess -----------------------------------------------------------------------------


@dataclass
class ServiceRun:
    """One start of the service with a chosen environment; what evidence records about it."""

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


@dataclass(frozen=True)
class ServiceUnderTest:
    """The service under test, as the spec names it."""

    name: str
    variables: dict[str, str]  # variable -> setting
    settings_path: str
    source_field: str | None
    ready: str  # path answering 200 once it serves

    def setting_variable(self, setting: str) -> str:
        return next((v for v, s in self.variables.items() if s == setting), setting)


def service_under_test(ctx: Context) -> ServiceUnderTest:
    decl = described_service(ctx, str(ctx.params["service"]), ("service",))
    if decl.local.kind != "python":
        param_error(
            ctx,
            ("service",),
            f"service {decl.name} runs as {decl.local.kind!r} locally; this check starts a Python service itself",
        )
    settings = ctx.params["settings"]
    return ServiceUnderTest(
        decl.name,
        {str(k): str(v) for k, v in ctx.params["variables"].items()},
        str(settings["path"]),
        settings.get("source_field"),
        decl.ready or str(settings["path"]),
    )


def _command(ctx: Context, service: str) -> tuple[list[str], Path]:
    """(arguments after the interpreter, cwd): the local backend's derivation from the compose file."""
    description = ctx.description
    try:
        compose = ComposeFile(ctx.root / description.compose_file, dict(os.environ), description.compose_file)
        return python_command(description, compose, service)
    except StackError as exc:
        ctx.error(str(exc))


def _code_dir(ctx: Context, service: str) -> Path:
    """The directory holding the service's code: its package (`-m pkg`) or its script's directory."""
    args, cwd = _command(ctx, service)
    if args[0] == "-m":
        return cwd / args[1].split(".")[0]
    return Path(args[0]).parent


def _environ(variables: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the variables under test (so 'unset' really means unset), plus
    `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in variables}
    env["PYTHONUNBUFFERED"] = "1"  # its output must reach the log as soon as it is printed
    env.update(overrides)
    return env


def _shown(ctx: Context, item: str) -> str:
    """An argument as evidence shows it: repository paths relative, no path of this machine."""
    try:
        return Path(item).resolve().relative_to(ctx.root.resolve()).as_posix() if item.startswith("/") else item
    except ValueError:
        return item


@contextmanager
def service_process(
    ctx: Context, service: ServiceUnderTest, overrides: Mapping[str, str], *, expect_start: bool = True
) -> Iterator[ServiceRun]:
    """Start the service on a free 127.0.0.1 port and stop it on exit. Yields once it answers its ready path or has
    exited; `run.base_url` is None when it exited (or never answered)."""
    args, cwd = _command(ctx, service.name)
    recipe = ctx.description.service(service.name).local
    port = free_ports(1)[0]
    bind = [recipe.host_flag, "127.0.0.1", recipe.port_flag, str(port)]
    # The interpreter running sealgate (its dependencies are the framework's); a container has its own.
    run = ServiceRun(env=dict(overrides), argv=["python3", *(_shown(ctx, a) for a in args), *bind])
    base = f"http://127.0.0.1:{port}"
    server: Server | None = None
    started = time.monotonic()
    try:
        with ctx.serve(
            [sys.executable, *args, *bind],
            log_name=f"{service.name}-{len(ctx.data.get('service_runs', []))}.log",
            cwd=cwd,
            env=_environ(service.variables, overrides),
            ready_url=base + service.ready,
            timeout=START_TIMEOUT_S if expect_start else BAD_VALUE_WAIT_S,
            grace=5,
            shown=run.argv,
        ) as server:
            if server.ready:
                run.base_url = base
            else:
                run.exit_code = server.exit_code  # None when it neither answered nor exited in time
            run.started_in_s = time.monotonic() - started
            run.output = server.lines()  # what it said while starting (a refusal names its variable there)
            yield run
    finally:
        if server is not None:  # stopped by now
            run.output = server.lines()
            if run.exit_code is None:
                run.exit_code = server.exit_code
            ctx.data.setdefault("service_runs", []).append(run.to_json())


def _settings(ctx: Context, service: ServiceUnderTest, base_url: str) -> dict[str, Any]:
    answer = request("GET", base_url + service.settings_path)
    if answer.status != 200 or not isinstance(answer.body, dict):
        ctx.fail(f"GET {service.settings_path} answered {answer.status}: {str(answer.body)[:200]}")
    return dict(answer.body)


def _started(ctx: Context, service: ServiceUnderTest, run: ServiceRun, what: str) -> str:
    if run.base_url is None:
        tail = " | ".join(run.output[-3:]) or "no output"
        ctx.fail(f"{service.name} did not start with {what} (exit code {run.exit_code}): {tail}")
    return run.base_url


def _judge_code(ctx: Context, service: ServiceUnderTest) -> list[Path]:
    """Every Python file of the service's code is a subject: its settings may depend on any of them."""
    root = _code_dir(ctx, service.name)
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts) if root.is_dir() else []
    for path in files:
        ctx.judge(path.relative_to(ctx.root.resolve()))
    return files


def _env_text(env: Mapping[str, str], service: ServiceUnderTest) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items()) or f"none of {', '.join(service.variables)} set"


def _compare(
    ctx: Context,
    service: ServiceUnderTest,
    view: dict[str, Any],
    expected: Mapping[str, Any],
    env: Mapping[str, str],
    what: str,
) -> None:
    """Each expected setting as the service reports it, and (with a source_field) where it says it came from."""
    for key, value in expected.items():
        variable = service.setting_variable(key)
        if view.get(key) != value:
            ctx.finding(
                f"with {what}: {service.name} reports {key} = {view.get(key)!r}, expected {value!r} ({variable})",
                json_path=f"GET {service.settings_path} $.{key}",
            )
        if service.source_field is not None:
            source = "env" if variable in env else "default"
            reported = (view.get(service.source_field) or {}).get(key)
            if reported != source:
                ctx.finding(
                    f"with {what}: {service.name} reports {key} from {reported!r}, expected {source!r}",
                    json_path=f"GET {service.settings_path} $.{service.source_field}.{key}",
                )


def _unknown_settings(
    ctx: Context, service: ServiceUnderTest, values: Mapping[str, Any], path: tuple[Any, ...]
) -> None:
    known = list(dict.fromkeys(service.variables.values()))
    for key in values:
        if key not in known:
            param_error(ctx, (*path, key), f"{key!r} is not a setting of `variables`", f"settings: {', '.join(known)}")


def _unknown_variables(ctx: Context, service: ServiceUnderTest, env: Mapping[str, str], path: tuple[Any, ...]) -> None:
    for name in env:
        if name not in service.variables:
            param_error(
                ctx, (*path, name), f"{name} is not one of `variables`", f"variables: {', '.join(service.variables)}"
            )


# --- checks --------------------------------------------------------------------------------------------------------


@check(
    "env_config/defaults",
    aliases=("env_config/breaker-defaults",),  # its id while only a circuit breaker used it
    title="With its variables unset, the service runs with the default settings",
    titles={"pt-BR": "Com suas variáveis ausentes, o serviço roda com as configurações padrão"},
    params=_schema({"defaults": _VALUES}, ["defaults"]),
)
def defaults(ctx: Context) -> None:
    service = service_under_test(ctx)
    _unknown_settings(ctx, service, ctx.params["defaults"], ("defaults",))
    _judge_code(ctx, service)
    what = _env_text({}, service)
    with service_process(ctx, service, {}) as run:
        view = _settings(ctx, service, _started(ctx, service, run, what))
    ctx.record("settings", view)
    _compare(ctx, service, view, ctx.params["defaults"], {}, what)


@check(
    "env_config/overrides",
    aliases=("env_config/breaker-overrides",),  # its id while only a circuit breaker used it
    title="Each variable, when set, overrides its setting's default",
    titles={"pt-BR": "Cada variável, quando definida, sobrepõe o padrão da sua configuração"},
    params=_schema(
        {
            "cases": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["env", "expect"],
                    "additionalProperties": False,
                    "properties": {"env": {**_ENV, "minProperties": 1}, "expect": _VALUES},
                },
            }
        },
        ["cases"],
    ),
)
def overrides(ctx: Context) -> None:
    service = service_under_test(ctx)
    for index, case in enumerate(ctx.params["cases"]):
        _unknown_variables(ctx, service, case["env"], ("cases", index, "env"))
        _unknown_settings(ctx, service, case["expect"], ("cases", index, "expect"))
    _judge_code(ctx, service)
    seen = []
    for case in ctx.params["cases"]:
        env = {str(k): str(v) for k, v in case["env"].items()}
        what = _env_text(env, service)
        with service_process(ctx, service, env) as run:
            view = _settings(ctx, service, _started(ctx, service, run, what))
        seen.append({"env": env, "settings": view})
        _compare(ctx, service, view, case["expect"], env, what)
    ctx.record("cases", seen)


_REQUEST_STEP = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "get": {"type": "string", "pattern": "^/"},
        "post": {"type": "string", "pattern": "^/"},
        "body": {},
        "expect": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"status": {"type": "integer"}, "body": {"type": "object"}, "settings": {"type": "object"}},
        },
        "wait": {
            "type": "object",
            "description": "wait for a setting to reach a value, timed from the end of an earlier step",
            "required": ["setting", "equals", "after", "within_s"],
            "additionalProperties": False,
            "properties": {
                "setting": {"type": "string"},
                "equals": {},
                "after": {"type": "string"},
                "not_before_s": {"type": "number", "minimum": 0},
                "within_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
                "meanwhile": {"type": "array", "description": "values allowed while waiting"},
                "record": {"type": "string", "description": "record the seconds waited under this name"},
            },
        },
    },
    "oneOf": [{"required": ["get"]}, {"required": ["post"]}, {"required": ["wait"]}],
    "examples": [{"name": "settings read", "get": "/settings", "expect": {"status": 200}}],
}


@check(
    "env_config/behaviour",
    aliases=("env_config/breaker-behaviour",),  # its id while only a circuit breaker used it
    title="The behaviour the variables configure, proven step by step on the running service",
    titles={"pt-BR": "O comportamento que as variáveis configuram, comprovado passo a passo no serviço em execução"},
    params=_schema({"env": _ENV, "steps": {"type": "array", "minItems": 1, "items": _REQUEST_STEP}}, ["env", "steps"]),
)
def behaviour(ctx: Context) -> None:
    service = service_under_test(ctx)
    env = {str(k): str(v) for k, v in ctx.params["env"].items()}
    _unknown_variables(ctx, service, env, ("env",))
    steps = ctx.params["steps"]
    names = [str(s["name"]) for s in steps]
    for index, step in enumerate(steps):
        if "wait" in step and step["wait"]["after"] not in names[:index]:
            param_error(ctx, ("steps", index, "wait", "after"), f"no earlier step is named {step['wait']['after']!r}")
    _judge_code(ctx, service)
    timeline: list[dict[str, Any]] = []
    with service_process(ctx, service, env) as run:
        base = _started(ctx, service, run, _env_text(env, service))
        try:
            Scenario(ctx, service, base, env, timeline).run(steps)
        finally:
            ctx.record("timeline", timeline)


@dataclass
class Scenario:
    ctx: Context
    service: ServiceUnderTest
    base: str
    env: dict[str, str]
    timeline: list[dict[str, Any]]
    ended: dict[str, float] = field(default_factory=dict)  # step name -> time.monotonic() when it ended
    t0: float = field(default_factory=time.monotonic)

    def settings(self) -> dict[str, Any]:
        return _settings(self.ctx, self.service, self.base)

    def fail(self, step: str, what: str) -> None:
        self.ctx.fail(f"step {step!r}: {what} (with {_env_text(self.env, self.service)})")

    def run(self, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            name = str(step["name"])
            if "wait" in step:
                self.wait(name, step["wait"])
            else:
                self.request(name, step)
            self.ended[name] = time.monotonic()

    def request(self, name: str, step: dict[str, Any]) -> None:
        method, path = ("POST", step["post"]) if "post" in step else ("GET", step["get"])
        answer = request(method, self.base + path, body=step.get("body"))
        expect = step.get("expect") or {}
        entry: dict[str, Any] = {"t_s": round(time.monotonic() - self.t0, 3), "what": name, "status": answer.status}
        body = answer.body if isinstance(answer.body, dict) else {}
        if expect.get("body"):
            entry["answer"] = {k: body.get(k) for k in expect["body"]}
        if expect.get("settings"):
            view = self.settings()
            entry["settings"] = {k: view.get(k) for k in expect["settings"]}
        self.timeline.append(entry)
        if "status" in expect and answer.status != expect["status"]:
            self.fail(
                name, f"{method} {path} answered {answer.status}, expected {expect['status']}: {str(answer.body)[:200]}"
            )
        for key, want in (expect.get("body") or {}).items():
            if body.get(key) != want:
                self.fail(
                    name, f"{method} {path} answered {key} = {body.get(key)!r}, expected {want!r} ({answer.status})"
                )
        for key, want in (expect.get("settings") or {}).items():
            if entry["settings"][key] != want:
                self.fail(name, f"{key} is {entry['settings'][key]!r}, expected {want!r}")

    def wait(self, name: str, spec: dict[str, Any]) -> None:
        """Poll the setting until it equals the value; it must not come before `not_before_s`, nor after `within_s`,
        counted from the end of step `after`; values other than `meanwhile` fail at once."""
        setting, want, after = str(spec["setting"]), spec["equals"], str(spec["after"])
        since = self.ended[after]
        not_before, within = float(spec.get("not_before_s", 0)), float(spec["within_s"])
        allowed = list(spec.get("meanwhile") or [])
        seen: dict[str, Any] = {}

        def reached() -> bool:
            now = seen["now"] = self.settings().get(setting)
            elapsed = seen["elapsed"] = time.monotonic() - since
            if now == want:
                return True
            if allowed and now not in allowed:
                self.fail(
                    name, f"{setting} went {now!r} {elapsed:.2f}s after {after!r} (expected {allowed} until {want!r})"
                )
            if elapsed > within:
                self.fail(
                    name,
                    f"{setting} still {now!r} {elapsed:.1f}s after {after!r}, expected {want!r} within {within:g}s",
                )
            return False

        # `within` counts from the end of step `after`, before this wait began: the probe itself fails once it is
        # exceeded, so poll's own bound (a try later) is never what ends the wait.
        met, _waited = poll(reached, timeout=within + POLL_S, interval=POLL_S, sleep=self.ctx.sleep)
        now, elapsed = seen["now"], seen["elapsed"]
        if not met:
            self.fail(
                name, f"{setting} still {now!r} {elapsed:.1f}s after {after!r}, expected {want!r} within {within:g}s"
            )
        if elapsed < not_before - 0.05:
            self.fail(name, f"{setting} {want!r} {elapsed:.2f}s after {after!r}, before {not_before:g}s")
        self.ctx.note_wait(f"{name}: {setting} {want}", elapsed)
        self.timeline.append(
            {
                "t_s": round(time.monotonic() - self.t0, 3),
                "what": f"{name} after {elapsed:.2f}s",
                "settings": {setting: now},
            }
        )
        if spec.get("record"):
            self.ctx.record(str(spec["record"]), round(elapsed, 3))


@check(
    "env_config/bad-values",
    title="An invalid value of any of its variables stops the service from starting, naming the variable",
    titles={"pt-BR": "Um valor inválido de qualquer de suas variáveis impede o serviço de iniciar, nomeando-a"},
    params=_schema({"values": {"type": "array", "items": {"type": "string"}, "minItems": 1}}, ["values"]),
)
def bad_values(ctx: Context) -> None:
    service = service_under_test(ctx)
    _judge_code(ctx, service)
    outcomes = []
    for variable in service.variables:
        for value in ctx.params["values"]:
            what = f"{variable}={value!r}"
            with service_process(ctx, service, {variable: value}, expect_start=False) as run:
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
                    ctx.finding(f"{service.name} started with {what} (it must refuse to start)")
                elif run.exit_code in (None, 0):
                    ctx.finding(
                        f"with {what} {service.name} neither started nor exited non-zero (exit {run.exit_code})"
                    )
                elif not message:
                    ctx.finding(
                        f"with {what} {service.name} exited {run.exit_code} without naming {variable}: "
                        f"{' | '.join(run.output[-2:]) or 'no output'}"
                    )
                elif "Traceback" in "\n".join(run.output):
                    ctx.finding(f"with {what} {service.name} died with a traceback instead of a clear message")
    ctx.record("outcomes", outcomes)


# --- the example environment file ----------------------------------------------------------------------------------


def variables_read(files: list[Path], root: Path, pattern: re.Pattern[str]) -> dict[str, tuple[str, int]]:
    """Every name matching `pattern` the code mentions as a string literal -> (file, line) of its first use.

    A literal rather than only `os.getenv(...)` calls: code may pass the name to a helper with `os.environ`, and any
    way of reading a variable needs its name spelled somewhere. Docstrings are not uses.
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
                and pattern.fullmatch(node.value)
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
    title="The example environment file documents every variable the code reads, with values the service accepts",
    titles={
        "pt-BR": (
            "O arquivo de ambiente de exemplo documenta toda variável lida pelo código, com valores que o serviço "
            "aceita"
        )
    },
    params=_schema(
        {
            "env_example": {**REPO_PATH, "examples": [".env.example"]},
            "pattern": {"type": "string", "description": "regular expression of the variable names to account for"},
        },
        ["env_example", "pattern"],
    ),
)
def env_example(ctx: Context) -> None:
    service = service_under_test(ctx)
    try:
        pattern = re.compile(str(ctx.params["pattern"]))
    except re.error as exc:
        param_error(ctx, ("pattern",), f"not a regular expression: {exc}")
    files = _judge_code(ctx, service)
    example_rel = str(ctx.params["env_example"])
    example = parse_env_example(ctx.judge(example_rel).read_text())
    used = variables_read(files, ctx.root.resolve(), pattern)
    ctx.record("variables_in_code", {k: f"{f}:{n}" for k, (f, n) in used.items()})
    ctx.record("documented", {k: v for k, (v, _n) in example.items() if pattern.fullmatch(k)})
    if not used:
        code = _code_dir(ctx, service.name)
        ctx.fail(f"no variable matching {pattern.pattern} found in {_shown(ctx, str(code))}: nothing reads them")
    for name, (file, line) in used.items():
        if name not in example:
            ctx.finding(f"{name} is read by the code but not documented in {example_rel}", file=file, line=line)
    for name, (_value, line) in example.items():
        if pattern.fullmatch(name) and name not in used:
            ctx.finding(
                f"{name} is documented but no code reads it", file=example_rel, line=line, severity=Severity.WARNING
            )
    # "Each documented value parses": the service itself is the parser — start it with the documented values.
    documented = {name: value for name, (value, _line) in example.items() if name in used}
    what = f"the values of {example_rel}"
    with service_process(ctx, service, documented) as run:
        if run.base_url is None:
            tail = " | ".join(run.output[-2:]) or "no output"
            line = min((example[n][1] for n in documented if n in tail), default=None)
            ctx.finding(f"{service.name} refuses {what}: {tail}", file=example_rel, line=line)
            return
        view = _settings(ctx, service, run.base_url)
    ctx.record("settings_with_documented_values", view)
    for variable, key in service.variables.items():
        if variable in documented and str(view.get(key)) != documented[variable].strip():
            ctx.finding(
                f"{variable}={documented[variable]} documented, but the service runs with {key}={view.get(key)}",
                file=example_rel,
                line=example[variable][1],
            )


# --- live ---------------------------------------------------------------------------------------------------------


@check(
    "env_config/live-settings",
    title="The running service reports exactly the settings its environment defines",
    titles={"pt-BR": "O serviço em execução expõe exatamente as configurações que o seu ambiente define"},
    needs_stack=True,
    params=_schema({"defaults": _VALUES}, ["defaults"]),
)
def live_settings(ctx: Context) -> None:
    service = service_under_test(ctx)
    _unknown_settings(ctx, service, ctx.params["defaults"], ("defaults",))
    for variable, key in service.variables.items():
        if key not in ctx.params["defaults"]:
            param_error(ctx, ("defaults",), f"no default for {key} ({variable}): the running service may use it")
    _judge_code(ctx, service)
    environment = ctx.stack.environment(service.name)
    configured = {k: v for k, v in environment.items() if k in service.variables}
    view = _settings(ctx, service, ctx.stack.url(service.name))
    ctx.record("environment", configured)
    ctx.record("settings", view)
    for variable, key in service.variables.items():
        what = f"the running {service.name} ({variable}={configured.get(variable)})"
        if variable in configured:
            # The environment holds text; the service reports its parsed value.
            if str(view.get(key)) != configured[variable].strip():
                ctx.finding(
                    f"with {what}: {service.name} reports {key} = {view.get(key)!r}, expected "
                    f"{configured[variable].strip()!r} ({variable})",
                    json_path=f"GET {service.settings_path} $.{key}",
                )
            if service.source_field is not None:
                reported = (view.get(service.source_field) or {}).get(key)
                if reported != "env":
                    ctx.finding(f"with {what}: {service.name} reports {key} from {reported!r}, expected 'env'")
        else:
            _compare(ctx, service, view, {key: ctx.params["defaults"][key]}, configured, what)
