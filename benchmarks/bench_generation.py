"""Query generation speed: SmolLM2-135M on the same SciFact documents, several ways, in one run.

Usage: python benchmarks/bench_generation.py [--n-docs 100] [--samples 3] [--temperature 0.7] [--seed 1]
       [--max-new-tokens 64] [--threads N] [--contention] [--only CONFIGS]
       [--out benchmarks/results/generation.json]

Every configuration writes ``--samples`` queries for each of the same ``--n-docs`` SciFact documents
(``inpars.generate.sample_documents``, seed 1) with the 3-shot ``inpars`` prompt, documents cut to 256 tokens
of the SmolLM2 tokenizer, stop at a newline, per-token log-probabilities; ``--temperature 0`` is greedy
(one query per document is then the only meaningful setting), otherwise top-p 0.95 sampling, what the
recommended configs do:

- ``llamacpp``: ``inpars.generate.generate_queries`` with the llama.cpp backend at its defaults (GGUF Q4_1,
  1 slot, prefix cache, prompt processing on all cores, decoding on one thread): the samples of a document
  share one prompt evaluation (the second and later samples find the whole prompt in the cache);
- ``llamacpp-decode2``: the same with ``decode_threads=2`` (decoding on both cores, the previous default);
- ``transformers-batched``: ``generate_queries`` with the transformers backend, the same GGUF dequantised to
  fp32, batches of 8 prompts (left padding);
- ``naive-loop``: the one-at-a-time loop of the original InPars toolkit (its default ``--batch_size 1``): the
  fp32 transformers model, one ``model.generate`` per query (each sample of a document evaluates the whole
  prompt again), log-probs via ``compute_transition_scores``.

``--contention`` runs each llama.cpp configuration a second time while another process (a Python busy
loop, same priority) keeps one of the cores busy: ``contended_ratio`` is its speed then over its idle
speed, both measured in this run.

Each configuration runs in its own subprocess, so its peak RSS (``getrusage``) is its own. Times: model
loading separately; "wall" is the whole generation loop after loading (prompt building, tokenization,
generation, writing). ``queries_per_second`` = queries / wall; ``speedup_vs_naive`` divides it by the naive
loop's. ``agreement_with_naive`` (greedy only) is the share of documents whose query equals the naive loop's
(llama.cpp's quantised kernels may differ slightly). The load average is recorded before and after each run.
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
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("INPARS_DATA_HOME", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from inpars.safety import usable_cores  # noqa: E402

CONFIGS = ("llamacpp", "llamacpp-decode2", "transformers-batched", "naive-loop")
TOP_P = 0.95
MAX_DOC_TOKENS = 256


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _stage_worker(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """llamacpp / transformers-batched: the library's generation stage with a preloaded backend."""
    from inpars.generate import generate_queries, read_generated
    from inpars.generation.base import get_backend

    t0 = time.perf_counter()
    if name.startswith("llamacpp"):
        decode = {"decode_threads": 2} if name == "llamacpp-decode2" else {}
        backend = get_backend("llamacpp", "smollm2-135m", n_parallel=1, cache_prompt=True, n_threads=args.threads,
                              **decode)
        batch_size = 8
    else:
        import torch

        torch.set_num_threads(args.threads or usable_cores())
        backend = get_backend("transformers", "smollm2-135m", device="cpu", dtype="float32", batch_size=8)
        batch_size = 8
    load_s = time.perf_counter() - t0
    out = tmp / f"{name}.jsonl"
    t0 = time.perf_counter()
    summary = generate_queries(
        args.dataset, out, prompt="inpars", n_docs=args.n_docs, seed=args.seed, max_doc_tokens=MAX_DOC_TOKENS,
        max_new_tokens=args.max_new_tokens, batch_size=batch_size, backend_instance=backend, overwrite=True,
        progress=False, queries_per_doc=args.samples, temperature=args.temperature,
        top_p=TOP_P if args.temperature > 0 else 1.0,
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
        "queries": {f"{r.doc_id}/{r.query_index}": r.query for r in recs},
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

    torch.set_num_threads(args.threads or usable_cores())
    gguf = Path(resolve_model("smollm2-135m"))
    t0 = time.perf_counter()
    tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0

    def truncate(text: str, max_tokens: int) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else str(tok.decode(ids[:max_tokens])).rstrip("\ufffd")

    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def decode(ids: list[int]) -> str:
        return str(tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))

    t0 = time.perf_counter()
    docs = sample_documents(load_dataset(args.dataset), args.n_docs, seed=args.seed)
    prompt = get_prompt("inpars", truncate=truncate, max_doc_tokens=MAX_DOC_TOKENS)
    queries: dict[str, str] = {}
    gen_tokens = prompt_tokens = 0
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": args.temperature, "top_p": TOP_P, "top_k": 0}
        if args.temperature > 0 else {"do_sample": False}
    )
    for doc in docs:
        enc = tok(prompt.build(doc).text, return_tensors="pt")
        for index in range(args.samples):
            torch.manual_seed(args.seed * 100_003 + index)
            with torch.inference_mode():
                out = model.generate(
                    **enc, max_new_tokens=args.max_new_tokens, stop_strings=["\n"], tokenizer=tok,
                    return_dict_in_generate=True, output_scores=True, pad_token_id=tok.eos_token_id, **sampling,
                )
                scores = cast(Any, model).compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            new_ids = out.sequences[0, enc["input_ids"].shape[1] :].tolist()
            # the same bookkeeping as the backends: text cut at the newline, tokens (and log-probs) before it
            gen = finish_generation(new_ids, scores[0].tolist(), decode, ("\n",), eos_ids)
            queries[f"{doc.doc_id}/{index}"] = gen.text.strip()
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
        res["contended"] = bool(args.busy)
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
    parser.add_argument("--samples", type=int, default=3, help="queries per document")
    parser.add_argument("--temperature", type=float, default=0.7, help="0: greedy (use --samples 1)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for every engine (default: all cores)")
    parser.add_argument("--contention", action="store_true",
                        help="run the llama.cpp configurations again with a busy process on one core")
    parser.add_argument("--only", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generation.json"))
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    configs = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    if args.samples < 1 or (args.temperature == 0 and args.samples != 1):
        parser.error("--samples must be >= 1, and 1 with --temperature 0 (greedy repeats the same query)")
    runs = [(name, False) for name in configs]
    if args.contention:
        runs += [(name, True) for name in configs if name.startswith("llamacpp")]
    results: dict[str, dict[str, Any]] = {}
    for name, busy in runs:
        key = f"{name}+busy-core" if busy else name
        cmd = [sys.executable, __file__, "--worker", name, "--dataset", args.dataset, "--n-docs", str(args.n_docs),
               "--seed", str(args.seed), "--max-new-tokens", str(args.max_new_tokens), "--samples",
               str(args.samples), "--temperature", str(args.temperature)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if busy:
            cmd.append("--busy")
        print(f"[{key}] running ...", file=sys.stderr, flush=True)
        # the competing process: one core kept busy at this process's own priority for the whole run
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{key} failed (exit {proc.returncode})")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results[key] = res
        print(
            f"[{key}] {res['n_queries']} queries in {res['wall_seconds']} s: {res['queries_per_second']} q/s, "
            f"{res['tokens_per_second']} tok/s, load {res['load_seconds']} s, peak RSS {res['peak_rss_mb']} MB "
            f"(load average {res['load_average_before']} -> {res['load_average_after']})",
            file=sys.stderr, flush=True,
        )

    queries = {name: res.pop("queries") for name, res in results.items()}
    naive = results.get("naive-loop")
    for name, res in results.items():
        if naive is not None and name != "naive-loop":
            if args.temperature == 0:
                same = sum(1 for d, q in queries[name].items() if queries["naive-loop"].get(d) == q)
                res["agreement_with_naive"] = round(same / max(1, len(queries[name])), 3)
            res["speedup_vs_naive"] = round(res["queries_per_second"] / naive["queries_per_second"], 2)
        idle = results.get(name.removesuffix("+busy-core"))
        if name.endswith("+busy-core") and idle is not None:
            res["contended_ratio"] = round(res["queries_per_second"] / idle["queries_per_second"], 3)

    import importlib.metadata as md

    def ver(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    report = {
        "benchmark": "generation",
        "description": (
            f"SmolLM2-135M-Instruct (GGUF Q4_1), 3-shot 'inpars' prompt, {args.samples} quer"
            f"{'y' if args.samples == 1 else 'ies'} per document, "
            + (f"temperature {args.temperature}, top-p {TOP_P}" if args.temperature > 0 else "greedy")
        ),
        "dataset": args.dataset,
        "n_docs": args.n_docs,
        "samples_per_doc": args.samples,
        "temperature": args.temperature,
        "seed": args.seed,
        "max_doc_tokens": MAX_DOC_TOKENS,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads or usable_cores(),
        "machine": {"cpus": usable_cores(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": {p: ver(p) for p in ("xllamacpp", "torch", "transformers", "inpars-toolkit")},
        "contention_note": "timings taken while other processes shared the cores unless load averages are ~0 "
        "(the '+busy-core' runs add one busy process on purpose)",
        "target": "llamacpp >= 3x the naive one-at-a-time transformers loop (queries/s); with a busy core, "
        ">= 70% of its idle speed",
        "results": results,
    }
    if "llamacpp" in results and naive is not None:
        report["target_met"] = results["llamacpp"]["speedup_vs_naive"] >= 3.0
    if "llamacpp+busy-core" in results:
        report["contention_target_met"] = results["llamacpp+busy-core"]["contended_ratio"] >= 0.7
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from inpars.io import write_json

    write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
