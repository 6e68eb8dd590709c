"""``inpars generate``: synthetic queries for a seeded sample of documents (resumable JSONL)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inpars.cli._common import add_config_arg, resolve_config
from inpars.errors import ConfigError


def _parse_option(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it parses (numbers, true/false, lists), else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_parser(subparsers: Any) -> None:
    from inpars.generation.base import _BACKEND_MODULES
    from inpars.prompts import PROMPTS

    backends = list(_BACKEND_MODULES)  # the built-in backends (each imported only when used)
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
    p.add_argument("--prompt", default=None, help="one of: " + ", ".join(PROMPTS.names()) + " (default inpars)")
    p.add_argument("--template", default=None, help="template file for --prompt template")
    p.add_argument("--backend", default=None, help="one of: " + ", ".join(backends) + " (default llamacpp)")
    p.add_argument("--model", default=None, help="smollm2-135m (default), gemma3-270m, a path or hub id")
    p.add_argument("--n-docs", type=int, default=None, help="documents to sample (default 1000)")
    p.add_argument("--queries-per-doc", type=int, default=None)
    p.add_argument("--n-examples", type=int, default=None, help="few-shot examples (prompt default)")
    p.add_argument("--max-doc-tokens", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--chat", action="store_true", default=None, help="wrap prompts in the chat template")
    p.add_argument("--min-doc-chars", type=int, default=None)
    p.add_argument(
        "--batch-size", type=int, default=None, help="prompts per backend call (speed only: the queries are the same)"
    )
    p.add_argument(
        "--backend-option",
        action="append",
        type=_parse_option,
        default=None,
        metavar="KEY=VALUE",
        help="backend option (repeatable), e.g. --backend-option n_threads=2",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the document sample and of each query's sampling (default 1)"
    )
    p.add_argument("--overwrite", action="store_true", help="start again instead of resuming --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inpars.generate import generate_queries

    fields: dict[str, Any] = {
        "prompt": args.prompt,
        "template": args.template,
        "backend": args.backend,
        "model": args.model,
        "n_docs": args.n_docs,
        "queries_per_doc": args.queries_per_doc,
        "n_examples": args.n_examples,
        "max_doc_tokens": args.max_doc_tokens,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "chat": args.chat,
        "min_doc_chars": args.min_doc_chars,
        "batch_size": args.batch_size,
    }
    cfg = resolve_config(args, "generate", fields, dataset=args.dataset)
    if args.seed is not None:
        cfg.seed = args.seed
    if args.backend_option:
        cfg.generate.backend_options = {**cfg.generate.backend_options, **dict(args.backend_option)}
    if not cfg.dataset.name:
        raise ConfigError("no dataset: give --dataset or a --config with dataset.name")
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
