"""Reranker training: input checks, losses, determinism, kill-and-resume, saved-model loading, monoT5.

Real-model tests (marked slow) train the packaged all-MiniLM-L6-v2 on a SciFact train slice (queries,
their judged documents and seeded random negatives). The mechanics tests (determinism, resume,
learning a toy signal) use tiny randomly initialised BERT and T5 models built from configs, with the
MiniLM WordPiece tokenizer ("true" and "false" are single tokens in it, which monoT5 needs): no T5
checkpoint can be downloaded here.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import minilm_tokenizer as _minilm_tokenizer
from inpars.errors import ConfigError, InputError
from inpars.training import load_training_examples, train_reranker
from inpars.training.common import COMPLETE_MARKER, last_complete_checkpoint

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------
# fixtures


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scifact_train(scifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 TrainingExamples from SciFact train queries, their first judged document, 2 random negatives."""
    from inpars.datasets import load_dataset

    ds = load_dataset(scifact_dir)
    docs = ds.docs()
    queries = ds.queries("train")
    qrels = ds.qrels_dict("train")
    rng = random.Random(0)
    ids = sorted(docs)
    rows = []
    for qid in sorted(qrels)[:32]:
        pos = sorted(qrels[qid])[0]
        negs = [d for d in rng.sample(ids, 4) if d not in qrels[qid]][:2]
        rows.append(
            {
                "query_id": qid,
                "query": queries[qid],
                "pos_doc_id": pos,
                "positive": docs[pos].full_text,
                "neg_doc_ids": negs,
                "negatives": [docs[d].full_text for d in negs],
            }
        )
    return _write_jsonl(tmp_path_factory.mktemp("scifact") / "train.jsonl", rows)


@pytest.fixture(scope="module")
def toy_train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learnable toy signal: positives use one set of words, negatives another."""
    rng = random.Random(3)
    pos_words = ["cell", "protein", "gene", "dose", "risk", "trial", "mice", "blood"]
    neg_words = ["brain", "cancer", "heart", "virus", "drug", "sleep", "diet", "lung"]
    rows = []
    for i in range(48):
        rows.append(
            {
                "query_id": f"q{i}",
                "query": " ".join(rng.sample(pos_words + neg_words, 3)),
                "pos_doc_id": f"p{i}",
                "positive": " ".join(rng.sample(pos_words, 6)),
                "neg_doc_ids": [f"n{i}a", f"n{i}b"],
                "negatives": [" ".join(rng.sample(neg_words, 6)) for _ in range(2)],
            }
        )
    return _write_jsonl(tmp_path_factory.mktemp("toy") / "toy.jsonl", rows)



@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide BERT encoder (random weights) with the MiniLM tokenizer, saved to a folder."""
    import torch
    from transformers import BertConfig, BertModel

    tok = _minilm_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    path = tmp_path_factory.mktemp("tiny_bert")
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)



