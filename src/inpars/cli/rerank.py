"""``inpars rerank``: rerank a first-stage TREC run with a trained reranker (any registered model family)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inpars.cli._common import (
    add_config_arg,
    add_option_arg,
    add_section_flags,
    resolve_config,
    section_values,
)
from inpars.config import RerankConfig
from inpars.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    from inpars.families import family_help
    from inpars.rerank.engines import engine_help

    p = subparsers.add_parser(
        "rerank",
        help="rerank a first-stage run (TREC format) with a trained reranker",
        description=(
            "Score the top --depth documents of each query of a first-stage run with a reranker and write "
            "the reranked run; the first-stage documents below --depth follow in their first-stage order, so "
            "deep recall is kept (as in 'inpars run'). Per-query scores are kept under OUT.scores/, so an "
            "interrupted rerank resumes. With --interpolate, the weight of the reranker score against the "
            "first-stage score is chosen on --tune-split (never the test split) by reranking --tune-queries "
            "queries of --tune-run, sampled exactly as 'inpars run' samples them, and OUT holds the "
            "interpolated run (the reranker-only run goes to OUT's name with '.rerank-only' before its "
            "suffix, the weights tried, the decision and the tuning queries to OUT.fusion.json). The weight "
            "is chosen by the rule 'inpars run' uses (inpars.decision): with fewer than "
            "--min-decision-queries tuning queries, weight 0.5 is kept without a choice."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--out", "-o", required=True, help="TREC run to write")
    p.add_argument("--split", default=None,
                   help="take query texts from this split only (default: every query of the dataset; the "
                        "split named by dataset.eval_split is the one --tune-split must differ from)")
    p.add_argument("--queries", default=None, metavar="FILE",
                   help="take query texts from this file instead (TSV 'id<TAB>text' or JSONL {_id, text})")
    add_section_flags(p, RerankConfig, aliases={"first_stage": ["--run", "-r"], "model": ["-m"]}, helps={
        "model": "reranker checkpoint folder, hub id or packaged name",
        "model_type": f"default: read from the checkpoint. {family_help()}",
        "first_stage": "first-stage TREC run to rerank",
        "engine": engine_help(),
        "interpolate": "interpolate with the first-stage score, at --alpha, or at the weight tuned on --tune-split "
        "(with --tune-run; giving --tune-run alone interpolates when the config's rerank.interpolate is on)",
        "alpha": "fuse with the first stage at this weight (reranker share, 0..1): no tuning, no labels; OUT holds "
        "the fused run, the reranker-only run goes beside it",
        "tune_split": "labelled split to tune the weight on (required with --tune-run; not the reranked split)",
        "tune_queries": "tuning queries sampled from --tune-run",
    })
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the config's, else all)")
    add_option_arg(p, "--executor-option", "executor option (repeatable), e.g. --executor ray "
                   "--executor-option actors=2 (see inpars.ray_cluster)")
    p.add_argument("--tune-run", default=None, help="first-stage run of the --tune-split queries")
    p.add_argument("--no-resume", action="store_true", help="ignore scores kept from an interrupted rerank")
    p.add_argument("--tag", default="inpars-rerank", help="run tag, last column of the TREC run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars import rerank
    from inpars.datasets import load_dataset, read_run_dict
    from inpars.reranking import RerankFiles, labelled_tune_set, rerank_and_fuse
    from inpars.scoring.base import release

    cfg, interpolate = _settings(args)
    rc = cfg.rerank
    ds = load_dataset(cfg.dataset.name)
    first = read_run_dict(rc.first_stage)
    if args.queries:
        from inpars.datasets import select_queries

        texts, _ = select_queries(ds, args.split, args.queries)
    else:
        texts = ds.queries(args.split) if args.split else ds.queries()
    queries = {q: texts[q] for q in first if q in texts}
    # tuning reads a labelled split's judgements: only when both the run and the split are named (opt-in)
    tune = None
    if interpolate and rc.tune_split:
        try:
            tune = labelled_tune_set(ds, rc.tune_split, read_run_dict(args.tune_run), rc.tune_queries, cfg.seed)
        except ConfigError as exc:
            raise ConfigError(f"--tune-run {args.tune_run}: {exc}") from None
    scorer = rerank.load_scorer(
        rc.model, rc.model_type, batch_size=rc.batch_size, max_length=rc.max_length, engine=rc.engine,
        threads=args.threads or cfg.threads, executor=rc.executor,
        executor_options={**rc.executor_options, **dict(args.executor_option or [])},
    )
    out = Path(args.out)
    fused = tune is not None or rc.alpha is not None
    try:
        done = rerank_and_fuse(ds, first, queries, scorer, depth=rc.depth, tune=tune, where=str(rc.tune_split),
                               supervised=True, alpha=rc.alpha, alphas=rc.alphas,
                               min_queries=rc.min_decision_queries, max_p=rc.decision_p, seed=cfg.seed,
                               files=RerankFiles.beside(out, fused), resume=not args.no_resume, tag=args.tag)
    finally:
        release(scorer)
    how = f"{done.scorer.get('model_type')}, {done.scorer.get('engine')}"
    if done.interpolated is None:
        lines = sum(len(v) for v in done.reranked.values())
        print(f"{out}: {len(done.reranked)} queries reranked (top {rc.depth}, first-stage order below), "
              f"{lines} lines ({how})")
        return 0
    only = RerankFiles.beside(out, fused).reranked
    alpha = float(done.alpha if done.alpha is not None else 1.0)
    if done.record is None:
        print(f"{out}: {len(done.interpolated)} queries, reranker fused with the first stage at the given "
              f"alpha={alpha:g}; reranker only: {only} ({how})")
        return 0
    value = done.record["table"].get(f"{alpha:g}")
    measured = f"nDCG@10 {value:.4f}" if value is not None else "given"
    print(f"{out}: {len(done.interpolated)} queries, reranker interpolated with the first stage at alpha={alpha:g} "
          f"({done.record['alpha_source']} on {done.record['queries']} {rc.tune_split} queries: {measured}; "
          f"{done.record['reason']}); reranker only: {only} ({how})")
    return 0


def _settings(args: argparse.Namespace) -> tuple[Any, bool]:
    """The resolved config and whether the weight is tuned on a labelled split; every refusal of the flags
    and every check that no input is overwritten come before any model is loaded."""
    fields = section_values(args, RerankConfig)
    cfg = resolve_config(args, "rerank", fields, dataset=args.dataset)
    for key, value in fields.items():
        if value is None:  # 'none' given for a nullable field: clears the config's value
            setattr(cfg.rerank, key, None)
    rc = cfg.rerank
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    if not rc.first_stage:
        raise ConfigError("no first-stage run: give --run or rerank.first_stage in the config")
    if not rc.model:
        raise ConfigError("no model: give --model or rerank.model in the config")
    from inpars.reranking import RerankFiles
    from inpars.safety import check_model, check_output, check_output_dir, check_threads

    check_threads(args.threads)
    check_model(rc.model, "--model")
    inputs = [rc.first_stage, args.tune_run, args.queries, getattr(args, "config", None)]
    out_path = check_output(args.out, inputs, cfg.dataset.name)
    beside = RerankFiles.beside(out_path, fused=True)
    for path, what in ((beside.reranked, "reranker-only run"), (beside.record, "fusion record")):
        check_output(str(path), inputs, cfg.dataset.name, flag=f"{what} beside --out")
    check_output_dir(str(beside.scores), inputs, cfg.dataset.name, flag="score folder beside --out")
    split = args.split or cfg.dataset.eval_split
    if rc.alpha is not None and args.tune_run:
        raise ConfigError("--alpha fuses at a given weight; --tune-run tunes one: give one of them")
    if fields.get("interpolate") and not args.tune_run and rc.alpha is None:
        raise ConfigError("--interpolate needs a weight: --alpha W (no labels), or --tune-run with --tune-split "
                          "to tune it on a labelled split")
    if fields.get("alphas") and not args.tune_run:
        raise ConfigError("--alphas are the weights tried on --tune-run; to fuse at one given weight use --alpha")
    if args.tune_run and not rc.tune_split:
        raise ConfigError("--tune-run needs --tune-split: name the labelled split whose judgements tune the weight")
    # here the weight is tuned on a labelled split's run: without --tune-run (a config's default
    # 'interpolate'), the reranked run alone is written
    interpolate = bool(rc.interpolate and args.tune_run)
    if interpolate and rc.tune_split == split:
        raise ConfigError(f"the weight must be tuned on another split than the one reranked ('{split}')")
    return cfg, interpolate
