"""`sealgate` console script: the same verbs as the Nox sessions."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sealgate import STAGES, __version__, engine
from sealgate.errors import EXIT_USAGE
from sealgate.sprint.context import RunOptions


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sprint", help="sprint id (default: the newest spec in sprint/)")
    parser.add_argument(
        "--repo", type=Path, default=Path.cwd(), help="repository to judge (default: current directory)"
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["auto", "compose", "local"],
        default=os.environ.get("SEALGATE_BACKEND", "auto"),
        help="how to bring the stack up (default: $SEALGATE_BACKEND or auto)",
    )
    parser.add_argument(
        "--no-drill", action="store_true", help="skip live alert drills (the criteria they prove then do not pass)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealgate", description="Evidence-backed, fail-closed sprint seals.")
    parser.add_argument("--version", action="version", version=f"sealgate {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("seal", help="run every EIXO, judge the criteria, render the report, create the tag")
    _common(p)
    _run_options(p)
    p.add_argument(
        "--no-tag", action="store_true", help="judge and report without tagging (exit 0 only if every criterion passes)"
    )
    p.add_argument("--sign", action="store_true", help="make a signed tag (git tag -s; GPG or SSH per git config)")
    p.add_argument("--force", action="store_true", help="re-run every stage even where evidence could be reused")

    p = verbs.add_parser("eixo", help="run one EIXO (stage) and write its evidence")
    p.add_argument(
        "number",
        type=int,
        choices=sorted(STAGES),
        help="stage number: " + ", ".join(f"{n} {s}" for n, s in STAGES.items()),
    )
    _common(p)
    _run_options(p)

    p = verbs.add_parser("report", help="render the SEAL report from the evidence on disk")
    _common(p)

    p = verbs.add_parser("verify", help="re-check a sealed tag against the evidence on disk")
    p.add_argument("tag", help="the seal's tag, e.g. F9.10-SEALED")
    _common(p)
    return parser


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
            no_tag=getattr(args, "no_tag", False),
            sign=getattr(args, "sign", False),
            force=getattr(args, "force", False),
        )
        if args.verb == "seal":
            return engine.main_guard(lambda: engine.seal(root, args.sprint, options))
        return engine.main_guard(lambda: engine.eixo(root, args.sprint, args.number, options))
    if args.verb == "report":
        return engine.main_guard(lambda: engine.report(root, args.sprint))
    return engine.main_guard(lambda: engine.verify(root, args.tag, args.sprint))


if __name__ == "__main__":
    raise SystemExit(main())
