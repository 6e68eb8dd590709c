"""``inpars run CONFIG.yaml``: the whole pipeline from one config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inpars.config import load_config
from inpars.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from inpars.layout import STAGES

    p = sub.add_parser(
        "run", help="run the whole pipeline on a collection (resumes; skips finished stages)",
        description="Run every stage on a collection, from a YAML config or, with --dataset and no config, from a "
        "packaged recipe sized to the collection. A collection needs no judgements: without qrels/ the run "
        "chooses its model and fusion weight on held-out synthetic queries and skips evaluation; the ranker it "
        "builds is applied to new queries with 'inpars search RUN_DIR'.")
    p.add_argument("config", nargs="?", help="YAML config file (default: --recipe on --dataset)")
    p.add_argument("--dataset", "-d", help="the collection: a BEIR-format folder (corpus.jsonl; queries.jsonl and "
                   "qrels/ optional), a name under $INPARS_DATA_HOME or irds:ID; overrides the config's")
    p.add_argument("--recipe", help="a packaged recipe, used when no config is given (default: recommended); "
                   "'inpars run --recipe NAME --print-config' shows it")
    p.add_argument("--print-config", action="store_true", help="print the configuration and stop")
    p.add_argument("--from", dest="from_stage", choices=STAGES, help="redo this stage and the ones after it")
    p.add_argument("--until", choices=STAGES, help="stop after this stage")
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--run-dir", help="override run_dir")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value by its dotted path, e.g. --set generate.n_docs=50 (YAML value)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from inpars.pipeline import run_pipeline

    overrides: dict[str, object] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: the value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if args.run_dir:
        overrides["run_dir"] = args.run_dir
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.config:
        if args.recipe:
            raise ConfigError("give a config file or --recipe, not both")
        if args.dataset:
            overrides["dataset.name"] = args.dataset
        cfg = load_config(args.config, overrides)
    elif args.dataset:
        from inpars.recipes import DEFAULT_RECIPE, recipe_config

        cfg = recipe_config(args.recipe or DEFAULT_RECIPE, args.dataset, args.run_dir, overrides)
    elif args.recipe and args.print_config:
        from inpars.recipes import recipe_text

        print(recipe_text(args.recipe), end="")
        return 0
    else:
        raise ConfigError("nothing to run: give a config file, or --dataset PATH (your collection) to run the "
                          "recommended recipe on it")
    if args.print_config:
        print(yaml.safe_dump(cfg.model_dump(mode="json", exclude_defaults=True), sort_keys=False), end="")
        return 0

    def progress(name: str, res: object) -> None:
        if isinstance(res, str):
            print(f"[{name}] skipped: {res}", flush=True)
            return
        skipped = getattr(res, "skipped", False)
        seconds = getattr(res, "manifest", {}).get("seconds", 0.0)
        print(f"[{name}] {'up to date' if skipped else f'done in {seconds:.1f} s'}", flush=True)

    quiet = getattr(args, "quiet", False)
    result = run_pipeline(cfg, from_stage=args.from_stage, force=args.force, until=args.until,
                          progress=None if quiet else progress)
    if result.table:
        print()
        print(result.table)
    _print_products(result.run_dir)
    print(f"run folder: {result.run_dir} ({result.seconds:.1f} s)")
    return 0


def _print_products(run_dir: Path) -> None:
    """Where a finished run's products are: the report, the model, the ranker and how to apply it."""
    from inpars.layout import output_path

    ranker = output_path(run_dir, "rerank", "ranker")
    report = output_path(run_dir, "report", "markdown")
    if not ranker.is_file():
        return
    spec = json.loads(ranker.read_text(encoding="utf-8"))
    alpha = spec.get("alpha")
    fused = f"BM25 top {spec.get('depth')} fused with it at weight {alpha:g}" if alpha is not None else "BM25 reranked by it"
    print(f"\nmodel:  {spec.get('model')} ({spec.get('model_choice')}; {spec.get('model_type')})")
    print(f"ranker: {ranker} ({fused})")
    if report.is_file():
        print(f"report: {report}")
    print(f"use it: inpars search {run_dir} --queries QUERIES.tsv --out run.trec")
