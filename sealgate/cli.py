"""`sealgate` console script: the same verbs as the Nox sessions."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

from sealgate import __version__, engine
from sealgate.api.context import RunOptions
from sealgate.kernel.errors import EXIT_USAGE, InputError, Problem


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

    p = verbs.add_parser("seal", help="run every stage (EIXO), judge the criteria, render the report, create the tag")
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

    p = verbs.add_parser("eixo", help="run one stage (EIXO) and write its evidence")
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
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository (default: current directory)")

    p = verbs.add_parser("verify", help="re-check a seal and its chain of bases from git objects alone")
    p.add_argument("tag", help="the seal's tag (the spec's `tag:`)")
    _common(p)
    _as_of(p)

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
        "lint",
        help="the parecer on any repository: rule files and dashboards parsed, promtool-checked, and every metric "
        "and label judged against expositions and/or Prometheus (no spec, no stack)",
        description="Exit 0: no error finding; 1: error findings (warnings alone do not fail); 2: bad input.",
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
    root = args.repo
    sys.stdout.reconfigure(line_buffering=True)  # progress lines appear as they happen under nox/CI
    if args.verb in ("seal", "eixo"):
        options = RunOptions(
            backend=args.backend,
            no_drill=args.no_drill,
            drill=args.drill,
            no_tag=getattr(args, "no_tag", False),
            sign=getattr(args, "sign", False),
            force=getattr(args, "force", False),
        )
        if args.verb == "seal":
            return engine.main_guard(lambda: engine.seal(root, args.sprint, options))
        return engine.main_guard(lambda: engine.eixo(root, args.sprint, args.number, options))
    if args.verb == "init":
        return engine.main_guard(lambda: engine.init(root, args.sprint, args.compose))
    if args.verb == "report":
        return engine.main_guard(lambda: engine.report(root, args.sprint))
    if args.verb == "status":
        return engine.main_guard(lambda: engine.status(root, verify=not args.no_verify, today=args.as_of))
    if args.verb == "publish":
        return engine.main_guard(lambda: engine.publish(root, args.remote))
    if args.verb == "new":
        return engine.main_guard(lambda: engine.new(root, args.sprint_id))
    if args.verb == "lint":
        return engine.main_guard(lambda: engine.lint(_lint_options(args), args.format))
    return engine.main_guard(lambda: engine.verify(root, args.tag, args.sprint, today=args.as_of))


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
        metrics=args.metrics,
        prometheus=args.prometheus,
        min_age_s=durations["min_age"],
        lookback_s=durations["lookback"],
        target_labels=sorted(TARGET_LABELS | set(args.target_label)),
    )


if __name__ == "__main__":
    raise SystemExit(main())