@pytest.fixture
def keep_threads():  # type: ignore[no-untyped-def]
    """Restore torch's thread count after a test that sets it."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "loss_curve.json").read_text())]


def _weights(model_dir: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


# ----------------------------------------------------------------------------------------------------
# input


GOOD = {"query_id": "q1", "query": "q", "pos_doc_id": "d1", "positive": "text", "neg_doc_ids": ["d2"], "negatives": ["x"]}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"query": None}, "query"),
        ({"query": "   "}, "query"),
        ({"positive": 3}, "positive"),
        ({"pos_doc_id": None}, "pos_doc_id"),
        ({"negatives": "x"}, "negatives"),
        ({"negatives": ["a", "b"]}, "negatives"),  # two negatives, one neg_doc_id
        ({"neg_doc_ids": [["d"]]}, "neg_doc_ids"),
        ({"negatives": [7]}, "negatives"),
        ({"negatives": [" "]}, "negatives"),
    ],
)
def test_bad_input_names_file_line_field(tmp_path: Path, bad: dict, field: str) -> None:
    row = {**GOOD, **bad}
    if bad.get("query") is None and "query" in bad:
        row.pop("query")
    path = _write_jsonl(tmp_path / "t.jsonl", [GOOD, row])
    with pytest.raises(InputError) as err:
        load_training_examples(path)
    assert err.value.path == str(path) and err.value.line == 2 and err.value.field == field


def test_bad_input_json_and_empty_and_listwise(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps(GOOD) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_training_examples(p)
    assert err.value.line == 2
    p.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="no training examples"):
        load_training_examples(p)
    _write_jsonl(p, [GOOD, {**GOOD, "neg_doc_ids": [], "negatives": []}])
    assert len(load_training_examples(p)) == 2
    with pytest.raises(InputError) as err:
        load_training_examples(p, need_negatives=True)
    assert err.value.line == 2 and err.value.field == "negatives"
    # train_reranker checks the input before loading any model
    with pytest.raises(InputError):
        train_reranker(p, tmp_path / "out", loss="listwise")


def test_cli_bad_input_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inpars.cli import main

    p = _write_jsonl(tmp_path / "t.jsonl", [GOOD, {**GOOD, "positive": ""}])
    assert main(["train", "--train", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{p}:2" in err and "positive" in err


def test_invalid_options(tmp_path: Path, tiny_bert: str) -> None:
    p = _write_jsonl(tmp_path / "t.jsonl", [GOOD])
    with pytest.raises(ConfigError, match="batch_size"):
        train_reranker(p, tmp_path / "o", batch_size=0)
    with pytest.raises(ConfigError, match="monot5"):
        train_reranker(p, tmp_path / "o", model_type="monot5", loss="listwise")
    with pytest.raises(ConfigError, match="encoder-decoder"):
        train_reranker(p, tmp_path / "o", model_type="monot5", model=tiny_bert, max_steps=1)


# ----------------------------------------------------------------------------------------------------
# losses


def test_listwise_loss_is_softmax_cross_entropy() -> None:
    import torch

    from inpars.training.cross_encoder import listwise_softmax_loss

    scores = torch.tensor([1.5, -0.5, 0.3, 2.0, 0.1, -1.0, 0.0, 0.7], requires_grad=True)
    sizes = [3, 1, 4]
    loss = listwise_softmax_loss(scores, sizes)
    # by hand: -log(e^s_pos / sum_group e^s), averaged over groups; a group of one costs 0
    g1 = -1.5 + math.log(math.exp(1.5) + math.exp(-0.5) + math.exp(0.3))
    g2 = 0.0
    g3 = -0.1 + math.log(sum(math.exp(x) for x in (0.1, -1.0, 0.0, 0.7)))
    assert float(loss.detach()) == pytest.approx((g1 + g2 + g3) / 3, abs=1e-6)
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    # the positive's gradient is (p - 1)/n_groups, a negative's p/n_groups
    p_pos = math.exp(1.5) / (math.exp(1.5) + math.exp(-0.5) + math.exp(0.3))
    assert float(scores.grad[0]) == pytest.approx((p_pos - 1) / 3, abs=1e-6)
    assert float(scores.grad[3]) == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------------------------------------------
# mechanics on tiny models


def test_learns_toy_signal_and_same_seed_same_run(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    kw = dict(model=tiny_bert, batch_size=8, max_length=32, learning_rate=3e-3, max_steps=40, save_steps=1000, threads=1)
    a = train_reranker(toy_train, tmp_path / "a", **kw)
    b = train_reranker(toy_train, tmp_path / "b", **kw)
    la, lb = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert len(la) == 40 and a.steps == 40 and a.examples == 48 and a.instances == 48 * 3
    assert la == lb  # identical, bit for bit
    wa, wb = _weights(a.model_path), _weights(b.model_path)
    assert all((wa[k] == wb[k]).all() for k in wa)
    # it learns: a third of the pairs are positive, so a model blind to the text cannot get below the
    # entropy H(1/3) = 0.6365 nats; starting near log 2, the last steps must be well under it
    assert la[0] == pytest.approx(math.log(2), abs=0.1)
    assert sum(la[-10:]) / 10 < 0.5
    c = train_reranker(toy_train, tmp_path / "c", **{**kw, "seed": 2})
    assert _losses(tmp_path / "c") != la
    assert c.final_loss == pytest.approx(sum(_losses(tmp_path / "c")[-10:]) / 10)


def test_listwise_learns_toy_signal(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    s = train_reranker(
        toy_train, tmp_path / "lw", model=tiny_bert, loss="listwise", batch_size=4, max_length=32,
        learning_rate=3e-3, max_steps=40, save_steps=1000, threads=1,
    )
    losses = _losses(tmp_path / "lw")
    assert s.instances == 48 and s.pairs_per_second == pytest.approx(3 * s.examples_per_second, rel=1e-2)
    assert losses[0] == pytest.approx(math.log(3), abs=0.1)  # three near-equal scores at the start
    assert sum(losses[-5:]) / 5 < 0.5


def test_finished_run_returns_at_once_and_mismatch_is_refused(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    kw = dict(model=tiny_bert, batch_size=8, max_length=32, max_steps=4, save_steps=2, threads=1)
    s1 = train_reranker(toy_train, tmp_path / "o", **kw)
    assert last_complete_checkpoint(tmp_path / "o" / "checkpoints").name == "checkpoint-4"
    t = time.perf_counter()
    s2 = train_reranker(toy_train, tmp_path / "o", **kw)
    assert s2 == s1 and time.perf_counter() - t < 5
    with pytest.raises(ConfigError, match="learning_rate"):
        train_reranker(toy_train, tmp_path / "o", **{**kw, "learning_rate": 1e-3})
    s3 = train_reranker(toy_train, tmp_path / "o", **{**kw, "learning_rate": 1e-3}, resume=False)
    assert s3.steps == 4 and s3.resumed_from_step == 0


def test_epochs_warmup_accumulation_and_bf16(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    s = train_reranker(
        toy_train, tmp_path / "o", model=tiny_bert, batch_size=8, gradient_accumulation_steps=2, epochs=2.0,
        warmup_steps=3, learning_rate=1e-3, max_length=32, save_steps=1000, threads=1,
    )
    curve = json.loads((tmp_path / "o" / "loss_curve.json").read_text())
    assert s.steps == 2 * math.ceil(144 / 16) == len(curve)  # 48 x (1 + 2) pairs, 16 per optimiser step
    lrs = [c["learning_rate"] for c in curve]
    # linear warm-up from 0 over 3 steps, then linear decay towards 0 at step 18
    assert lrs[:4] == pytest.approx([0.0, 1e-3 / 3, 2e-3 / 3, 1e-3])
    assert lrs[4:] == pytest.approx([1e-3 * (18 - k) / 15 for k in range(4, 18)])
    assert curve[-1]["epoch"] == pytest.approx(2.0)
    assert all(math.isfinite(c["loss"]) for c in curve)
    # bfloat16 mixed precision also runs on a CPU (autocast)
    b = train_reranker(toy_train, tmp_path / "bf16", model=tiny_bert, batch_size=8, max_length=32, max_steps=2, bf16=True, threads=1)
    assert b.steps == 2 and math.isfinite(b.final_loss)


def test_incomplete_checkpoint_is_ignored_and_removed(tmp_path: Path) -> None:
    ck = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        d = ck / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        if complete:
            (d / COMPLETE_MARKER).write_text(str(step))
    (ck / "checkpoint-4" / "trainer_state.json").write_text("{truncated")  # killed while writing it
    assert last_complete_checkpoint(ck) == ck / "checkpoint-2"
    assert (ck / "checkpoint-6").exists()
    assert last_complete_checkpoint(ck, clean=True) == ck / "checkpoint-2"
    assert not (ck / "checkpoint-6").exists() and not (ck / "checkpoint-4").exists()


def test_a_checkpoint_with_damaged_weights_is_passed_over_for_the_one_before(tmp_path: Path) -> None:
    """A truncated model.safetensors in the newest checkpoint (marked complete, then damaged on disk): the
    resume falls back to the previous checkpoint instead of failing inside safetensors."""
    import torch
    from safetensors.torch import save_file

    from inpars.training.common import safetensors_intact

    ck = tmp_path / "checkpoints"
    for step in (2, 4):
        d = ck / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        save_file({"w": torch.ones(64, 8), "b": torch.zeros(8)}, str(d / "model.safetensors"))
        (d / COMPLETE_MARKER).write_text(str(step))
    weights = ck / "checkpoint-4" / "model.safetensors"
    assert safetensors_intact(weights) and last_complete_checkpoint(ck) == ck / "checkpoint-4"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100])  # truncated
    assert not safetensors_intact(weights)
    assert last_complete_checkpoint(ck) == ck / "checkpoint-2"
    for bad in (b"", b"\x01", (10**9).to_bytes(8, "little") + b"{}", (2).to_bytes(8, "little") + b"[]"):
        weights.write_bytes(bad)
        assert not safetensors_intact(weights)


@pytest.mark.slow
def test_kill_and_resume_cli(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the CLI after its first checkpoint; rerun: it resumes and ends as an uninterrupted run."""
    steps = 200
    args = [
        sys.executable, "-c", "import sys; from inpars.cli import main; sys.exit(main(sys.argv[1:]))", "train", "--train", str(toy_train), "--out", str(tmp_path / "killed"),
        "--model", tiny_bert, "--batch-size", "8", "--max-length", "32", "--learning-rate", "1e-3",
        "--max-steps", str(steps), "--save-steps", "10", "--threads", "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ck = tmp_path / "killed" / "checkpoints"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if last_complete_checkpoint(ck) is not None:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stdout.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = int(last_complete_checkpoint(ck).name.split("-")[1])
    assert 0 < killed_at < steps
    assert not (tmp_path / "killed" / "model").exists()

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "killed" / "train_summary.json").read_text())
    assert summary["resumed_from_step"] >= killed_at > 0
    assert summary["steps"] == steps
    assert f"resumed from step {summary['resumed_from_step']}" in done.stdout
    curve = _losses(tmp_path / "killed")
    assert len(curve) == steps  # steps before the checkpoint come from its trainer state

    ref = train_reranker(
        toy_train, tmp_path / "ref", model=tiny_bert, batch_size=8, max_length=32, learning_rate=1e-3,
        max_steps=steps, save_steps=1000, threads=1,
    )
    assert _losses(tmp_path / "ref") == curve
    w_ref, w_res = _weights(ref.model_path), _weights(summary["model_path"])
    assert all((w_ref[k] == w_res[k]).all() for k in w_ref)


