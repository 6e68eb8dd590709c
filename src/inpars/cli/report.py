"""``inpars report RUN_DIR``: rebuild the Markdown/HTML report of a pipeline run."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild the report of a run folder")
    p.add_argument("run_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.report import build_report

    path = build_report(args.run_dir)
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0
