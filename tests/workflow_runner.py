"""Run a GitHub Actions job's `run:` steps on this machine the way a runner does, for the tests of the seal workflow.

What it does as GitHub's runner does (docs: "Workflow syntax", "Expressions", "Variables", "Workflow commands"):

- the job is the one whose `if:` holds for the event; each step's `if:` is evaluated (default `success()`: a failed
  step skips the rest except `always()`/`failure()` ones), with `github.*` contexts, `hashFiles()` and `==` that
  compares strings case-insensitively;
- environment: the machine's, then the GITHUB_* variables a runner sets (GITHUB_EVENT_NAME, GITHUB_REF,
  GITHUB_STEP_SUMMARY, GITHUB_ENV, …), then the workflow's, the job's and the step's `env:` (`${{ }}` evaluated);
- a `run:` step is its script written to a file and run as `bash --noprofile --norc -eo pipefail FILE` in the
  workspace; `${{ }}` in a script is substituted first; GITHUB_ENV and GITHUB_PATH written by a step apply to the next.

What it cannot do here, said by the caller's arguments: `uses:` steps run no action (no GitHub, no Node action
runtime): each is recorded with its inputs, and a caller-given handler may stand in for one, returning what it puts
first on PATH (setup-python: a fresh virtualenv's bin). `overrides` are applied last, over the workflow's own `env:` — what differs from a
GitHub runner (no image registry answers here: the offline image). `sudo` is a stand-in that runs the command as is
(GitHub's runners give passwordless sudo; a test runs as the user it is).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STEP_TIMEOUT_S = 1800.0


@dataclass
class StepRun:
    name: str
    ran: bool  # run here: a `run:` script, or a `uses:` step a handler stood in for
    due: bool = True  # its `if:` held: on GitHub it would have run (a `uses:` step, its action)
    uses: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # a `uses:` step's `with:` (evaluated)
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""


@dataclass
class JobRun:
    job: str
    steps: list[StepRun]
    summary: str  # what the steps wrote to GITHUB_STEP_SUMMARY

    @property
    def ok(self) -> bool:
        return all(s.exit_code in (None, 0) for s in self.steps)

    def step(self, name: str) -> StepRun:
        (found,) = [s for s in self.steps if s.name == name]
        return found

    def outputs(self) -> list[str]:
        return [text for s in self.steps for text in (s.stdout, s.stderr)]


# --- expressions ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||<=|>=|[!<>(),])"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+|\.\*)*))"
)


class _Expression:
    """A recursive-descent reader of GitHub's expression language (literals, context paths, `!`, comparisons,
    `&&`, `||`, parentheses, function calls)."""

    def __init__(self, text: str, contexts: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise ValueError(f"cannot read the expression {text!r} at {position}")
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.position = 0
        self.contexts = contexts
        self.functions = functions

    def value(self) -> Any:
        result = self._or()
        if self.position != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.position][1]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._comparison()
        while self._peek() == "&&":
            self._take()
            right = self._comparison()
            left = right if truthy(left) else left
        return left

    def _comparison(self) -> Any:
        left = self._unary()
        while self._peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self._take()[1]
            right = self._unary()
            if op in ("==", "!="):
                left = loose_equal(left, right) == (op == "==")
            else:
                a, b = float(left), float(right)
                left = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            inner = self._or()
            self._take()  # ")"
            return inner
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text)
        if kind == "name" and self._peek() == "(":
            self._take()
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take()
            return self.functions[text.lower()](*args)
        if kind == "name":
            if text in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[text]
            value: Any = self.contexts
            for part in text.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            return value
        raise ValueError(f"unexpected {text!r}")


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, 0.0, "")


def loose_equal(left: Any, right: Any) -> bool:
    """GitHub's `==`: strings ignore case; a number and a string compare as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, (int, float)) != isinstance(right, (int, float)):
        try:
            return float(left) == float(right)
        except (TypeError, ValueError):
            return False
    return left == right


@dataclass
class _JobState:
    failed: bool = False