def test_monot5_tiny(tmp_path: Path, tiny_t5: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    import torch

    from inpars.training.monot5 import load_monot5, monot5_scores, monot5_texts, monot5_token_ids

    s = train_reranker(
        toy_train, tmp_path / "t5", model_type="monot5", model=tiny_t5, batch_size=8, max_length=48,
        learning_rate=3e-3, max_steps=40, save_steps=1000, threads=1,
    )
    losses = _losses(tmp_path / "t5")
    assert s.steps == 40 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    model, tok = load_monot5(s.model_path)
    assert "monot5_scores" in (Path(s.model_path) / "README.md").read_text()
    pairs = [("cell gene risk", "protein cell gene dose"), ("cell gene risk", "brain virus diet heart"),
             ("heart drug", "lung heart " + "drug " * 200)]
    scores = monot5_scores(model, tok, pairs, batch_size=2, max_length=48)
    assert len(scores) == 3 and all(0.0 <= x <= 1.0 for x in scores)
    assert scores[0] > scores[1]  # it learnt the toy signal
    logs = monot5_scores(model, tok, pairs, batch_size=3, max_length=48, log_prob=True)
    assert [math.exp(x) for x in logs] == pytest.approx(scores, abs=1e-5)
    # independent check: one pair at a time, full-vocabulary logits of the first decoder step
    t_id, f_id = monot5_token_ids(tok)
    for (q, d), got in zip(pairs, scores, strict=True):
        text = monot5_texts(tok, [q], [d], 48)[0]
        assert text.startswith(f"Query: {q} Document: ") and text.endswith(" Relevant:")
        enc = tok([text], return_tensors="pt", truncation=True, max_length=48)
        assert enc["input_ids"].shape[1] <= 48
        with torch.no_grad():
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                           decoder_input_ids=torch.tensor([[model.config.decoder_start_token_id]])).logits[0, 0]
        lt, lf = float(logits[t_id]), float(logits[f_id])
        assert got == pytest.approx(math.exp(lt) / (math.exp(lt) + math.exp(lf)), abs=1e-5)


