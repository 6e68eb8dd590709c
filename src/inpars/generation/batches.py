"""The generation loop of one process: prompts built for work units, sent to a backend batch by batch, and
the records appended to a JSONL file.

:func:`run_batches` is what :func:`inpars.generate.generate_queries` runs in its own process, and what each
actor of the Ray engine (:mod:`inpars.generation.ray_engine`) runs on its rows, so that every record is built
by the same code with and without Ray.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from inpars.datasets import Dataset
from inpars.fingerprint import item_seed
from inpars.generation.base import Backend, Generation, SamplingParams
from inpars.generation.flags import flag_generation
from inpars.io import JsonlAppender
from inpars.prompts import BuiltPrompt, Prompt, get_prompt
from inpars.quiet import show_progress
from inpars.records import Document, GeneratedQuery

log = logging.getLogger("inpars.generate")  # its lines are the generate stage's, as before this module

#: prompts per backend call when neither the caller nor the backend says (``default_batch_size``)
DEFAULT_BATCH_SIZE = 8


#: tokens kept free beside the prompt and the generation (chat templates add a few)
PROMPT_MARGIN = 32


def build_prompt(
    name: str, backend: Backend, dataset: Dataset, options: dict[str, Any], reserve: int = 0
) -> Prompt:
    """Instantiate prompt ``name`` with the generator's tokenizer and the stage's options.

    When the backend knows its context length, few-shot examples are dropped until the prompt fits with
    ``reserve`` tokens (the generation, plus a margin for a chat template) to spare.
    """
    if options.get("template") is not None and name != "template":
        log.warning("prompt '%s' does not use a template; --template is ignored (use prompt 'template')", name)
    kwargs = {"truncate": backend.truncate, "count_tokens": backend.count_tokens, "dataset": dataset, **options}
    if backend.context_length and "max_prompt_tokens" not in options:
        kwargs["max_prompt_tokens"] = max(1, backend.context_length - reserve - PROMPT_MARGIN)
    return get_prompt(name, **{k: v for k, v in kwargs.items() if v is not None})


def _n_tokens(gen: Generation) -> int:
    return len(gen.tokens) if gen.tokens else len(gen.log_probs)


def _query_record(
    doc: Document,
    qi: int,
    gen: Generation,
    built: BuiltPrompt,
    prompt_text: str,
    flag_counts: Counter[str],
    *,
    backend: Backend,
    model: str,
    seconds: float,
) -> GeneratedQuery:
    """The record of query ``qi`` of ``doc`` from generation ``gen``, its flags counted in ``flag_counts``."""
    query = gen.text.strip()
    flags = flag_generation(query, built.text, doc.full_text, gen.finish_reason)
    flag_counts.update(flags)
    return GeneratedQuery(
        doc_id=doc.doc_id,
        query=query,
        log_probs=[float(x) for x in gen.log_probs],
        prompt_text=prompt_text,
        fewshot_examples=list(built.fewshot_examples),
        query_index=qi,
        flags=flags,
        extra={
            "text": doc.full_text,
            "backend": backend.name,
            "model": model,
            "finish_reason": gen.finish_reason,
            "n_tokens": _n_tokens(gen),
            "prompt_tokens": gen.prompt_tokens,
            "cached_tokens": gen.cached_tokens,
            "seconds": round(seconds, 4),
        },
    )


def run_batches(
    be: Backend,
    ds: Dataset,
    todo: list[tuple[Document, list[int]]],
    out: Path,
    flag_counts: Counter[str],
    *,
    prompt: str,
    prompt_options: dict[str, Any],
    params: SamplingParams,
    seed: int,
    model: str,
    chat: bool,
    batch_size: int | None,
    total: int,
    progress: bool | None,
) -> tuple[int, int, float]:
    """Generate for ``todo`` (the work units of :func:`inpars.generate.generate_queries`) batch by batch,
    appending records.

    Prompt ``(doc, [i, ...])`` (the prompt's :meth:`~inpars.prompts.Prompt.build_for` ``(doc, i)``) is sent
    with the seed ``item_seed(seed, doc_id, i)``; with ``params.n`` greedy continuations of one prompt per
    document, generation ``i`` is query ``i``. Returns (queries, tokens, seconds).
    """
    from tqdm.auto import tqdm

    builder = build_prompt(prompt, be, ds, prompt_options, reserve=params.max_new_tokens)
    bs = batch_size or int(getattr(be, "default_batch_size", 0) or DEFAULT_BATCH_SIZE)
    single = params.n == 1  # one unit per (document, query index)
    n_generated = n_tokens = 0
    seconds = 0.0
    bar = tqdm(
        total=total,
        initial=total - sum(len(m) for _, m in todo),
        unit="q",
        desc="generating queries",
        disable=not show_progress(progress),
        dynamic_ncols=True,
    )
    # a document's units are adjacent: build its prompt once (once per index if it varies with the index)
    last: tuple[tuple[str, int], BuiltPrompt] | None = None
    with JsonlAppender(out) as writer, bar:
        for start in range(0, len(todo), bs):
            batch = todo[start : start + bs]
            built: list[BuiltPrompt] = []
            for doc, missing in batch:
                key = (doc.doc_id, missing[0] if builder.varies_with_index else 0)
                if last is None or last[0] != key:
                    last = (key, builder.build_for(doc, key[1]))
                built.append(last[1])
            texts = [be.chat_prompt(b.text) if chat else b.text for b in built]
            seeds = [item_seed(seed, doc.doc_id, missing[0]) for doc, missing in batch]
            t0 = time.perf_counter()
            results = be.generate(texts, params, seeds=seeds)
            dt = time.perf_counter() - t0
            if len(results) != len(batch):
                raise RuntimeError(f"backend {be.name} returned {len(results)} results for {len(batch)} prompts")
            n_batch = sum(len(m) for _, m in batch)
            per_query = dt / max(1, n_batch)
            for (doc, missing), b, text, gens in zip(batch, built, texts, results, strict=True):
                want = 1 if single else max(missing) + 1
                if len(gens) < want:
                    raise RuntimeError(f"backend {be.name} returned {len(gens)} generations; asked for {params.n}")
                for qi in missing:
                    gen = gens[0] if single else gens[qi]
                    rec = _query_record(
                        doc, qi, gen, b, text, flag_counts, backend=be, model=model, seconds=per_query
                    )
                    writer.write(rec.to_json())
                    n_tokens += _n_tokens(gen)
            n_generated += n_batch
            seconds += dt
            bar.update(n_batch)
            if seconds > 0:
                bar.set_postfix(tok_s=f"{n_tokens / seconds:.1f}", refresh=False)
    return n_generated, n_tokens, seconds
