"""The query-likelihood (UPR) family: scores are mean log P(query | document), batch- and padding-free."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import minilm_tokenizer
from inpars.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide Llama (random weights) with the MiniLM tokenizer, saved to a folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_lm")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_score_is_the_mean_query_log_probability(tiny_lm: str) -> None:
    import torch

    from inpars.families.query_likelihood import PROMPT
    from inpars.rerank import detect_model_type, load_scorer

    assert detect_model_type(tiny_lm) == "query-likelihood"
    pairs = [("does aspirin help", "Aspirin lowers the risk of heart attack."),
             ("sleep and obesity in young children", "Short sleep is linked to obesity in children, a cohort."),
             ("statins", "Statins reduce cholesterol.")]
    one = load_scorer(tiny_lm, "query-likelihood", batch_size=1, max_length=64)
    many = load_scorer(tiny_lm, "query-likelihood", batch_size=3, max_length=64)
    got = one.score(pairs)
    assert many.score(pairs) == pytest.approx(got, abs=1e-5)  # right padding changes nothing
    # by hand, for the second pair
    tok = one.tokenizer
    q, d = pairs[1]
    head, tail = PROMPT.split("{document}")
    prompt = [*tok(head, add_special_tokens=False)["input_ids"], *tok(d, add_special_tokens=False)["input_ids"],
              *tok(tail, add_special_tokens=False)["input_ids"]]
    q_ids = tok(" " + q, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + q_ids])
    with torch.inference_mode():
        logp = torch.log_softmax(one.lm(input_ids=ids).logits[0].float(), -1)
    want = sum(float(logp[len(prompt) + i - 1, t]) for i, t in enumerate(q_ids)) / len(q_ids)
    assert got[1] == pytest.approx(want, abs=1e-5)


def test_it_is_not_trained(tiny_lm: str, tmp_path: Path) -> None:
    from inpars.training import train_reranker

    train = tmp_path / "t.jsonl"
    train.write_text('{"query": "q", "pos_doc_id": "d", "positive": "text", "negatives": ["n"]}\n')
    with pytest.raises(ConfigError, match="zero-shot"):
        train_reranker(train, tmp_path / "out", model=tiny_lm, model_type="query-likelihood", loss="bce")


@pytest.mark.slow
def test_smollm2_prefers_the_source_document() -> None:
    from inpars.rerank import load_scorer

    scorer = load_scorer("smollm2-135m", "query-likelihood", max_length=128, batch_size=2)
    query = "Does vitamin D supplementation reduce respiratory infections?"
    s = scorer.score([(query, "Vitamin D supplementation reduced acute respiratory tract infections in a trial."),
                      (query, "Statins lower LDL cholesterol and cardiovascular events in older adults.")])
    assert s[0] > s[1]


def test_an_encoder_is_refused_rather_than_scored_through_a_new_untrained_head(tmp_path: Path) -> None:
    """A BERT checkpoint (the packaged MiniLM) loads as AutoModelForCausalLM with a random LM head: every
    score would be noise, so ``model_type: query-likelihood`` on it is one clear error."""
    from inpars.models import resolve_model
    from inpars.rerank import load_scorer

    with pytest.raises(ConfigError, match=r"not a causal language model \(BertModel\)"):
        load_scorer(resolve_model("minilm-l6"), "query-likelihood")