# ----------------------------------------------------------------------------------------------------
# the real model on real data


@pytest.mark.slow
def test_minilm_bce_on_scifact_saves_loadable_model(tmp_path: Path, scifact_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inpars.io import sha256_file

    out = tmp_path / "ce"
    s = train_reranker(
        scifact_train, out, batch_size=8, max_length=64, learning_rate=5e-5, max_steps=4, save_steps=4, threads=1
    )
    assert s.steps == 4 and s.examples == 32 and s.instances == 96 and math.isfinite(s.final_loss)
    assert s.model_path == str(out / "model")
    losses = _losses(out)
    assert len(losses) == 4 and all(0 < x < 2 for x in losses)  # BCE near log 2 from a fresh head
    card = (out / "model" / "README.md").read_text()
    assert sha256_file(scifact_train) in card and "minilm-l6" in card and "seed: 1" in card
    assert (out / "loss_curve.png").stat().st_size > 0

    pairs = [(json.loads(line)["query"], json.loads(line)["positive"]) for line in scifact_train.read_text().splitlines()[:3]]
    pairs.append(("short query", "short document"))
    ce = CrossEncoder(s.model_path)
    assert ce.max_seq_length == 64
    logits_ce = ce.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=2)
    probs = ce.predict(pairs)
    model = AutoModelForSequenceClassification.from_pretrained(s.model_path).eval()
    tok = AutoTokenizer.from_pretrained(s.model_path)
    enc = tok([q for q, _ in pairs], [d for _, d in pairs], truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits.view(-1)
    assert logits_ce.tolist() == pytest.approx(logits.tolist(), abs=1e-4)
    assert probs.tolist() == pytest.approx(torch.sigmoid(logits).tolist(), abs=1e-5)


@pytest.mark.slow
def test_minilm_listwise_on_scifact(tmp_path: Path, scifact_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import CrossEncoder

    s = train_reranker(
        scifact_train, tmp_path / "lw", loss="listwise", batch_size=4, max_length=64, learning_rate=5e-5,
        max_steps=2, save_steps=100, threads=1,
    )
    losses = _losses(tmp_path / "lw")
    assert s.loss == "listwise" and s.instances == 32 and len(losses) == 2
    assert all(0 < x < 3 for x in losses)  # about log(3) for a fresh head over 1 positive + 2 negatives
    assert len(CrossEncoder(s.model_path).predict([("q", "d"), ("q2", "d2")])) == 2


def test_bi_encoder_learns_toy_signal_and_saves_a_sentence_transformer(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    from inpars import rerank

    kw = dict(model=tiny_bert, model_type="bi-encoder", loss="listwise", batch_size=4, max_length=32,
              learning_rate=3e-3, max_steps=40, save_steps=1000, threads=1)
    s = train_reranker(toy_train, tmp_path / "bi", **kw)
    losses = _losses(tmp_path / "bi")
    assert s.model_type == "bi-encoder" and s.instances == 48 and len(losses) == 40
    # 4 queries x 12 documents per batch; random embeddings (x20 scale) start well above a learned fit
    assert losses[0] > 1.5
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
    train_reranker(toy_train, tmp_path / "bi2", **kw)
    assert _losses(tmp_path / "bi2") == losses  # same seed, same run

    st = SentenceTransformer(s.model_path, device="cpu")
    emb = st.encode(["cell protein gene", "cell protein gene dose risk trial"], normalize_embeddings=False)
    assert abs(float((emb[0] ** 2).sum()) - 1.0) < 1e-4  # the Normalize module is part of the saved model
    assert rerank.detect_model_type(s.model_path) == "bi-encoder"  # reranks without --model-type
    scorer = rerank.load_scorer(s.model_path, max_length=32)
    pos = "cell protein gene dose risk trial"
    neg = "brain cancer heart virus drug sleep"
    got = scorer.score([("gene dose mice", pos), ("gene dose mice", neg)])
    assert got[0] > got[1]  # it learned which words make a positive
    assert "SentenceTransformer" in (Path(s.model_path) / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="listwise"):
        train_reranker(toy_train, tmp_path / "bad", **{**kw, "loss": "bce"})


def test_no_duplicate_batches_keep_every_text_once_per_batch(tmp_path: Path, tiny_bert: str, monkeypatch: pytest.MonkeyPatch, keep_threads) -> None:  # type: ignore[no-untyped-def]
    from inpars.fingerprint import item_seed
    from inpars.training.bi_encoder import BiEncoderCollator
    from inpars.training.common import no_duplicate_order

    # as the pipeline writes them: 3 queries per document, negatives that are other queries' positives
    docs = [f"document {i} " + " ".join(random.Random(i).sample(["cell", "gene", "dose", "risk", "mice"], 3))
            for i in range(16)]
    rows = [{"query_id": f"q{i}-{j}", "query": f"query {i} {j}", "pos_doc_id": f"d{i}", "positive": docs[i],
             "neg_doc_ids": [f"d{(i + 1) % 16}"], "negatives": [docs[(i + 1) % 16]]}
            for i in range(16) for j in range(3)]
    train = _write_jsonl(tmp_path / "train.jsonl", rows)
    seen: list[list[dict]] = []
    original = BiEncoderCollator.__call__

    def record(self, items):  # type: ignore[no-untyped-def]
        seen.append(items)
        return original(self, items)

    monkeypatch.setattr(BiEncoderCollator, "__call__", record)

    def repeats(batch: list[dict]) -> int:
        texts = [t for it in batch for t in (it["query"], *it["docs"])]
        return len(texts) - len(set(texts))

    kw = dict(model=tiny_bert, model_type="bi-encoder", loss="listwise", batch_size=3, max_length=32,
              max_steps=20, save_steps=1000, threads=1)
    train_reranker(train, tmp_path / "random", **kw)
    assert any(repeats(b) for b in seen)  # a random order does put a document twice in a batch
    seen.clear()
    s = train_reranker(train, tmp_path / "packed", batches="no-duplicates", **kw)
    del seen[20:]  # the data loader reads one batch ahead
    assert s.steps == 20 and len(seen) == 20 and all(len(b) == 3 and not repeats(b) for b in seen)
    # the first epoch's 16 batches in the seed's order, then 4 of the second epoch's in another packing
    items = [{"query": r["query"], "docs": [r["positive"], *r["negatives"]]} for r in rows]
    first, second = no_duplicate_order(items, 3, 1), no_duplicate_order(items, 3, item_seed(1, "batches", 1))
    assert sorted(first) == list(range(48)) and first[:12] != second[:12]
    assert [b[0]["query"] for b in seen] == [rows[i]["query"] for i in first[0::3] + second[0:12:3]]
    # a run resumed inside the second epoch reads that epoch's packing on
    s = train_reranker(train, tmp_path / "resumed", batches="no-duplicates", **{**kw, "save_steps": 18})
    (tmp_path / "resumed" / "train_summary.json").unlink()  # as if killed after checkpoint 18
    for folder in ("model", "checkpoints/checkpoint-20"):
        shutil.rmtree(tmp_path / "resumed" / folder)
    seen.clear()
    s = train_reranker(train, tmp_path / "resumed", batches="no-duplicates", **{**kw, "save_steps": 18})
    assert s.resumed_from_step == 18 and [b[0]["query"] for b in seen[:2]] == [rows[i]["query"] for i in second[6:12:3]]
    with pytest.raises(ConfigError, match="batches"):
        train_reranker(train, tmp_path / "bad", batches="sorted", **kw)


def test_bi_encoder_trains_any_encoder_and_saves_it_whole(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    """A DistilBERT encoder has no pooler (and no add_pooling_layer argument); a BERT one keeps its unused
    pooler, so the saved folder loads with no missing weight."""
    from safetensors import safe_open
    from transformers import DistilBertConfig, DistilBertModel

    from inpars import rerank

    tok = _minilm_tokenizer()
    distil = tmp_path / "tiny_distilbert"
    DistilBertModel(DistilBertConfig(vocab_size=tok.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                                     max_position_embeddings=128)).save_pretrained(distil)
    tok.save_pretrained(distil)
    kw = dict(model_type="bi-encoder", loss="listwise", batch_size=4, max_length=32, max_steps=2, save_steps=1000,
              threads=1)
    s = train_reranker(toy_train, tmp_path / "distil", model=str(distil), **kw)
    assert s.steps == 2 and rerank.detect_model_type(s.model_path) == "bi-encoder"
    s = train_reranker(toy_train, tmp_path / "bert", model=tiny_bert, **kw)
    with safe_open(str(Path(s.model_path) / "model.safetensors"), "pt") as f:
        assert {"pooler.dense.weight", "pooler.dense.bias"} <= set(f.keys())


def test_margin_mse_loss_is_the_mean_squared_margin_gap() -> None:
    import torch

    from inpars.training.bi_encoder import margin_mse_loss

    class Echo(torch.nn.Module):
        """'Encodes' a text as the one-hot row its input id selects, so cosines are 0 or 1."""

        def forward(self, input_ids, attention_mask):  # type: ignore[no-untyped-def]
            return type("Out", (), {"last_hidden_state": torch.eye(4)[input_ids].float()})()

    # one query (id 0) and a group (pos = id 0, neg = id 1): student cosines 1 and 0 -> margin 1
    inputs = {"q_input_ids": torch.tensor([[0]]), "q_attention_mask": torch.tensor([[1]]),
              "d_input_ids": torch.tensor([[0], [1]]), "d_attention_mask": torch.tensor([[1], [1]]),
              "group_sizes": torch.tensor([2]), "teacher": torch.tensor([0.9, 0.6])}
    assert abs(float(margin_mse_loss(Echo(), inputs)) - (1.0 - 0.3) ** 2) < 1e-6


def test_bi_encoder_margin_mse_follows_the_teacher(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    rows = [json.loads(line) for line in toy_train.read_text().splitlines()]
    scored = tmp_path / "scored.jsonl"
    scored.write_text("".join(json.dumps({**r, "scores": [0.9, 0.2, 0.1]}) + "\n" for r in rows))
    kw = dict(model=tiny_bert, model_type="bi-encoder", loss="margin-mse", batch_size=4, max_length=32,
              learning_rate=3e-3, max_steps=30, save_steps=1000, threads=1)
    s = train_reranker(scored, tmp_path / "gpl", **kw)
    losses = _losses(tmp_path / "gpl")
    assert s.loss == "margin-mse" and len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]  # the student's margins approach the teacher's
    with pytest.raises(ConfigError, match="teacher scores"):
        train_reranker(toy_train, tmp_path / "bad", **kw)  # no scores in the file


def test_average_start_saves_the_wise_ft_average_and_reuses_the_last_checkpoint(tmp_path: Path, tiny_bert: str, toy_train: Path, keep_threads) -> None:  # type: ignore[no-untyped-def]
    """average_start = w saves (1 - w) trained + w start, tensor by tensor; it changes nothing in training,
    so a finished run's folder re-averages its last checkpoint without a training step."""
    import torch

    kw = dict(model=tiny_bert, model_type="bi-encoder", loss="listwise", batch_size=4, max_length=32,
              learning_rate=3e-3, max_steps=6, save_steps=1000, threads=1)
    plain = train_reranker(toy_train, tmp_path / "o", **kw)
    trained, start = _weights(plain.model_path), _weights(tiny_bert)
    avg = train_reranker(toy_train, tmp_path / "o", **kw, average_start=0.25)
    assert avg.steps == 6 and avg.resumed_from_step == 6  # no step trained again
    got = _weights(avg.model_path)
    assert set(got) == set(trained)
    for name, tensor in got.items():
        torch.testing.assert_close(tensor, 0.75 * trained[name] + 0.25 * start[name.removeprefix("bert.")],
                                   rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(trained[n], start[n]) for n in trained)  # training moved the weights
    back = train_reranker(toy_train, tmp_path / "o", **kw)  # share 0 again: the trained weights
    assert all(torch.equal(t, trained[n]) for n, t in _weights(back.model_path).items())
    resaved_tokenizer = (Path(back.model_path) / "tokenizer.json").read_bytes()
    # a fresh run with the share equals the re-averaged one
    fresh = train_reranker(toy_train, tmp_path / "fresh", **kw, average_start=0.25)
    assert all(torch.equal(t, got[n]) for n, t in _weights(fresh.model_path).items())
    # and so does its tokenizer (a fast tokenizer would save the collator's last truncation and padding)
    assert (Path(fresh.model_path) / "tokenizer.json").read_bytes() == resaved_tokenizer
    with pytest.raises(ConfigError, match="average_start"):
        train_reranker(toy_train, tmp_path / "bad", **kw, average_start=1.5)


def test_average_start_keeps_a_newly_initialised_head_and_counts_tied_weights_once(tiny_bert: str) -> None:
    """A cross-encoder started from a bare encoder: the head the start lacks keeps its trained values."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from inpars.training.common import average_with_start

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    moved = {k: v.clone() for k, v in model.state_dict().items()}
    n = average_with_start(model, tiny_bert, 0.5)
    after = model.state_dict()
    assert n > 0
    torch.testing.assert_close(after["classifier.weight"], moved["classifier.weight"])
    name = "bert.encoder.layer.0.attention.self.query.weight"
    torch.testing.assert_close(after[name], (moved[name] + before[name]) / 2)


def test_cli_trains_a_checkpoint_as_the_type_it_is_unless_told(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A sentence-transformers checkpoint trains as a bi-encoder (with a loss that type trains), not as a
    cross-encoder with a random head; `--model-type` still decides where given. The summary is a line,
    not JSON."""
    from fakes import tiny_bi_encoder
    from inpars.cli import main

    start = tiny_bi_encoder(tmp_path_factory.mktemp("tiny_bi_train"))
    p = _write_jsonl(tmp_path / "t.jsonl", [GOOD, {**GOOD, "query": "another query"}])
    common = ["train", "--train", str(p), "--model", start, "--max-steps", "1", "--batch-size", "2",
              "--max-length", "32"]
    assert main([*common, "--out", str(tmp_path / "bi")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("trained bi-encoder (listwise)") and "{" not in out
    assert json.loads((tmp_path / "bi" / "train_summary.json").read_text())["model_type"] == "bi-encoder"
    assert main([*common, "--out", str(tmp_path / "ce"), "--model-type", "cross-encoder"]) == 0
    assert capsys.readouterr().out.startswith("trained cross-encoder (bce)")