class Runner:
    """One job of a workflow, on one event."""

    def __init__(
        self,
        workflow: Path,
        event: str,
        workspace: Path,
        *,
        environ: Mapping[str, str],
        github: Mapping[str, Any],
        overrides: Mapping[str, str] | None = None,
        uses_handlers: Mapping[str, Callable[[dict[str, str]], list[str]]] | None = None,
        scratch: Path,
    ) -> None:
        self.document = yaml.safe_load(workflow.read_text())
        self.event = event
        self.workspace = workspace
        self.environ = dict(environ)
        self.github = {"event_name": event, **github}
        self.overrides = dict(overrides or {})
        self.uses_handlers = dict(uses_handlers or {})
        self.scratch = scratch
        self.state = _JobState()

    # --- expressions in context ---

    def evaluate(self, text: str) -> Any:
        functions: dict[str, Callable[..., Any]] = {
            "always": lambda: True,
            "success": lambda: not self.state.failed,
            "failure": lambda: self.state.failed,
            "cancelled": lambda: False,
            "hashfiles": self._hash_files,
            "contains": lambda a, b: (
                (str(b).casefold() in str(a).casefold())
                if isinstance(a, str)
                else any(loose_equal(x, b) for x in a or [])
            ),
            "startswith": lambda a, b: str(a).casefold().startswith(str(b).casefold()),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: str(a[int(m.group(1))]), f),
        }
        return _Expression(text, {"github": self.github, "env": self.environ}, functions).value()

    def condition(self, text: Any, default: str) -> bool:
        expression = str(text if text is not None else default).strip()
        if expression.startswith("${{") and expression.endswith("}}"):
            expression = expression[3:-2]
        # As GitHub: a condition that calls no status function is `success() && (...)`.
        if not re.search(r"\b(always|success|failure|cancelled)\s*\(", expression):
            expression = f"success() && ({expression})"
        return truthy(self.evaluate(expression))

    def substitute(self, text: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _as_text(self.evaluate(m.group(1))), text)

    def _hash_files(self, *patterns: str) -> str:
        files = sorted({p for pattern in patterns for p in glob.glob(str(self.workspace / pattern), recursive=True)})
        files = [f for f in files if Path(f).is_file()]
        if not files:
            return ""
        digest = hashlib.sha256()
        for name in files:
            digest.update(hashlib.sha256(Path(name).read_bytes()).digest())
        return digest.hexdigest()

    # --- the job ---

    def jobs_for_event(self) -> list[str]:
        """The jobs whose `if:` holds for this event (in the workflow's order)."""
        return [name for name, job in self.document["jobs"].items() if self.condition(job.get("if"), "success()")]

    def job_for_event(self) -> str:
        chosen = self.jobs_for_event()
        if len(chosen) != 1:
            raise AssertionError(f"{self.event}: expected one job to run, the workflow runs {chosen}")
        return chosen[0]

    def run(self) -> JobRun:
        name = self.job_for_event()
        job = self.document["jobs"][name]
        files = {key: self.scratch / key.lower() for key in ("GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH")}
        files["GITHUB_OUTPUT"] = self.scratch / "github_output"
        for path in files.values():
            path.write_text("")
        runner_env = {
            **self.environ,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_EVENT_NAME": self.event,
            "GITHUB_JOB": name,
            "RUNNER_TEMP": str(self.scratch),
            **{f"GITHUB_{k.upper()}": str(v) for k, v in self.github.items() if isinstance(v, str) and k != "token"},
            **{key: str(path) for key, path in files.items()},
        }
        extra_env: dict[str, str] = {}  # written to GITHUB_ENV by earlier steps
        extra_path: list[str] = []  # written to GITHUB_PATH, or a stand-in action's
        base_env = {
            **runner_env,
            **{k: self.substitute(str(v)) for k, v in (self.document.get("env") or {}).items()},
            **{k: self.substitute(str(v)) for k, v in (job.get("env") or {}).items()},
        }
        steps: list[StepRun] = []
        for index, step in enumerate(job["steps"]):
            title = step.get("name") or step.get("uses") or f"step {index}"
            if not self.condition(step.get("if"), "success()"):
                steps.append(StepRun(title, ran=False, due=False, uses=step.get("uses")))
                continue
            env = {**base_env, **extra_env, **{k: self.substitute(str(v)) for k, v in (step.get("env") or {}).items()}}
            env.update(self.overrides)
            env["PATH"] = os.pathsep.join([*extra_path, env.get("PATH", os.defpath)])
            if "uses" in step:
                inputs = {k: self.substitute(str(v)) for k, v in (step.get("with") or {}).items()}
                action = str(step["uses"]).split("@", 1)[0]
                handler = self.uses_handlers.get(action)
                if handler is not None:  # a stand-in for the action: what it adds to PATH for the next steps
                    extra_path[:0] = handler(inputs)
                steps.append(StepRun(title, ran=handler is not None, uses=str(step["uses"]), inputs=inputs))
                continue
            result = self._run_script(self.substitute(str(step["run"])), env, step.get("working-directory"))
            steps.append(StepRun(title, True, exit_code=result.returncode, stdout=result.stdout, stderr=result.stderr))
            if result.returncode != 0:
                self.state.failed = True
            extra_env.update(_read_env_file(files["GITHUB_ENV"]))
            extra_path[:0] = [line for line in files["GITHUB_PATH"].read_text().splitlines() if line.strip()][::-1]
            files["GITHUB_PATH"].write_text("")
        return JobRun(name, steps, files["GITHUB_STEP_SUMMARY"].read_text())

    def _run_script(self, script: str, env: dict[str, str], directory: str | None) -> subprocess.CompletedProcess[str]:
        with tempfile.NamedTemporaryFile("w", suffix=".sh", dir=self.scratch, delete=False) as handle:
            handle.write(script)
        try:
            return subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", handle.name],
                cwd=self.workspace / (directory or ""),
                env=env,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.unlink(handle.name)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines, and NAME<<DELIMITER heredocs, as a step writes them to GITHUB_ENV."""
    found: dict[str, str] = {}
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            key, delimiter = line.split("<<", 1)
            block = []
            index += 1
            while index < len(lines) and lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            found[key] = "\n".join(block)
        elif "=" in line:
            key, value = line.split("=", 1)
            found[key] = value
        index += 1
    return found


SUDO_STAND_IN = """#!/bin/sh
# GitHub's runners give passwordless sudo; this machine's test runs as the user it is (root in CI): run the command
# as is, keeping the environment (what --preserve-env asks for).
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -E|--preserve-env|--preserve-env=*) shift ;;
    -*) echo "sudo stand-in: option $1 not supported" >&2; exit 2 ;;
    *) break ;;
  esac
done
exec "$@"
"""


def sudo_stand_in(directory: Path) -> Path:
    """A directory holding the `sudo` stand-in, to put first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    sudo = directory / "sudo"
    sudo.write_text(SUDO_STAND_IN)
    sudo.chmod(0o755)
    return directory
