"""Bad inputs a new user types, through the real CLI: every case must end in exit 0 or 2 with at most one
error line, no traceback, no "internal error", and every input file unchanged.

Usage: python benchmarks/probe_bad_inputs.py [--out benchmarks/results/probe_bad_inputs.json]

The cases follow the categories of a probe of 459 bad inputs filed against the toolkit (issue 26: special
files, secrets, crash and resource bounds, internal errors where a user error belongs, silent wrong
results, late or unclear validation); each is one ``inpars`` command in a fresh subprocess on a tiny BEIR
folder made here (SciFact's first 50 documents, 5 of its test queries with their judgements). A case that
needs a model uses the packaged MiniLM; nothing is downloaded. Each case records its exit code, its last
error line and whether it passed; the script exits 1 when any case fails.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("INPARS_DATA_HOME", ROOT.parent / "shared" / "data"))
INPARS = [sys.executable, "-m", "inpars"]


def _dataset(work: Path) -> Path:
    src = DATA / "scifact"
    ds = work / "ds"
    (ds / "qrels").mkdir(parents=True)
    docs = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:50]
    ids = {json.loads(x)["_id"] for x in docs}
    (ds / "corpus.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    rows = [r.split("\t") for r in (src / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    keep = [r for r in rows if r[1] in ids][:5]
    qids = {r[0] for r in keep}
    (ds / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in keep))
    queries = []
    for line in (src / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        if q["_id"] in qids:  # the text only: the metadata field is never read
            queries.append(json.dumps({"_id": q["_id"], "text": q["text"]}))
    (ds / "queries.jsonl").write_text("\n".join(queries) + "\n", encoding="utf-8")
    return ds


def _files(work: Path) -> dict[str, Path]:
    f = {"ds": _dataset(work)}
    first = json.loads((f["ds"] / "corpus.jsonl").read_text().splitlines()[0])["_id"]
    f["gen"] = work / "gen.jsonl"
    f["gen"].write_text(json.dumps({"doc_id": first, "query": "what do cells do when they grow", "log_probs": [-0.5]}) + "\n")
    f["run"] = work / "run.trec"
    f["run"].write_text("".join(f"{q} Q0 {first} 1 1.0 x\n" for q in (f["ds"] / "qrels" / "test.tsv").read_text().split()[3::3]))
    f["nan_run"] = work / "nan.trec"
    f["nan_run"].write_text(f["run"].read_text().replace(" 1.0 ", " nan ", 1))
    f["inf_qrels"] = work / "inf.qrels"
    f["inf_qrels"].write_text(f"1 0 {first} inf\n")
    f["bad_gz"] = work / "corrupt.trec.gz"
    f["bad_gz"].write_bytes(gzip.compress(f["run"].read_bytes() * 50)[:-30] + b"garbage!" * 4)
    f["queries"] = work / "queries.tsv"
    f["queries"].write_text("1\tcells and growth\n")
    f["nested"] = work / "nested"
    f["nested"].mkdir()
    (f["nested"] / "corpus.jsonl").write_text('{"_id": "a", "text": "x", "m": ' + "[" * 100000 + "]" * 100000 + "}\n")
    f["train"] = work / "train.jsonl"
    f["train"].write_text("".join(json.dumps({"query_id": f"q{i}", "query": f"query {i}", "pos_doc_id": f"d{i}",
                                              "positive": f"positive text {i}", "neg_doc_ids": [f"n{i}"],
                                              "negatives": [f"negative text {i}"]}) + "\n" for i in range(8)))
    from inpars.models import resolve_model

    minilm = Path(resolve_model("minilm-l6"))
    f["no_tok"] = work / "no-tokenizer"
    f["no_tok"].mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(minilm / name, f["no_tok"] / name)
    f["trunc"] = work / "truncated-model"
    shutil.copytree(minilm, f["trunc"], ignore=shutil.ignore_patterns("onnx", "openvino"))
    w = f["trunc"] / "model.safetensors"
    w.write_bytes(w.read_bytes()[: 1 << 20])
    f["fifo"] = work / "a.fifo"
    os.mkfifo(f["fifo"])
    f["victim"] = work / "victim.txt"
    f["victim"].write_text("not to be replaced\n")
    f["link"] = work / "link.txt"
    f["link"].symlink_to(f["victim"])
    f["dup_yaml"] = work / "dup.yaml"
    f["dup_yaml"].write_text(f"dataset: {{name: {f['ds']}}}\nseed: 1\nseed: 2\n")
    f["bomb"] = work / "bomb.yaml"
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]"
                                                      for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    f["bomb"].write_text(f"dataset: {{name: {f['ds']}}}\ngenerate:\n  backend: openai\n  model: m\n  backend_options:\n"
                         "    extra_body:\n" + "".join(f"      {x}\n" for x in levels))
    for name, section in (("bad_measure", "evaluate: {measures: [nDCG@abc]}"), ("bad_alpha", "rerank: {alphas: [2]}"),
                          ("neg_seed", "seed: -1")):
        f[name] = work / f"{name}.yaml"
        f[name].write_text(f"dataset: {{name: {f['ds']}}}\n{section}\n")
    return f


def _cases(f: dict[str, Path], work: Path) -> list[tuple[str, list[str]]]:
    ds, gen, run = str(f["ds"]), str(f["gen"]), str(f["run"])
    out = str(work / "out")
    secret = "http://user:pa@ss/w#rd@example.invalid:1/v1"
    return [
        # special files: refused, never replaced
        ("retrieve --out FIFO", ["retrieve", "-d", ds, "--out", str(f["fifo"])]),
        ("retrieve --out symlink", ["retrieve", "-d", ds, "--out", str(f["link"])]),
        ("filter --out symlink", ["filter", "-d", ds, "--in", gen, "--out", str(f["link"]), "--step", "none"]),
        ("evaluate --markdown FIFO", ["evaluate", "-d", ds, run, "--markdown", str(f["fifo"])]),
        ("evaluate --json symlink", ["evaluate", "-d", ds, run, "--json", str(f["link"])]),
        ("export --out symlink", ["export", "--format", "original-triples", "--train", str(f["train"]),
                                  "--out", str(f["link"])]),
        ("export onto an unrelated file", ["export", "--format", "original-triples", "--train", str(f["train"]),
                                           "--out", str(f["victim"])]),
        # secrets
        ("password with @ / #", ["generate", "-d", ds, "--out", out + "1.jsonl", "--backend", "openai", "--model", "m",
                                 "--backend-option", f"base_url={secret}"]),
        ("URL without a scheme", ["generate", "-d", ds, "--out", out + "2.jsonl", "--backend", "openai", "--model", "m",
                                  "--backend-option", "base_url=user:sk-SECRET123@host.invalid"]),
        ("a key as api_key_env", ["generate", "-d", ds, "--out", out + "3.jsonl", "--backend", "openai", "--model", "m",
                                  "--backend-option", "api_key_env=sk-abcdefghijklmnopqrstuvwx"]),
        # crashes and resource bounds
        *[(f"evaluate {m}", ["evaluate", "-d", ds, run, "--measures", m]) for m in ("nDCG@0", "P@0", "R@0", "AP@0")],
        ("rerank --threads 100000", ["rerank", "-d", ds, "--run", run, "--model", "minilm-l6", "--out", out + ".trec",
                                     "--threads", "100000"]),
        ("generate --queries-per-doc 1e11", ["generate", "-d", ds, "--out", out + "4.jsonl", "--backend", "openai",
                                             "--model", "m", "--queries-per-doc", "100000000000"]),
        ("negatives --n-negatives 1e9", ["negatives", "-d", ds, "--in", gen, "--out", out + "n.jsonl",
                                         "--n-negatives", "1000000000"]),
        ("YAML alias bomb", ["run", str(f["bomb"]), "--run-dir", out + "bomb"]),
        # internal errors where a user error belongs
        ("qrels grade inf", ["evaluate", "-d", ds, run, "--qrels", str(f["inf_qrels"])]),
        ("corrupt gzip run", ["evaluate", "-d", ds, str(f["bad_gz"])]),
        ("deeply nested JSON", ["retrieve", "-d", str(f["nested"]), "--out", out + "nest.trec", "--queries",
                                str(f["queries"])]),
        ("truncated safetensors: rerank", ["rerank", "-d", ds, "--run", run, "--model", str(f["trunc"]), "--out",
                                           out + "t.trec"]),
        ("truncated safetensors: train", ["train", "--train", str(f["train"]), "--out", out + "tr",
                                          "--model", str(f["trunc"])]),
        ("truncated safetensors: filter", ["filter", "-d", ds, "--in", gen, "--out", out + "f.jsonl", "--step",
                                           f"reranker:model={f['trunc']},top_k=1"]),
        ("train --max-length 1e8", ["train", "--train", str(f["train"]), "--out", out + "tr2", "--model", "minilm-l6",
                                    "--max-length", "100000000"]),
        ("filter step threads=-3", ["filter", "-d", ds, "--in", gen, "--out", out + "f2.jsonl", "--step",
                                    "reranker:model=minilm-l6,top_k=1,threads=-3"]),
        ("filter step device=cuda:7", ["filter", "-d", ds, "--in", gen, "--out", out + "f3.jsonl", "--step",
                                       "reranker:model=minilm-l6,top_k=1,device=cuda:7"]),
        ("llama.cpp n_threads=abc", ["generate", "-d", ds, "--out", out + "5.jsonl", "--backend", "llamacpp",
                                     "--model", "smollm2-135m", "--backend-option", "n_threads=abc"]),
        # silent wrong results
        ("model without tokenizer", ["rerank", "-d", ds, "--run", run, "--model", str(f["no_tok"]), "--out",
                                     out + "nt.trec"]),
        ("nan score in a run", ["evaluate", "-d", ds, str(f["nan_run"])]),
        ("query-likelihood on BERT", ["rerank", "-d", ds, "--run", run, "--model", "minilm-l6", "--model-type",
                                      "query-likelihood", "--out", out + "ql.trec"]),
        ("--k1 inf", ["retrieve", "-d", ds, "--out", out + "k1.trec", "--k1", "inf"]),
        ("--temperature inf", ["generate", "-d", ds, "--out", out + "6.jsonl", "--backend", "openai", "--model", "m",
                               "--temperature", "inf"]),
        ("timeout=NaN", ["generate", "-d", ds, "--out", out + "7.jsonl", "--backend", "openai", "--model", "m",
                         "--backend-option", "timeout=.nan"]),
        ("--learning-rate inf", ["train", "--train", str(f["train"]), "--out", out + "tr3", "--model", "minilm-l6",
                                 "--learning-rate", "inf"]),
        # late or unclear validation
        ("run with measure nDCG@abc", ["run", str(f["bad_measure"]), "--run-dir", out + "r1"]),
        ("run with alpha 2", ["run", str(f["bad_alpha"]), "--run-dir", out + "r2"]),
        ("run with seed -1", ["run", str(f["neg_seed"]), "--run-dir", out + "r3"]),
        ("clusters=0", ["generate", "-d", ds, "--out", out + "8.jsonl", "--backend", "openai", "--model", "m",
                        "--doc-selection", "clusters", "--selection-option", "clusters=0"]),
        ("Ray runtime_env=abc", ["generate", "-d", ds, "--out", out + "9.jsonl", "--backend", "openai", "--model", "m",
                                 "--executor", "ray", "--executor-option", "runtime_env=abc"]),
        ("quoted ~ in --out", ["retrieve", "-d", ds, "--out", "~/x-inpars-probe.trec"]),
        ("newline in --license", ["export", "--generated", gen, "--out", out + "hf", "--license", "mit\nevil: 1"]),
        ("duplicate YAML keys", ["run", str(f["dup_yaml"]), "--run-dir", out + "dup"]),
    ]


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        if p.is_file() and not p.is_symlink():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            for q in sorted(p.rglob("*")):
                if q.is_file():
                    out[str(q)] = hashlib.sha256(q.read_bytes()).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "probe_bad_inputs.json"))
    args = ap.parse_args()
    env = {**os.environ, "INPARS_DATA_HOME": str(DATA), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="inpars_probe_") as tmp:
        work = Path(tmp)
        files = _files(work)
        inputs = [p for k, p in files.items() if k not in ("fifo", "link")]
        for name, argv in _cases(files, work):
            before = _digest(inputs)
            t = time.perf_counter()
            p = subprocess.run([*INPARS, *argv], capture_output=True, text=True, env=env, timeout=600, cwd=work,
                               stdin=subprocess.DEVNULL)
            errors = [x for x in p.stderr.splitlines() if x.startswith("inpars") and "error:" in x]
            problems = []
            if p.returncode not in (0, 2):
                problems.append(f"exit {p.returncode}")
            if "Traceback" in p.stderr or "internal error" in p.stderr:
                problems.append("traceback or internal error")
            if len(errors) > 1:
                problems.append(f"{len(errors)} error lines")
            if _digest(inputs) != before:
                problems.append("an input changed")
            if not files["fifo"].exists() or not files["fifo"].is_fifo() or not files["link"].is_symlink():
                problems.append("a special file was replaced")
            if "SECRET123" in p.stderr + p.stdout or "sk-abcdefghij" in p.stderr + p.stdout or "pa@ss" in p.stderr:
                problems.append("a secret was printed")
            results.append({"case": name, "exit": p.returncode, "error": errors[-1][:300] if errors else None,
                            "seconds": round(time.perf_counter() - t, 1), "passed": not problems, "problems": problems})
            print(f"{'ok ' if not problems else 'BAD'} {p.returncode} {name}: {(errors[-1] if errors else '')[:140]}"
                  f"{'  <- ' + ', '.join(problems) if problems else ''}", flush=True)
        Path(os.path.expanduser("~/x-inpars-probe.trec")).unlink(missing_ok=True)
    failed = [r["case"] for r in results if not r["passed"]]
    from inpars.io import write_json

    write_json(args.out, {"benchmark": "probe_bad_inputs", "cases": len(results), "failed": failed,
                          "results": results, "date": time.strftime("%Y-%m-%d %H:%M:%S")})
    print(f"{len(results) - len(failed)}/{len(results)} cases clean; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
