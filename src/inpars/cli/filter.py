"""``inpars filter``: keep the best generated queries (always-on checks, then filter steps)."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import add_config_arg, add_section_flags, resolve_config, section_values
from inpars.config import FilterConfig, PipelineConfig
from inpars.errors import ConfigError

STEP_INTRO = """\
filter steps, run in order after the always-on checks (empty, flagged, too short/long, copies the
document, duplicate). Each --step is NAME[:key=value,...]; a key is one of the filter's fields or
options below (in a config file, fields are keys of the step and options go under 'options:').
Given --step flags replace the config's steps; '--step none' runs the always-on checks only.

filters:
"""

EXAMPLES = """\
examples:
  inpars filter -d scifact --in queries.jsonl --out filtered.jsonl --step logprob:top_fraction=0.5
  inpars filter -d scifact --in queries.jsonl --out filtered.jsonl \\
      --step logprob:top_k=2000 --step consistency:top_k=3
  inpars filter -d scifact --in queries.jsonl --out filtered.jsonl \\
      --step reranker:top_k=1000,model=cross-encoder/ms-marco-MiniLM-L-6-v2,batch_size=64
"""


def step_help() -> str:
    """The ``--help`` epilog: the step syntax, every filter with its fields and options (from the
    registry, :func:`inpars.filter.filters_help`), examples."""
    from inpars.filter import filters_help

    return f"{STEP_INTRO}{filters_help()}\n\n{EXAMPLES}"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "filter",
        help="keep the best generated queries",
        description="Filter generated queries; writes the kept records (same JSONL format) and a report "
        "beside them (filtered.jsonl -> filtered.report.json).",
        epilog=step_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--in", dest="input", required=True, help="generated queries (JSONL)")
    p.add_argument("--out", "-o", required=True, help="filtered queries to write (JSONL)")
    p.add_argument("--step", action="append", default=None, metavar="NAME[:k=v,...]", help="a filter step (repeatable)")
    # steps: the --step flags above (NAME[:k=v,...], one per step)
    add_section_flags(p, FilterConfig, skip={"steps"}, helps={
        "copy_threshold": "drop a query when a run of this share of its tokens is copied from the document "
        "('none' disables the check)",
    })
    p.add_argument(
        "--seed", type=int, default=None, help=f"seed (default: the config's, {PipelineConfig.model_fields['seed'].default})"
    )
    p.add_argument("--index-dir", default=None, help="the folder of the BM25 index, as 'inpars retrieve --index-dir' (default: one under the cache)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.filter import filter_queries, parse_step

    steps: list[dict[str, Any]] | None = None
    if args.step is not None:
        specs = [s for s in args.step if s.strip().lower() != "none"]
        steps = [parse_step(s).model_dump() for s in specs]
    fields: dict[str, Any] = {"steps": steps, **section_values(args, FilterConfig)}
    cfg = resolve_config(args, "filter", fields, dataset=args.dataset)
    for key, value in fields.items():
        if value is None and key != "steps":  # '--copy-threshold none' disables the check
            setattr(cfg.filter, key, None)
    if args.seed is not None:
        cfg.seed = args.seed
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    from inpars.safety import check_output

    out = check_output(args.out, [args.input], cfg.dataset.name)
    check_output(out.with_name(out.stem + ".report.json"), [args.input], cfg.dataset.name, flag="report of --out")
    bm25 = cfg.retrieve.index_params()
    report = filter_queries(
        args.input,
        args.out,
        dataset=cfg.dataset.name,
        seed=cfg.seed,
        index_dir=args.index_dir,
        bm25=bm25,
        **cfg.filter.model_dump(),
    )
    print(report.summary())
    return 0

