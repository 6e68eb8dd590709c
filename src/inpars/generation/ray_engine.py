"""Generation on an executor out of this process (``generate.executor: ray``).

The work units of :func:`inpars.generate.generate_queries` (documents still missing from the output file)
are cut into batches of ``batch_size`` prompts, exactly the batches a single-process run sends, and handed
to the workers of the executor's pool (:meth:`inpars.executors.Pool.map`, one batch per call; on Ray,
``actors`` actors). Each worker opens one backend (llama.cpp on CPU, vLLM or transformers on GPU) and runs
the single-process batch code on its batch (:func:`inpars.generation.batches.run_batches`, into a scratch
file), so every record is built by the same code as without Ray.

Output: the pool's map yields the batches' records in work-unit order, each batch as soon as it and every
batch before it are done, and the driver appends them to the one output JSONL through the same appender.
The file is therefore always a prefix of the single-process file in the same order; a rerun (any
executor) appends only what is missing, and the finished file holds the same records in the same order as
a single-process run (the same values, apart from two facts about the run, the per-query ``seconds`` and
``cached_tokens``, when the backend's results do not depend on what an actor changes: its share of the
threads and the state of its prompt cache. For llama.cpp that holds with its default ``decode_threads``
(the thread share only sets ``n_threads``, prompt processing, which never changes the numbers),
``cache_prompt: false`` and ``flash_attn: off``: a cached prefix changes how the rest of a prompt is
evaluated, and each actor's cache holds other prompts than the one process's, so with the cache on,
log-probs can differ in their last digits, and so, now and then, a sampled token).

Failures: an actor that dies (killed, out of memory) is restarted and its batch retried (see
``max_restarts``; unset: no limit); an exception raised by the backend stops the run with the records
before the failed batch written, and rerunning finishes the rest.

``executor_options`` (runtime only: they never change the queries, so a run resumes under any executor)
are those of :mod:`inpars.ray_cluster` (``address``, ``actors``, ``num_cpus``, ``cpus_per_actor``,
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
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from inpars.executors import Executor
from inpars.generation.base import GenerationError, backend_class, check_backend, get_backend
from inpars.generation.batches import DEFAULT_BATCH_SIZE, run_batches
from inpars.io import JsonlAppender
from inpars.quiet import show_progress

log = logging.getLogger(__name__)

Runner = Callable[..., tuple[int, int, float]]


def make_runner(
    executor: type[Executor], options: dict[str, Any] | None, backend: str, backend_model: str,
    backend_options: dict[str, Any],
) -> Runner:
    """A function with the signature of :func:`inpars.generation.batches.run_batches` whose first argument (the backend) is
    ignored: the backends live in the executor's workers. ``options`` are checked here (a
    :class:`~inpars.errors.ConfigError` naming ``generate.executor_options.KEY``), before anything starts."""
    opts = executor.check_options(options, "generate.executor_options")

    def run(_backend: Any, ds: Any, todo: list[Any], out: Path, flag_counts: Counter[str], **kwargs: Any) -> tuple[int, int, float]:
        return run_on_executor(executor, opts, backend, backend_model, backend_options, ds, todo, out, flag_counts, **kwargs)

    return run


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
    """One backend per worker; :meth:`run` generates one batch with the single-process code.

    ``threads``: the worker's share of the thread budget; a backend that takes ``n_threads`` gets it in
    place of the total given in ``backend_options``."""

    def __init__(self, backend: str, model: str, backend_options: dict[str, Any], dataset: Any,
                 run_kwargs: dict[str, Any], threads: int | None = None) -> None:
        if threads and _takes_option(backend, "n_threads"):
            backend_options = {**backend_options, "n_threads": threads}
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

    def run(self, units: list[Any]) -> tuple[str, int, int, float]:
        """The batch's records (JSON lines), queries, tokens and seconds."""
        with tempfile.TemporaryDirectory(prefix="inpars-ray-") as tmp:
            shard = Path(tmp) / "shard.jsonl"
            n, tokens, seconds = run_batches(
                self.backend, self.dataset, units, shard, Counter(), total=sum(len(m) for _, m in units),
                progress=False, **self.run_kwargs,
            )
            lines = shard.read_text(encoding="utf-8") if shard.is_file() else ""
        return lines, n, tokens, seconds

    def __del__(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            with contextlib.suppress(Exception):  # closing at interpreter exit: nothing to report to
                backend.close()


def run_on_executor(
    executor: type[Executor],
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
    """Generate ``todo`` on the executor's workers and append the records to ``out`` in order; returns
    (queries, tokens, seconds), ``seconds`` being the wall time of the distributed run."""
    check_backend(backend, None, backend_options)
    bs = batch_size or int(getattr(backend_class(backend), "default_batch_size", 0) or DEFAULT_BATCH_SIZE)
    batches = [todo[i : i + bs] for i in range(0, len(todo), bs)]
    kwargs = {
        "backend": backend,
        "model": backend_model,
        "backend_options": dict(backend_options),
        "dataset": _portable_dataset(ds),
        "run_kwargs": {**run_kwargs, "batch_size": bs},
    }
    size = max(1, min(executor.workers(options), len(batches)))
    with executor.pool(GenerateActor, kwargs=kwargs, size=size, threads=backend_options.get("n_threads"),
                       options=options, key="generate.executor", error=GenerationError) as pool:
        log.info("%s: %d batches of up to %d prompts over %d workers", executor.name, len(batches), bs, pool.size)
        return _write_in_order(pool.map("run", batches), out, flag_counts, total, todo, progress, executor.name)


def _write_in_order(
    results: Iterator[tuple[str, int, int, float]], out: Path, flag_counts: Counter[str], total: int,
    todo: list[Any], progress: bool | None, where: str,
) -> tuple[int, int, float]:
    """Append each batch's records as the ordered results come."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    n_queries = n_tokens = 0
    bar = tqdm(
        total=total, initial=total - sum(len(m) for _, m in todo), unit="q", desc=f"generating queries ({where})",
        disable=not show_progress(progress), dynamic_ncols=True,
    )
    with JsonlAppender(out) as writer, bar:
        for lines, n, tokens, _seconds in results:
            # "\n" only: JSON text written with ensure_ascii=False may hold U+2028 and other line breaks
            for line in filter(None, lines.split("\n")):
                record = json.loads(line)
                flag_counts.update(record.get("flags") or [])
                writer.write(record)
            n_queries += n
            n_tokens += tokens
            bar.update(n)
    return n_queries, n_tokens, time.perf_counter() - t0
