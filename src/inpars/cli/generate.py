"""``inpars generate``: synthetic queries for a seeded sample of documents (resumable JSONL)."""

from __future__ import annotations

import argparse
from typing import Any

from inpars.cli._common import (
    _check_choices,
    add_config_arg,
    add_option_arg,
    add_section_flags,
    resolve_config,
    section_values,
)
from inpars.config import DatasetConfig, GenerateConfig
from inpars.errors import ConfigError

_DATASET_SKIP = {"name", "eval_split", "max_eval_queries"}  # only --train-split: --dataset sets the name


def set_choices(parser: argparse.ArgumentParser, flag: str, names: list[str]) -> None:
    """Make a generated flag accept (and list) only ``names``, e.g. a registry's."""
    _check_choices(parser, flag, names)
    action = next(a for a in parser._actions if flag in a.option_strings)
    action.help = f"{action.help or ''}; one of: {', '.join(names)}".lstrip("; ")


def _prompt_arg(value: str) -> str:
    """A registered prompt name or an existing template file (argparse type of --prompt)."""
    from inpars.prompts import PROMPTS

    if value in PROMPTS:
        return value
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (choose from {', '.join(PROMPTS.names())}, or give a template file that exists)"
    )


def add_parser(subparsers: Any) -> None:
    from inpars.generation.base import _BACKEND_MODULES, BACKENDS
    from inpars.prompts import PROMPTS

    p = subparsers.add_parser(
        "generate",
        help="generate synthetic queries for documents with an LLM",
        description=(
            "Generate synthetic queries for a seeded sample of documents. The output JSONL is written as "
            "it goes; running the same command again resumes it (with other --batch-size or thread options "
            "too: they change speed, never the queries)."
        ),
    )
    add_config_arg(p)
    p.add_argument("--dataset", "-d", help="BEIR folder, name under $INPARS_DATA_HOME, or irds:ID")
    p.add_argument("--out", "-o", required=True, help="output JSONL (resumed when it exists)")
    add_section_flags(p, GenerateConfig, skip={"backend_options"}, helps={
        "prompt": "prompt name",
        "template": "template file for --prompt template",
        "backend": "generation backend",
        "batch_size": "prompts per backend call (backend default; speed only: the queries are the same)",
    })
    # registry names, not Literal values: the flags list (and accept) exactly those
    set_choices(p, "--prompt", PROMPTS.names())
    # ... or the path of an existing template file
    prompt_flag = next(a for a in p._actions if "--prompt" in a.option_strings)
    prompt_flag.choices, prompt_flag.type = None, _prompt_arg
    prompt_flag.help = f"{prompt_flag.help}; or a template file path"
    set_choices(p, "--backend", sorted({*_BACKEND_MODULES, *BACKENDS.names()}))
    add_section_flags(p, DatasetConfig, skip=_DATASET_SKIP, helps={
        "train_split": "opt-in: a labelled split whose queries and judgements may be read (promptagator's "
        "few-shot examples); default: none, label-free",
    })
    add_option_arg(p, "--backend-option", "backend option (repeatable), e.g. --backend-option n_threads=2")
    add_option_arg(p, "--selection-option", "document selection option (repeatable), e.g. --doc-selection "
                   "clusters --selection-option clusters=50")
    add_option_arg(p, "--executor-option", "executor option (repeatable), e.g. --executor ray --executor-option actors=2 "
                   "(see inpars.generation.ray_engine)")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the document sample and of each query's sampling (default 1)"
    )
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.generate import generate_queries

    fields = section_values(args, GenerateConfig)
    # KEY=VALUE options merge into the config's mappings before it is validated (a selection method's
    # options are checked with it: 'ids' needs its doc_ids)
    options = {f"{name}.{key}": value
               for name in ("backend_options", "selection_options", "executor_options")
               for key, value in (getattr(args, name.replace("_options", "_option")) or [])}
    cfg = resolve_config(args, "generate", {**fields, **options}, dataset=args.dataset)
    for key, value in fields.items():
        if value is None:  # 'none' given for a nullable field: clears the config's value
            setattr(cfg.generate, key, None)
    if "train_split" in (given := section_values(args, DatasetConfig)):
        cfg.dataset.train_split = given["train_split"]
    if args.seed is not None:
        cfg.seed = args.seed
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
    from inpars.generation.base import check_backend
    from inpars.safety import check_output

    check_output(args.out, [cfg.generate.template, cfg.generate.prompt, getattr(args, "config", None)],
                 cfg.dataset.name)
    check_backend(cfg.generate.backend, cfg.generate.model, cfg.generate.backend_options)
    summary = generate_queries(
        cfg.dataset.name,
        args.out,
        **cfg.generate.model_dump(),
        seed=cfg.seed,
        train_split=cfg.dataset.train_split,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    flagged = ", ".join(f"{k} {v}" for k, v in summary.n_flagged.items()) or "none"
    print(
        f"{summary.out}: {summary.n_queries} queries for {summary.n_docs} documents "
        f"({summary.n_generated} new, {summary.n_skipped_existing} already there); "
        f"{summary.seconds:.1f} s, {summary.queries_per_second:.2f} queries/s, "
        f"{summary.tokens_per_second:.1f} tokens/s; flagged: {flagged}"
    )
    return 0
