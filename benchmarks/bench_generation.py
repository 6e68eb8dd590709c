"""Query generation speed: SmolLM2-135M on the same SciFact documents, three ways.

Usage: python benchmarks/bench_generation.py [--n-docs 100] [--seed 1] [--max-new-tokens 64] [--threads N]
       [--only llamacpp,transformers-batched,naive-loop] [--out benchmarks/results/generation.json]

Every configuration writes one greedy query (3-shot ``inpars`` prompt, documents cut to 256 tokens of the
SmolLM2 tokenizer, stop at a newline, with per-token log-probabilities) for the same ``--n-docs`` SciFact
documents (``inpars.generate.sample_documents``, seed 1):

- ``llamacpp``: ``inpars.generate.generate_queries`` with the llama.cpp backend (GGUF Q4_1, 1 slot, prefix
  cache; the default backend);
- ``transformers-batched``: ``generate_queries`` with the transformers backend, the same GGUF dequantised to
  fp32, batches of 8 (left padding);
- ``naive-loop``: what the original InPars toolkit does with its default ``--batch_size 1``: the fp32
  transformers model, one ``model.generate`` per document, log-probs via ``compute_transition_scores``.

Each configuration runs in its own subprocess, so its peak RSS (``getrusage``) is its own. Times: model
loading separately; "wall" is the whole generation loop after loading (prompt building, tokenization,
generation, writing). ``queries_per_second`` = documents / wall; ``tokens_per_second`` = generated
tokens / wall. ``agreement_with_naive`` is the share of documents whose query equals the naive loop's
(greedy decoding of the same weights; llama.cpp's quantised kernels and prefix cache may differ slightly).
The machine's load average is recorded before and after each run: on a shared machine timings are contended
(there, ``--threads 1`` avoids llama.cpp's spinning threads collapsing; on an idle machine use all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONFIGS = ("llamacpp", "transformers-batched", "naive-loop")
MAX_DOC_TOKENS = 256


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _stage_worker(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """llamacpp / transformers-batched: the library's generation stage with a preloaded backend."""
    from inpars.generate import generate_queries, read_generated
    from inpars.generation.base import get_backend

    t0 = time.perf_counter()
    if name == "llamacpp":
        backend = get_backend("llamacpp", "smollm2-135m", n_parallel=1, cache_prompt=True, n_threads=args.threads)
        batch_size = 8
    else:
        import torch

        torch.set_num_threads(args.threads or _cores())
        backend = get_backend("transformers", "smollm2-135m", device="cpu", dtype="float32", batch_size=8)
        batch_size = 8
    load_s = time.perf_counter() - t0
    out = tmp / f"{name}.jsonl"
    t0 = time.perf_counter()
    summary = generate_queries(
        args.dataset, out, prompt="inpars", n_docs=args.n_docs, seed=args.seed, max_doc_tokens=MAX_DOC_TOKENS,
        max_new_tokens=args.max_new_tokens, batch_size=batch_size, backend_instance=backend, overwrite=True,
        progress=False,
    )
    wall = time.perf_counter() - t0
    recs = read_generated(out)
    describe = backend.describe()
    backend.close()
    return {
        "load_seconds": round(load_s, 2),
        "wall_seconds": round(wall, 2),
        "backend_seconds": summary.seconds,
        "n_queries": len(recs),
        "generated_tokens": sum(int(r.extra["n_tokens"]) for r in recs),
        "prompt_tokens": sum(int(r.extra["prompt_tokens"]) for r in recs),
        "cached_prompt_tokens": sum(int(r.extra.get("cached_tokens") or 0) for r in recs),
        "n_flagged": summary.n_flagged,
        "backend": describe,
        "queries": {r.doc_id: r.query for r in recs},
    }


