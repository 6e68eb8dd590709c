"""Generation on a Ray cluster (``generate.executor: ray``).

The work units of :func:`inpars.generate.generate_queries` (documents still missing from the output file)
are cut into batches of ``batch_size`` prompts, exactly the batches a single-process run sends, and
sharded through Ray Data: ``map_batches`` over a callable class, one row per batch, ``actors`` actors.
Each actor opens one backend (llama.cpp on CPU, vLLM or transformers on GPU) and runs the single-process
batch code on its rows (:func:`inpars.generation.batches.run_batches`, into a scratch file), so every record is built by
the same code as without Ray.

Output: the driver writes the records to the one output JSONL through the same appender, in work-unit
order, each batch as soon as every batch before it is written. The file is therefore always a prefix of
the single-process file in the same order; a rerun (any engine) appends only what is missing, and the
finished file holds the same records in the same order as a single-process run (the same values, apart
from two facts about the run, the per-query ``seconds`` and ``cached_tokens``, when the backend's results do not depend on what an actor changes:
its share of the threads and the state of its prompt cache. For llama.cpp that holds with its default
``decode_threads`` (the thread share only sets ``n_threads``, prompt processing, which never changes the
numbers), ``cache_prompt: false`` and ``flash_attn: off``: a cached prefix changes how the rest of a
prompt is evaluated, and each actor's cache holds other prompts than the one process's, so with the cache
on, log-probs can differ in their last digits, and so, now and then, a sampled token).

Failures: an actor that dies (killed, out of memory) is restarted and its batch retried (see
``max_restarts``); an exception raised by the backend stops the run with the records before the
failed batch written, and rerunning finishes the rest.

``executor_options`` (runtime only: they never change the queries, so a run resumes under any engine) are
those of :mod:`inpars.ray_cluster` (``address``, ``actors``, ``num_cpus``, ``cpus_per_actor``,
``gpus_per_actor``, ``max_restarts``, ``runtime_env``); ``max_restarts`` is passed as Ray remote
arguments, which newer Ray versions deprecate.

Thread budget: llama.cpp threads spin while they wait, so actors must not share cores. The backend's
``n_threads`` option (default: the cluster's CPUs, capped at the machine's cores for a local cluster) is
the total; each actor's backend gets ``n_threads // actors`` (at least 1), and the actor reserves as many
CPUs. llama.cpp's ``decode_threads`` (part of the output's identity) is passed unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inpars.generation.base import GenerationError, backend_class, check_backend, get_backend
from inpars.generation.batches import DEFAULT_BATCH_SIZE, run_batches
from inpars.io import JsonlAppender
from inpars.quiet import show_progress
from inpars.ray_cluster import actor_share, check_options, connect, import_ray, restart_args

log = logging.getLogger(__name__)

Runner = Callable[..., tuple[int, int, float]]
#: more batches than this share blocks (Ray Data's per-block overhead stays bounded on huge corpora)
MAX_BLOCKS = 10_000


def check_engine_options(engine: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """Validated engine options (unknown keys and bad values are a :class:`~inpars.errors.ConfigError`).

    >>> check_engine_options("ray", {"actors": 2})["actors"]
    2
    """
    return check_options(engine, options, engine_key="generate.executor", options_key="generate.executor_options")


def make_runner(
    engine: str, options: dict[str, Any] | None, backend: str, backend_model: str, backend_options: dict[str, Any]
) -> Runner:
    """A function with the signature of :func:`inpars.generation.batches.run_batches` whose first argument (the backend) is
    ignored: the backends live in the engine's workers."""
    opts = check_engine_options(engine, options)

    def run(_backend: Any, ds: Any, todo: list[Any], out: Path, flag_counts: Counter[str], **kwargs: Any) -> tuple[int, int, float]:
        return run_on_ray(opts, backend, backend_model, backend_options, ds, todo, out, flag_counts, **kwargs)

    return run


def _import_ray() -> Any:
    """``ray`` with Ray Data, or a :class:`~inpars.errors.MissingExtraError` naming the ``[ray]`` extra."""
    return import_ray("generate.executor 'ray'")


def _takes_option(backend: str, key: str) -> bool:
    try:
        params = inspect.signature(backend_class(backend).__init__).parameters
    except (TypeError, ValueError):
        return False
    return key in params


def _portable_dataset(ds: Any) -> Any:
    """A copy of the dataset without its cached corpus (actors read what their prompt needs themselves)."""
    clone = copy.copy(ds)
    if isinstance(getattr(clone, "__dict__", None), dict):
        clone.__dict__.pop("_docs", None)
    return clone


