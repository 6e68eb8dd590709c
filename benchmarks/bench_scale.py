"""Corpus scale: time and peak memory of the stages that touch the whole corpus, on synthetic collections.

Usage: python benchmarks/bench_scale.py [--sizes 10000 100000 1000000 3000000 8800000] [--queries 1000]
       [--work DIR] [--out benchmarks/results/scale.json] [--reference-max 1000000] [--stages sample negatives]

``--stages`` runs only the named stages of each size and keeps that size's other figures from the result
file (each stage records the commit it ran on and the load average it started at).

Each size gets a synthetic BEIR folder: a Zipfian vocabulary (rank-frequency exponent ``--zipf``, 50,000
word types), titles of 5-15 words and abstracts whose length is log-normal around 200 words (SciFact-like),
queries of 3-8 words drawn from the same distribution. Every stage then runs in a fresh process, so its
peak RSS (VmHWM on Linux) is its own; ``peak_anon_mib`` is the peak of its anonymous memory alone (RssAnon,
sampled every 20 ms: without the pages of memory-mapped index files, which count in RSS while a search reads
them but are the kernel's page cache, given back under memory pressure):

- ``index``: :func:`inpars.retrieval.get_index` builds the BM25 index from the corpus into its folder, in
  bounded memory (:func:`inpars.bm25_build.write_bm25_index`: chunks of documents, postings spilled to disk,
  then merged into bm25s' arrays);
- ``bm25s-reference``: the same corpus indexed with plain bm25s the way its README shows
  (``bm25s.tokenize`` over every text, then ``BM25().index``; same stopwords, stemmer, k1 and b), so that
  ``index_rss_ratio`` (the ``index`` stage's peak over this one's) is taken inside one run; skipped above
  ``--reference-max`` documents (it needs about 8 GiB per million SciFact-like documents);
- ``search``: loads the index into memory and answers ``--queries`` queries (top 1000): queries per second;
- ``search-mmap``: the same with the index's arrays memory-mapped (``get_index(..., mmap=True)``), so that
  the index adds to its peak RSS only the pages the queries touch, the vocabulary and the document ids
  (the run it returns, ``--queries`` x 1000 hits, weighs on both search stages alike);
- ``sample``: :func:`inpars.generate.sample_documents` picks 1,000 documents (what generation starts from);
- ``negatives``: :func:`inpars.negatives.mine_negatives` (BM25, depth 100, 1 negative) for ``--queries``
  synthetic generated queries (one per sampled document, the index reused, opened as the stages open it:
  memory-mapped from :data:`inpars.retrieval.MMAP_BYTES` on disk).

The baseline RSS of a process that has imported inpars, numpy and bm25s (no corpus) is reported too, so
that the part each stage adds can be read off. Timings are wall-clock on whatever else the machine runs:
the result file records the load average at the start, and each stage's CPU seconds (user + system),
which depend much less on what else runs than the wall-clock seconds do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 50_000
STAGES = ("baseline", "index", "bm25s-reference", "search", "search-mmap", "sample", "negatives")


def _peak_rss_mib() -> float:
    """Peak resident memory of this process. Linux: VmHWM, the high-water mark of this process's own
    memory map (``ru_maxrss`` would carry the launching process's peak over ``exec``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; macOS: bytes


def _current_rss_mib() -> float:
    """Resident memory of this process now (VmRSS on Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return 0.0


class _AnonPeak:
    """The peak of this process's anonymous resident memory (RssAnon: the heap and the arrays read into
    memory, not the pages of memory-mapped files, which the kernel takes back under pressure), sampled
    every ``interval`` seconds in a thread; 0 where /proc is missing."""

    def __init__(self, interval: float = 0.02) -> None:
        import threading

        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    @staticmethod
    def _now_kib() -> int:
        try:
            with open("/proc/self/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak_kib = max(self.peak_kib, self._now_kib())

    def stop_mib(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(max(self.peak_kib, self._now_kib()) / 1024, 1)


def _words(seed: int, zipf: float) -> tuple[list[str], Any]:
    import numpy as np

    rng = random.Random(seed)
    letters = "bcdfghjklmnprstvwz"
    vowels = "aeiou"
    words: set[str] = set()
    while len(words) < VOCAB:
        n = rng.randint(2, 4)
        words.add("".join(rng.choice(letters) + rng.choice(vowels) for _ in range(n)))
    ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
    probs = ranks ** -zipf
    return sorted(words, key=lambda w: (len(w), w)), probs / probs.sum()


def make_collection(folder: Path, n_docs: int, n_queries: int, zipf: float, seed: int = 0) -> Path:
    """Write ``folder/corpus.jsonl`` and ``queries.jsonl`` (written once; reused when complete)."""
    import numpy as np

    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vocab, probs = _words(seed, zipf)
    vocab_arr = np.array(vocab, dtype=object)
    rng = np.random.default_rng(seed)
    chunk = 10_000
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for start in range(0, n_docs, chunk):
            n = min(chunk, n_docs - start)
            lengths = np.clip(rng.lognormal(mean=np.log(200), sigma=0.35, size=n).astype(int), 40, 600)
            titles = rng.integers(5, 16, size=n)
            ids = rng.choice(VOCAB, size=int(lengths.sum() + titles.sum()), p=probs)
            pos = 0
            for i in range(n):
                t, body = int(titles[i]), int(lengths[i])
                title = " ".join(vocab_arr[ids[pos : pos + t]]).capitalize()
                text = " ".join(vocab_arr[ids[pos + t : pos + t + body]]).capitalize() + "."
                pos += t + body
                f.write(json.dumps({"_id": f"d{start + i}", "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in range(n_queries):
            words = vocab_arr[rng.choice(VOCAB, size=int(rng.integers(3, 9)), p=probs)]
            f.write(json.dumps({"_id": f"q{q}", "text": " ".join(words)}) + "\n")
    done.write_text("ok\n")
    return folder


def _stage(name: str, folder: Path, work: Path, n_queries: int) -> dict[str, Any]:
    """Run one stage in this process and return its measures."""
    import bm25s  # noqa: F401  (the baseline imports what every stage imports)
    import numpy  # noqa: F401

    from inpars.datasets import BeirDataset

    ds = BeirDataset(folder)
    index_dir = work / "index"
    anon = _AnonPeak()
    t0 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    out: dict[str, Any] = {}
    if name == "index":
        from inpars.retrieval import get_index

        index = get_index(ds, index_dir, rebuild=True)
        out["documents"] = len(index)
        out["index_mib_on_disk"] = round(sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 2**20, 1)
    elif name == "bm25s-reference":
        import Stemmer

        from inpars.config import BM25_B, BM25_K1, BM25_STEMMER, BM25_STOPWORDS

        texts = []
        with open(folder / "corpus.jsonl", encoding="utf-8") as f:
            for line in f:
                obj = json.loads(line)
                texts.append(f"{obj['title']} {obj['text']}".strip())
        tokens = bm25s.tokenize(texts, stopwords=BM25_STOPWORDS, stemmer=Stemmer.Stemmer(BM25_STEMMER),
                                show_progress=False)
        retriever = bm25s.BM25(method="lucene", k1=BM25_K1, b=BM25_B)
        retriever.index(tokens, show_progress=False)
        out["documents"] = int(retriever.scores["num_docs"])
    elif name in ("search", "search-mmap"):
        from inpars.retrieval import get_index

        index = get_index(ds, index_dir, mmap=name == "search-mmap")
        out["load_seconds"] = round(time.perf_counter() - t0, 3)
        out["loaded_rss_mib"] = round(_current_rss_mib(), 1)
        queries = ds.queries()
        t1 = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu1 = usage.ru_utime + usage.ru_stime
        run = index.search(queries, k=1000)
        out["search_seconds"] = round(time.perf_counter() - t1, 3)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        search_cpu = usage.ru_utime + usage.ru_stime - cpu1
        out["queries_per_second"] = round(len(queries) / out["search_seconds"], 1)
        out["queries_per_cpu_second"] = round(len(queries) / search_cpu, 1) if search_cpu > 0 else None
        out["hits"] = sum(len(v) for v in run.values())
    elif name == "sample":
        from inpars.generate import sample_documents

        docs = sample_documents(ds, 1000, seed=1)
        out["sampled"] = len(docs)
        gen = work / "generated.jsonl"
        rng = random.Random(1)
        with open(gen, "w", encoding="utf-8") as f:
            for d in docs[:n_queries]:
                words = d.text.split()
                f.write(json.dumps({"doc_id": d.doc_id, "query": " ".join(rng.sample(words, min(5, len(words))))}) + "\n")
    elif name == "negatives":
        from inpars.negatives import mine_negatives

        s = mine_negatives(work / "generated.jsonl", work / "train.jsonl", dataset=ds, depth=100, index_dir=index_dir)
        out["examples"] = s.n_examples
    out["seconds"] = round(time.perf_counter() - t0, 3)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime - cpu0, 3)
    out["peak_rss_mib"] = round(_peak_rss_mib(), 1)
    out["peak_anon_mib"] = anon.stop_mib()
    return out


def _run_stage(name: str, folder: Path, work: Path, n_queries: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--stage", name, "--folder", str(folder), "--work", str(work),
           "--queries", str(n_queries)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    commit = _commit()  # the code the stage imports (src may change between stages)
    load = list(os.getloadavg())
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - t0, 3)
    result["commit"] = commit
    result["load_average_before"] = load
    return result


def _commit() -> str | None:
    """The checked-out commit the row was measured on (``+`` when the tree had changes), or None."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--zipf", type=float, default=1.07)
    ap.add_argument("--work", type=Path, default=ROOT.parent / "scale_work")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    ap.add_argument("--reference-max", type=int, default=1_000_000,
                    help="skip the bm25s-reference stage above this many documents (default: 1,000,000)")
    ap.add_argument("--stages", nargs="+", choices=STAGES,
                    help="run only these stages; the size's other figures are kept from --out")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:
        print(json.dumps(_stage(args.stage, args.folder, args.work, args.queries)))
        return 0

    sys.path.insert(0, str(ROOT / "src"))
    from inpars.io import write_json

    results: dict[str, Any] = {
        "benchmark": "scale",
        "what": "index time, search QPS and peak RSS per stage on synthetic Zipfian collections",
        "load_average_at_start": list(os.getloadavg()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {"queries": args.queries, "zipf": args.zipf, "vocabulary": VOCAB,
                     "doc_words": "log-normal around 200 (40-600)", "search_k": 1000, "negatives_depth": 100},
        "sizes": {},
    }
    if args.out.is_file():  # keep sizes measured by an earlier call
        prior = json.loads(args.out.read_text(encoding="utf-8"))
        results["sizes"] = prior.get("sizes", {})
    for n in args.sizes:
        folder = args.work / f"synthetic_{n}"
        t0 = time.perf_counter()
        make_collection(folder, n, args.queries, args.zipf)
        work = args.work / f"run_{n}"
        work.mkdir(parents=True, exist_ok=True)
        row: dict[str, Any] = dict(results["sizes"].get(str(n), {})) if args.stages else {}
        row |= {"documents": n, "corpus_mib": round((folder / "corpus.jsonl").stat().st_size / 2**20, 1)}
        if not args.stages:
            row |= {"make_seconds": round(time.perf_counter() - t0, 1), "load_average_before": list(os.getloadavg())}
        for stage in STAGES:
            if args.stages and stage not in args.stages:
                continue
            if stage == "bm25s-reference" and n > args.reference_max:
                row[stage] = {"skipped": f"above --reference-max {args.reference_max}"}
            else:
                row[stage] = _run_stage(stage, folder, work, args.queries)
            print(f"{n:>9} {stage:<10} {json.dumps(row[stage])}", flush=True)
        ours, ref = row.get("index", {}).get("peak_rss_mib"), row.get("bm25s-reference", {}).get("peak_rss_mib")
        row["index_rss_ratio"] = round(ours / ref, 2) if ours and ref else None
        results["sizes"][str(n)] = row
        write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
