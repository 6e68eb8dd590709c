"""Test doubles for the fast tier: a generation backend that needs no model, and a tiny BERT cross-encoder.

The fake backend writes a query from words of the document in the prompt, chosen by the prompt's seed, so
that its output depends on the prompt and seed only (the contract of :class:`inpars.generation.Backend`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpars.generation.base import BACKENDS, Backend, Generation, SamplingParams, prompt_seeds


class FakeBackend(Backend):
    """Whitespace tokens; the query is five words of the prompt's last document."""

    name = "fake"
    default_batch_size = 4
    context_length = 4096

    def __init__(self, model: str, **options: Any) -> None:
        super().__init__(model, **options)
        self.calls = 0

    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Generation]]:
        self.calls += 1
        out = []
        for prompt, seed in zip(prompts, prompt_seeds(self, params, len(prompts), seeds), strict=True):
            doc = prompt.rsplit("Document:", 1)[-1].split("\n", 1)[0].split()
            gens = []
            for j in range(params.n):
                rng = random.Random(seed + j if params.temperature > 0 else 0)
                words = rng.sample(doc, min(5, len(doc))) if params.temperature > 0 else doc[::3][:5][::-1]
                text = "what about " + " ".join(w.strip(".,;:()") for w in words) + "?"
                gens.append(Generation(text=text, log_probs=[-0.1 * (k + 1) for k in range(len(words))],
                                       tokens=words, prompt_tokens=len(prompt.split())))
            out.append(gens)
        return out

    def tokenize(self, text: str) -> list[int]:
        return [hash(w) % 50000 for w in text.split()]

    def truncate(self, text: str, max_tokens: int) -> str:
        return " ".join(text.split()[:max_tokens])

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def register_fake_backend() -> None:
    if "fake" not in BACKENDS:
        BACKENDS.register("fake")(FakeBackend)


def tiny_bert_config(vocab_size: int, **extra: int) -> Any:
    """The 2-layer, 32-wide BERT configuration of the tiny test models."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128, **extra)


def tiny_cross_encoder(path: Path) -> str:
    """A 2-layer, 32-wide BERT sequence classifier (random weights) with the MiniLM tokenizer."""
    import torch
    from transformers import BertForSequenceClassification

    from conftest import minilm_tokenizer

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    BertForSequenceClassification(tiny_bert_config(tok.vocab_size, num_labels=1)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def tiny_bi_encoder(path: Path) -> str:
    """A 2-layer, 32-wide BERT encoder (random weights) with the MiniLM tokenizer, saved as a
    sentence-transformers folder (mean pooling, normalised), as all-MiniLM-L6-v2 is."""
    import torch
    from transformers import BertModel

    from conftest import minilm_tokenizer
    from inpars.training.bi_encoder import finalize

    tok = minilm_tokenizer()
    torch.manual_seed(0)
    BertModel(tiny_bert_config(tok.vocab_size)).save_pretrained(path)
    tok.save_pretrained(path)
    finalize(path, 48)
    return str(path)


def tiny_pipeline_config(run_dir: Path, model: str, **over: Any) -> dict[str, Any]:
    """An ``inpars run`` config for the fast tier: SciFact slices, the fake backend, ``model`` (a tiny
    cross-encoder) trained for a few steps. ``over``: ``"section.field": value`` replacements."""
    cfg: dict[str, Any] = {
        "run_dir": str(run_dir),
        "seed": 5,
        "dataset": {"name": "scifact", "max_eval_queries": 5},
        "retrieve": {"k": 20},
        "generate": {"backend": "fake", "model": "none", "n_docs": 12, "max_doc_tokens": 40, "batch_size": 4},
        "filter": {"steps": [{"name": "logprob", "top_fraction": 0.9}], "min_words": 1},
        "negatives": {"n_negatives": 2, "depth": 20},
        "train": {"model": model, "max_steps": 2, "batch_size": 4, "max_length": 48, "save_steps": 1},
        "rerank": {"depth": 8, "max_length": 48, "engine": "torch", "interpolate": True, "tune_queries": 4},
        "evaluate": {"measures": ["nDCG@10", "R@100"], "permutations": 100},
    }
    for key, value in over.items():
        section, _, field = key.partition(".")
        cfg[section][field] = value
    return cfg