class GenerateActor:
    """One backend per actor; each call generates the batches of its rows with the single-process code."""

    def __init__(self, backend: str, model: str, backend_options: dict[str, Any], dataset: Any,
                 run_kwargs: dict[str, Any], threads: int | None = None) -> None:
        # torch (a transformers backend, the prompt's tokenizer) uses the actor's share of the cores, not
        # every core of its node
        threads = backend_options.get("n_threads") or threads
        if threads:
            with contextlib.suppress(ImportError):
                import torch

                torch.set_num_threads(int(threads))
        self.backend = get_backend(backend, model, **backend_options)
        self.dataset = dataset
        self.run_kwargs = run_kwargs

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"pos": [], "lines": [], "n_queries": [], "n_tokens": [], "seconds": []}
        for pos, payload in zip(batch["pos"], batch["units"], strict=True):
            units = pickle.loads(payload)
            with tempfile.TemporaryDirectory(prefix="inpars-ray-") as tmp:
                shard = Path(tmp) / "shard.jsonl"
                n, tokens, seconds = run_batches(
                    self.backend, self.dataset, units, shard, Counter(), total=sum(len(m) for _, m in units),
                    progress=False, **self.run_kwargs,
                )
                lines = shard.read_text(encoding="utf-8") if shard.is_file() else ""
            out["pos"].append(int(pos))
            out["lines"].append(lines)
            out["n_queries"].append(n)
            out["n_tokens"].append(tokens)
            out["seconds"].append(seconds)
        return out

    def __del__(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            with contextlib.suppress(Exception):  # closing at interpreter exit: nothing to report to
                backend.close()


def run_on_ray(
    options: dict[str, Any],
    backend: str,
    backend_model: str,
    backend_options: dict[str, Any],
    ds: Any,
    todo: list[Any],
    out: Path,
    flag_counts: Counter[str],
    *,
    batch_size: int | None,
    total: int,
    progress: bool | None,
    **run_kwargs: Any,
) -> tuple[int, int, float]:
    """Generate ``todo`` on Ray and append the records to ``out`` in order; returns (queries, tokens,
    seconds), ``seconds`` being the wall time of the distributed run."""
    from tqdm.auto import tqdm

    ray = _import_ray()
    check_backend(backend, None, backend_options)
    started_here = connect(ray, options, "generate.executor", GenerationError)
    try:
        bs = batch_size or int(getattr(backend_class(backend), "default_batch_size", 0) or DEFAULT_BATCH_SIZE)
        batches = [todo[i : i + bs] for i in range(0, len(todo), bs)]
        actors = max(1, min(int(options.get("actors") or 2), len(batches)))
        per_actor, cpus, gpus = actor_share(ray, options, backend_options.get("n_threads"), actors)
        actor_options = dict(backend_options)
        if _takes_option(backend, "n_threads"):
            actor_options["n_threads"] = per_actor
        rows = [{"pos": k, "units": pickle.dumps(b)} for k, b in enumerate(batches)]
        # Ray Data restarts a dead actor and retries its batch without limit by default
        log.info(
            "ray: %d batches of up to %d prompts over %d actors (%d threads, %g CPUs, %g GPUs each)",
            len(batches), bs, actors, per_actor, cpus, gpus,
        )
        if not progress:  # Ray Data's own progress bars and start-up dump of its settings
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.print_on_execution_start = False
        # one batch per block (a finished block is written at once) up to MAX_BLOCKS blocks
        data = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), MAX_BLOCKS)))
        results = data.map_batches(
            GenerateActor,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus,
            num_gpus=gpus,
            fn_constructor_kwargs={
                "backend": backend,
                "model": backend_model,
                "backend_options": actor_options,
                "dataset": _portable_dataset(ds),
                "run_kwargs": {**run_kwargs, "batch_size": bs},
                "threads": per_actor,
            },
            **restart_args(options),
        )
        return _write_in_order(results, out, flag_counts, len(batches), total, todo, progress, tqdm)
    finally:
        if started_here:
            ray.shutdown()


def _write_in_order(
    results: Any, out: Path, flag_counts: Counter[str], n_batches: int, total: int, todo: list[Any],
    progress: bool | None, tqdm: Any,
) -> tuple[int, int, float]:
    """Stream the actors' results and append each batch once all batches before it are written."""
    t0 = time.perf_counter()
    pending: dict[int, tuple[str, int, int]] = {}
    next_pos = n_queries = n_tokens = 0
    bar = tqdm(
        total=total, initial=total - sum(len(m) for _, m in todo), unit="q", desc="generating queries (ray)",
        disable=not show_progress(progress), dynamic_ncols=True,
    )
    with JsonlAppender(out) as writer, bar:
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for pos, lines, n, tokens in zip(batch["pos"], batch["lines"], batch["n_queries"], batch["n_tokens"], strict=True):
                pending[int(pos)] = (str(lines), int(n), int(tokens))
            while next_pos in pending:
                lines, n, tokens = pending.pop(next_pos)
                # "\n" only: JSON text written with ensure_ascii=False may hold U+2028 and other line breaks
                for line in filter(None, lines.split("\n")):
                    record = json.loads(line)
                    flag_counts.update(record.get("flags") or [])
                    writer.write(record)
                n_queries += n
                n_tokens += tokens
                next_pos += 1
                bar.update(n)
    if next_pos != n_batches:
        raise RuntimeError(f"ray: {n_batches - next_pos} of {n_batches} batches came back without a result")
    return n_queries, n_tokens, time.perf_counter() - t0
