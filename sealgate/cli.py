"""`sealgate` console script: the same verbs as the Nox sessions.

Each verb imports only what it uses (`sealgate lint`, run by pre-commit on every commit, reads its files before the
engine, git, the evidence store, the check library or Jinja2 are ever imported)."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from sealgate import __version__
from sealgate.kernel.errors import EXIT_USAGE, InputError, Interrupted, Problem, SealgateError


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sprint", help="sprint id (default: the newest spec in sprint/)")
    parser.add_argument(
        "--repo", type=Path, default=Path.cwd(), help="repository to judge (default: current directory)"
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default=os.environ.get("SEALGATE_BACKEND", "auto"),
        help="how to bring the stack up: auto, compose, local or an installed backend (default: $SEALGATE_BACKEND "
        "or auto)",
    )
    parser.add_argument(
        "--no-drill", action="store_true", help="skip live alert drills (the criteria they prove then do not pass)"
    )
    parser.add_argument(
        "--drill",
        choices=["default", "all"],
        default="default",
        help="all: also run the drill phases the spec marks `on_request: true` (in parallel with the others, so a "
        "full drill costs its longest alert window)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealgate", description="Evidence-backed, fail-closed sprint seals.")
    parser.add_argument("--version", action="version", version=f"sealgate {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("seal", help="run every stage, judge the criteria, render the report, create the tag")
    _common(p)
    _run_options(p)
    p.add_argument(
        "--no-tag", action="store_true", help="judge and report without tagging (exit 0 only if every criterion passes)"
    )
    p.add_argument(
        "--sign",
        action="store_true",
        help="sign every statement (DSSE envelope) and the tag with the SSH key git signs with",
    )
    p.add_argument("--force", action="store_true", help="re-run every stage even where evidence could be reused")

    p = verbs.add_parser("eixo", help="run one stage and write its evidence")
    p.add_argument("number", type=int, help="the stage's number, as the sprint spec declares it")
    _common(p)
    _run_options(p)

    p = verbs.add_parser("report", help="render the SEAL report from the evidence on disk")
    _common(p)

    p = verbs.add_parser(
        "init", help="start using sealgate in this repository (noxfile, spec skeleton, stack description)"
    )
    p.add_argument("--sprint", default="S1", help="the first sprint's id (default: S1)")
    p.add_argument(
        "--compose", help="the compose file (default: compose.yaml or docker-compose.yml at the top of the repository)"
    )
    p.add_argument(
        "--example",
        metavar="NAME",
        help="write the example spec NAME instead of the skeleton, commented stage by stage and check by check "
        f"(examples: {', '.join(_example_names())})",
    )
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository (default: current directory)")

    p = verbs.add_parser(
        "checks",
        help="the check library: every check (id, title, stage kind, whether it needs the stack), or one check's "
        "parameters and an example `with:` block",
        description="Parameters come from the JSON Schema the spec loader validates `with:` against. "
        "`--markdown` prints the reference page (docs/checks.md).",
    )
    p.add_argument("check_id", nargs="?", metavar="ID", help="one check (a former id works too)")
    p.add_argument("--language", default="en", help="the titles' language: a language a spec may use (en, pt-BR)")
    p.add_argument("--markdown", action="store_true", help="the library as markdown, as docs/checks.md")
    p.add_argument("--sprint", help="also the checks this sprint spec's plugins add")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository (default: current directory)")

    p = verbs.add_parser("verify", help="re-check a seal and its chain of bases from git objects alone")
    p.add_argument("tag", help="the seal's tag (the spec's `tag:`)")
    _common(p)
    _as_of(p)
    p.add_argument(
        "--vsa",
        type=Path,
        metavar="FILE",
        help="also write the outcome as a SLSA Verification Summary Attestation (in-toto Statement), PASSED or "
        "FAILED; the exit code is verify's",
    )
    p.add_argument(
        "--sign",
        action="store_true",
        help="write the --vsa file as a DSSE envelope signed with the SSH key git signs with",
    )

    p = verbs.add_parser("status", help="every sprint in sprint/: open, sealed, verified or broken, and its base")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="repository (default: current directory)")
    p.add_argument("--no-verify", action="store_true", help="do not re-verify sealed sprints (say 'sealed')")
    _as_of(p)

    p = verbs.add_parser("publish", help="push the seal tags (and the branch fast-forwarded to a seal commit)")
    p.add_argument("remote", nargs="?", default="origin", help="remote to push to (default: origin)")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="repository (default: current directory)")

    p = verbs.add_parser("new", help="draft sprint/<ID>.yaml from the newest sealed sprint's next steps")
    p.add_argument("sprint_id", metavar="ID", help="the new sprint's id, e.g. F9.11")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="repository (default: current directory)")

    p = verbs.add_parser(
        "diff",
        help="what changed from seal A to seal B (or to the open sprint's evidence): criteria, checks, rules, alert "
        "coverage and drill times, restore times, waivers, images and tool versions",
        description="A and B: seal tags or seal commits; B omitted (or --open): the open sprint judged from "
        "artifacts/. Exit 0: a diff is information, not a verdict; 2: a ref that names no seal.",
    )
    p.add_argument("a", metavar="A", help="the earlier seal: its tag (the spec's `tag:`) or its seal commit")
    p.add_argument("b", metavar="B", nargs="?", help="the later seal (default: the open sprint, as --open)")
    p.add_argument("--open", action="store_true", help="compare A with the open sprint judged from artifacts/")
    p.add_argument("--sprint", help="the open sprint (default: the newest open spec in sprint/)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="repository (default: current directory)")

    p = verbs.add_parser(
        "lint",
        help="the parecer on any repository: rule files and dashboards parsed, promtool-checked, and every metric "
        "and label judged against expositions and/or Prometheus (no spec, no stack)",
        description="Exit 0: no error finding; 1: error findings (warnings alone do not fail); 2: bad input. "
        "File names (what pre-commit passes) are sorted by content: a YAML with `groups:` or a PrometheusRule is a "
        "rule file, a JSON with `panels`, `rows` or `dashboard` a dashboard; any other file is said and skipped. "
        "Options taking several values stop at the next option: write `--metrics=FILE` (or end them with `--`) "
        "before file names.",
    )
    p.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="files to lint, sorted into rule files and dashboards by content; others are skipped (pre-commit)",
    )
    p.add_argument("--rules", nargs="+", action="extend", default=[], metavar="GLOB", help="rule files (** recurses)")
    p.add_argument("--dashboards", nargs="+", action="extend", default=[], metavar="GLOB", help="Grafana dashboards")
    p.add_argument(
        "--metrics",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE_OR_URL",
        help="text expositions (files or /metrics URLs): what the code exports",
    )
    p.add_argument("--prometheus", metavar="URL", help="a Prometheus: what is held now, and its history")
    p.add_argument("--format", choices=["text", "json", "sarif"], default="text")
    p.add_argument("--min-age", default="1h", help="a metric gone from Prometheus for less is a warning (default 1h)")
    p.add_argument("--lookback", default="7d", help="how far back Prometheus' history is read (default 7d)")
    p.add_argument(
        "--target-label",
        action="append",
        default=[],
        metavar="LABEL",
        help="a label Prometheus adds at scrape time (job and instance always are); not in an exposition",
    )
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="where globs and files are read (default: .)")
    return parser


def _example_names() -> list[str]:
    """The example specs the wheel ships (listed from the package data: the help of every verb is built at each run,
    and importing the scaffold, Nox included, would cost `sealgate lint` a tenth of a second)."""
    folder = resources.files("sealgate") / "examples"
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _as_of(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        type=datetime.date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="judge waivers as of this day (default: today)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed a usage line
        return EXIT_USAGE if exc.code else 0
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen under nox/CI
    return main_guard(lambda: run_verb(args))


def run_verb(args: argparse.Namespace) -> int:
    root = args.repo
    if args.verb == "lint":
        from sealgate import lint

        return lint.run(_lint_options(args), args.format)
    if args.verb == "checks":
        from sealgate import catalogue

        return catalogue.checks(
            root, args.check_id, language=args.language, as_markdown=args.markdown, sprint=args.sprint
        )
    from sealgate import engine

    if args.verb in ("seal", "eixo"):
        from sealgate.api.context import RunOptions

        options = RunOptions(
            backend=args.backend,
            no_drill=args.no_drill,
            drill=args.drill,
            no_tag=getattr(args, "no_tag", False),
            sign=getattr(args, "sign", False),
            force=getattr(args, "force", False),
        )
        if args.verb == "seal":
            return engine.seal(root, args.sprint, options)
        return engine.eixo(root, args.sprint, args.number, options)
    if args.verb == "init":
        return engine.init(root, args.sprint, args.compose, example=args.example)
    if args.verb == "report":
        return engine.report(root, args.sprint)
    if args.verb == "status":
        return engine.status(root, verify=not args.no_verify, today=args.as_of)
    if args.verb == "publish":
        return engine.publish(root, args.remote)
    if args.verb == "new":
        return engine.new(root, args.sprint_id)
    if args.verb == "diff":
        return engine.diff(root, args.a, args.b, args.open, args.sprint, args.format)
    return engine.verify(root, args.tag, args.sprint, today=args.as_of, vsa=args.vsa, sign=args.sign)


def main_guard(func: Callable[[], int]) -> int:
    """Run a verb: user mistakes become one clear line and a non-zero exit, never a traceback."""
    try:
        return func()
    except SealgateError as exc:
        for problem in exc.problems:
            print(f"sealgate: {problem}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"sealgate: interrupted (SIGINT) {_where(exc)}: stack stopped, no tag created", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"sealgate: interrupted (SIGTERM) {_where(exc)}: stack stopped, no tag created", file=sys.stderr)
        return Interrupted.exit_code


def _where(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args and exc.args[0] else "before any stage ran"


def _lint_options(args: argparse.Namespace) -> Any:
    from sealgate.analysis.parecer import TARGET_LABELS
    from sealgate.analysis.rulefiles import duration_s
    from sealgate.lint import LintOptions

    durations = {}
    for option in ("min_age", "lookback"):
        try:
            durations[option] = duration_s(getattr(args, option))
        except ValueError as exc:
            raise InputError(Problem(f"--{option.replace('_', '-')}", str(exc), "e.g. 30m, 1h, 7d")) from None
    return LintOptions(
        root=args.repo,
        rules=args.rules,
        dashboards=args.dashboards,
        files=args.files,
        metrics=args.metrics,
        prometheus=args.prometheus,
        min_age_s=durations["min_age"],
        lookback_s=durations["lookback"],
        target_labels=sorted(TARGET_LABELS | set(args.target_label)),
    )


if __name__ == "__main__":
    raise SystemExit(main())