def _naive_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One plain ``model.generate`` per document (the original toolkit's default batch size of 1)."""
    import torch
    import transformers

    from inpars.datasets import load_dataset
    from inpars.generate import sample_documents
    from inpars.generation.base import finish_generation
    from inpars.models import resolve_model
    from inpars.prompts import get_prompt

    torch.set_num_threads(args.threads or _cores())
    gguf = Path(resolve_model("smollm2-135m"))
    t0 = time.perf_counter()
    tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0

    def truncate(text: str, max_tokens: int) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else tok.decode(ids[:max_tokens]).rstrip("\ufffd")

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def decode(ids: list[int]) -> str:
        return str(tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    t0 = time.perf_counter()
    docs = sample_documents(load_dataset(args.dataset), args.n_docs, seed=args.seed)
    prompt = get_prompt("inpars", truncate=truncate, max_doc_tokens=MAX_DOC_TOKENS)
    queries: dict[str, str] = {}
    gen_tokens = prompt_tokens = 0
    for doc in docs:
        enc = tok(prompt.build(doc).text, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=args.max_new_tokens, do_sample=False, stop_strings=["\n"], tokenizer=tok,
                return_dict_in_generate=True, output_scores=True, pad_token_id=tok.eos_token_id,
            )
            scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        new_ids = out.sequences[0, enc["input_ids"].shape[1] :].tolist()
        # the same bookkeeping as the backends: text cut at the newline, tokens (and log-probs) before it
        gen = finish_generation(new_ids, scores[0].tolist(), decode, ("\n",), eos_ids)
        queries[doc.doc_id] = gen.text.strip()
        gen_tokens += len(gen.log_probs)
        prompt_tokens += int(enc["input_ids"].shape[1])
    wall = time.perf_counter() - t0
    return {
        "load_seconds": round(load_s, 2),
        "wall_seconds": round(wall, 2),
        "n_queries": len(queries),
        "generated_tokens": gen_tokens,
        "prompt_tokens": prompt_tokens,
        "backend": {"engine": f"transformers {transformers.__version__}", "dtype": "float32", "batch_size": 1,
                    "model_file": gguf.name},
        "queries": queries,
    }


def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        load_before = os.getloadavg()[0]
        if args.worker == "naive-loop":
            res = _naive_worker(args)
        else:
            res = _stage_worker(args.worker, args, Path(tmp))
    wall = res["wall_seconds"]
    res.update(
        config=args.worker,
        queries_per_second=round(res["n_queries"] / wall, 3) if wall else None,
        seconds_per_query=round(wall / res["n_queries"], 3) if res["n_queries"] else None,
        tokens_per_second=round(res["generated_tokens"] / wall, 2) if wall else None,
        peak_rss_mb=_peak_rss_mb(),
        load_average_before=round(load_before, 2),
        load_average_after=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(res))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--n-docs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for every engine (default: all cores)")
    parser.add_argument("--only", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generation.json"))
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    configs = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    results: dict[str, dict[str, Any]] = {}
    for name in configs:
        cmd = [sys.executable, __file__, "--worker", name, "--dataset", args.dataset, "--n-docs", str(args.n_docs),
               "--seed", str(args.seed), "--max-new-tokens", str(args.max_new_tokens)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print(f"[{name}] running ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed (exit {proc.returncode})")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[name] = res
        print(
            f"[{name}] {res['n_queries']} queries in {res['wall_seconds']} s: {res['queries_per_second']} q/s, "
            f"{res['tokens_per_second']} tok/s, load {res['load_seconds']} s, peak RSS {res['peak_rss_mb']} MB "
            f"(load average {res['load_average_before']} -> {res['load_average_after']})",
            file=sys.stderr, flush=True,
        )

    queries = {name: res.pop("queries") for name, res in results.items()}
    naive = results.get("naive-loop")
    for name, res in results.items():
        if naive is not None and name != "naive-loop":
            same = sum(1 for d, q in queries[name].items() if queries["naive-loop"].get(d) == q)
            res["agreement_with_naive"] = round(same / max(1, len(queries[name])), 3)
            res["speedup_vs_naive"] = round(res["queries_per_second"] / naive["queries_per_second"], 2)

    import importlib.metadata as md

    def ver(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    report = {
        "benchmark": "generation",
        "description": "SmolLM2-135M-Instruct (GGUF Q4_1), greedy, 3-shot 'inpars' prompt, one query per document",
        "dataset": args.dataset,
        "n_docs": args.n_docs,
        "seed": args.seed,
        "max_doc_tokens": MAX_DOC_TOKENS,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads or _cores(),
        "machine": {"cpus": _cores(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {p: ver(p) for p in ("xllamacpp", "torch", "transformers", "inpars-toolkit")},
        "contention_note": "timings taken while other processes shared the 2 cores unless load averages are ~0",
        "target": "llamacpp >= 3x the naive one-at-a-time transformers loop (queries/s)",
        "results": results,
    }
    if "llamacpp" in results and naive is not None:
        report["target_met"] = results["llamacpp"]["speedup_vs_naive"] >= 3.0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from inpars.io import write_json

    write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
