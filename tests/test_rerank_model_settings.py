"""Settings read from the model: the rerank length (as sentence-transformers reads it back) and the
seq2seq rerankers' target token pair (monoT5 true/false, mT5 ▁yes/▁no, FLAN-T5 yes/no), with tiny
models built from configs (no download)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import minilm_tokenizer
from fakes import tiny_cross_encoder
from inpars import rerank
from inpars.config import RerankConfig
from inpars.families.monot5 import TOKENS_KEY, MonoT5Family, prediction_tokens
from inpars.rerank.base import FALLBACK_MAX_LENGTH, model_max_length

PAIRS = [("does vitamin d prevent infections", "vitamin d supplementation reduces respiratory infections"),
         ("aspirin", "aspirin lowers the risk of heart attack"), ("yes", "no true false")]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPARS_CACHE", str(tmp_path_factory.getbasetemp() / "inpars-cache"))


def _set_tokenizer_length(path: str, value: float) -> None:
    cfg_path = Path(path) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_max_length"] = value
    cfg_path.write_text(json.dumps(cfg))


def test_rerank_length_defaults_to_what_cross_encoder_reads(tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    assert RerankConfig().max_length is None  # unset: from the model
    path = tiny_cross_encoder(tmp_path / "ce")
    _set_tokenizer_length(path, 96)
    scorer = rerank.load_scorer(path, "cross-encoder", engine="torch")
    assert scorer.max_length == 96 == CrossEncoder(path, device="cpu").max_seq_length
    assert rerank.load_scorer(path, "cross-encoder", engine="torch", max_length=40).max_length == 40
    # a tokenizer without a limit (transformers' 1e30 sentinel): capped at the position embeddings (128)
    _set_tokenizer_length(path, int(1e30))
    assert model_max_length(path) == 128
    assert model_max_length(tmp_path / "not-a-model") == FALLBACK_MAX_LENGTH


def test_bi_encoder_length_is_sentence_transformers_max_seq_length() -> None:
    from sentence_transformers import SentenceTransformer

    from inpars.models import minilm_dir

    path = str(minilm_dir())
    assert model_max_length(path, "bi-encoder") == SentenceTransformer(path, device="cpu").max_seq_length == 256
    # read as a cross-encoder, the same folder has its tokenizer's length (sentence-transformers does the same)
    assert model_max_length(path, "cross-encoder") == 512


def test_monot5_pair_is_true_false_and_recorded_by_training(tiny_t5: str, tmp_path: Path) -> None:
    scorer = rerank.load_scorer(tiny_t5, max_length=64)
    assert scorer.tokens == ("true", "false")
    tok = minilm_tokenizer()
    assert scorer.token_ids == (tok.convert_tokens_to_ids("true"), tok.convert_tokens_to_ids("false"))
    assert scorer.describe()["tokens"] == ["true", "false"]
    # a model trained here records its pair; an explicit record wins over the name
    import shutil

    flan = tmp_path / "my-flan-t5-reranker"
    shutil.copytree(tiny_t5, flan)
    assert prediction_tokens(flan) == ("yes", "no")  # the original's FLANT5Reranker pair
    MonoT5Family().finalize(flan, 64)
    assert json.loads((flan / "config.json").read_text())[TOKENS_KEY] == ["true", "false"]
    assert prediction_tokens(flan) == ("true", "false")
    assert rerank.load_scorer(str(flan), "monot5", max_length=64).tokens == ("true", "false")


def _sentencepiece_like_tokenizer(path: Path):  # type: ignore[no-untyped-def]
    """A tiny Unigram tokenizer with T5-style pieces ('▁yes', '▁no', ...), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["query:", "document:", "relevant:", "yes", "no", "true", "false", "vitamin", "d", "aspirin",
             "does", "prevent", "infections", "supplementation", "reduces", "respiratory", "lowers", "the",
             "risk", "of", "heart", "attack"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -1.0) for w in words]
    vocab += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz:"]
    tk = Tokenizer(models.Unigram(vocab, unk_id=2))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)
    fast.save_pretrained(path)
    return fast


def test_mt5_reranker_scores_with_yes_no(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSeq2SeqLM, MT5Config, MT5ForConditionalGeneration

    path = tmp_path / "tiny-mt5"
    tok = _sentencepiece_like_tokenizer(path)
    torch.manual_seed(0)
    cfg = MT5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                    num_decoder_layers=2, pad_token_id=tok.pad_token_id, decoder_start_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id)
    MT5ForConditionalGeneration(cfg).save_pretrained(path)
    scorer = rerank.load_scorer(str(path), max_length=64)  # monot5 family, detected from the config
    assert scorer.tokens == ("\u2581yes", "\u2581no")
    yes_id, no_id = tok.convert_tokens_to_ids("\u2581yes"), tok.convert_tokens_to_ids("\u2581no")
    assert scorer.token_ids == (yes_id, no_id)
    got = scorer.score(PAIRS)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    want = []
    for q, d in PAIRS:
        enc = tok(f"Query: {q} Document: {d} Relevant:", return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc, decoder_input_ids=torch.tensor([[tok.pad_token_id]])).logits[0, 0]
        want.append(torch.softmax(logits[[yes_id, no_id]], dim=0)[0].item())
    assert got == pytest.approx(want, abs=1e-5)
    # the pair monoT5 would use scores differently: the choice of tokens matters
    forced = rerank.MonoT5Scorer(str(path), tokens=("\u2581true", "\u2581false"), max_length=64, batch_size=8)
    assert forced.score(PAIRS) != pytest.approx(got, abs=1e-6)
