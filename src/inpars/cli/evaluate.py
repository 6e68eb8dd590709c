"""``inpars evaluate``: trec_eval measures of one or more runs, side by side, with significance tests."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inpars.cli._common import add_config_arg, add_section_flags, resolve_config, section_values
from inpars.config import EvaluateConfig
from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate TREC runs (nDCG@10, R@100, ...) with paired significance tests",
        description=(
            "Evaluate runs on a dataset split's judgements (or a qrels file) with trec_eval's measures. "
            "Queries a run does not answer count 0 (trec_eval -c). With several runs, each is tested "
            "against the baseline with a paired t-test and a paired randomisation test."
        ),
    )
    add_config_arg(p)
    p.add_argument("runs", nargs="+", metavar="RUN", help="TREC run files")
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--split", default=None, help="judgements split (default: dataset.eval_split, 'test')")
    p.add_argument("--qrels", help="qrels file (TREC or BEIR tsv) instead of --dataset")
    p.add_argument("--names", nargs="+", help="run names (default: file names without extension)")
    add_section_flags(p, EvaluateConfig, skip={"tests"}, helps={
        "baseline": "run name to test against (default: evaluate.baseline when among the names, else the first run)",
    })
    p.add_argument("--tests", nargs="+", choices=["ttest", "permutation", "none"], help="significance tests")
    p.add_argument("--seed", type=int, default=None, help="seed of the randomisation test (default: config seed)")
    p.add_argument("--ignore-identical-ids", action="store_true",
                   help="drop hits whose document id is the query id, as BEIR's evaluation does (ArguAna, Quora); "
                        "default: kept, as trec_eval keeps them")
    p.add_argument("--markdown", help="write the tables as Markdown here")
    p.add_argument("--json", help="write everything (per-query values included) as JSON here")
    p.set_defaults(func=run)


def _names(paths: list[str], names: list[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(paths):
            raise ConfigError(f"--names gives {len(names)} names for {len(paths)} runs")
        out = names
    else:
        out = []
        for p in paths:
            stem = Path(p).name
            for ext in (".gz", ".trec", ".run", ".txt", ".tsv"):
                stem = stem.removesuffix(ext)
            out.append(stem)
    if len(set(out)) != len(out):
        if names is not None:
            raise ConfigError(f"run names must differ: {out}")
        out = [str(p) for p in paths]
    return out


def run(args: argparse.Namespace) -> int:
    from inpars.evaluation import evaluate_dataset, evaluate_runs

    fields = section_values(args, EvaluateConfig)
    requested_baseline = fields.pop("baseline", None)
    if args.tests is not None:
        fields["tests"] = [t for t in args.tests if t != "none"]
    cfg = resolve_config(args, "evaluate", fields, dataset=args.dataset)
    names = _names(args.runs, args.names)
    runs = dict(zip(names, args.runs, strict=True))
    ev = cfg.evaluate
    if requested_baseline is not None:
        baseline = requested_baseline
    elif ev.baseline in runs:
        baseline = ev.baseline
    else:
        baseline = names[0] if len(names) > 1 else None
    seed = args.seed if args.seed is not None else cfg.seed
    from inpars.safety import check_output

    inputs = [*args.runs, args.qrels, getattr(args, "config", None)]
    written = [check_output(path, inputs, cfg.dataset.name, flag=flag).resolve()
               for flag, path in (("--markdown", args.markdown), ("--json", args.json)) if path]
    if len(set(written)) < len(written):
        raise ConfigError("--markdown and --json name the same file; give two paths")
    kwargs: dict[str, Any] = {
        "measures": ev.measures,
        "baseline": baseline,
        "tests": ev.tests,
        "permutations": ev.permutations,
        "seed": seed,
        "ignore_identical_ids": args.ignore_identical_ids,
    }
    if args.qrels:
        result = evaluate_runs(args.qrels, runs, **kwargs)
    elif cfg.dataset.name:
        result = evaluate_dataset(cfg.dataset.name, args.split or cfg.dataset.eval_split or "test", runs, **kwargs)
    else:
        raise ConfigError("no judgements: give --dataset (or a --config with dataset.name) or --qrels")
    result.save(json_path=args.json, markdown_path=args.markdown)
    print(result.to_text())
    for path in (args.markdown, args.json):
        if path:
            print(f"wrote {path}")
    return 0
