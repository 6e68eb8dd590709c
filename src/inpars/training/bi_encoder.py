"""Bi-encoder (dense) rerankers: a BERT-like encoder, mean pooling, L2 normalisation; score = cosine.

Losses:

- ``listwise``: MultipleNegativesRankingLoss as in sentence-transformers (InPars-light's dense variants):
  for each query of the batch, a softmax over ``scale * cosine`` with *every* document of the batch (its
  positive, its hard negatives, and the other queries' positives and negatives), the target being its own
  positive. ``batch_size`` counts groups, so larger batches give more in-batch negatives.
- ``margin-mse`` (GPL's distillation): for each group, the mean squared difference between the student's
  margins ``cos(q, pos) - cos(q, neg)`` and the teacher's ``t(pos) - t(neg)``, the teacher scores being the
  examples' ``scores`` (pseudo-labels written by the negatives stage, ``teacher: fused``).

Queries and documents are tokenised separately, truncated to ``max_length``, dynamically padded: one
encoder pass for the batch's queries, one for all of its documents, padded to their longest (the passes
of sentence-transformers' own trainer, whose ``embed_columns`` merges the candidate columns). The saved
folder is a sentence-transformers model (``modules.json``: Transformer -> mean Pooling -> Normalize): it
loads with ``SentenceTransformer(path)`` and ``inpars rerank`` reads it as a bi-encoder (``detect_model_type``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inpars.records import TrainingExample
from inpars.training.cross_encoder import GroupDataset, TrainingParts, pairs_per_group

SCALE = 20.0  # sentence-transformers' MultipleNegativesRankingLoss default (cosine similarities x 20)


@dataclass
class BiEncoderCollator:
    """Tokenises the batch's queries and its documents (positive first in each group) separately."""

    tokenizer: Any
    max_length: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        kw = {"truncation": True, "max_length": self.max_length, "padding": True, "return_tensors": "pt"}
        q = self.tokenizer([it["query"] for it in items], **kw)
        d = self.tokenizer([doc for it in items for doc in it["docs"]], **kw)
        out = {
            **{f"q_{k}": v for k, v in q.items()},
            **{f"d_{k}": v for k, v in d.items()},
            "group_sizes": torch.tensor([len(it["docs"]) for it in items], dtype=torch.long),
        }
        if all(it.get("scores") is not None for it in items):
            out["teacher"] = torch.tensor([x for it in items for x in it["scores"]], dtype=torch.float)
        return out


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of the token vectors where ``mask`` is 1 (sentence-transformers' mean pooling)."""
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)


def _embed(model: Any, inputs: dict[str, Any], prefix: str) -> Any:
    import torch.nn.functional as F

    feats = {k[len(prefix) :]: v for k, v in inputs.items() if k.startswith(prefix)}
    hidden = model(**feats).last_hidden_state
    return F.normalize(mean_pool(hidden, feats["attention_mask"]).float(), dim=-1)


def mnrl_loss(model: Any, inputs: dict[str, Any]) -> Any:
    """Cross-entropy of each query over all documents of the batch; the target is its own positive."""
    import torch
    import torch.nn.functional as F

    sizes = inputs["group_sizes"]
    q = _embed(model, inputs, "q_")
    d = _embed(model, inputs, "d_")
    positives = (torch.cumsum(sizes, 0) - sizes).to(q.device)  # each group's first document
    return F.cross_entropy(SCALE * q @ d.T, positives)


def margin_mse_loss(model: Any, inputs: dict[str, Any]) -> Any:
    """Mean over every (positive, negative) pair of the batch of ``((s_pos - s_neg) - (t_pos - t_neg))^2``,
    ``s`` the student's cosine, ``t`` the teacher's score (the first document of each group is the positive).
    """
    import torch
    import torch.nn.functional as F

    sizes = inputs["group_sizes"].tolist()
    q = _embed(model, inputs, "q_")
    d = _embed(model, inputs, "d_")
    owner = torch.repeat_interleave(torch.arange(len(sizes), device=q.device), torch.tensor(sizes, device=q.device))
    student = (q[owner] * d).sum(-1)
    teacher = inputs["teacher"].to(student.device)
    s_groups, t_groups = torch.split(student, sizes), torch.split(teacher, sizes)
    s_margin = torch.cat([s[:1] - s[1:] for s in s_groups])
    t_margin = torch.cat([t[:1] - t[1:] for t in t_groups])
    return F.mse_loss(s_margin, t_margin)


#: the losses a bi-encoder trains with (the family's ``losses``), by name
LOSSES = {"listwise": mnrl_loss, "margin-mse": margin_mse_loss}
#: the losses that learn from teacher scores (every document of every example needs one)
TEACHER_LOSSES = frozenset({"margin-mse"})


def build(base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> TrainingParts:
    """Model (a bare encoder), tokenizer, dataset, collator and loss for a bi-encoder run (``loss``: a key of
    :data:`LOSSES`; train_reranker's config validation refuses any other)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from inpars.errors import ConfigError

    if loss in TEACHER_LOSSES:
        missing = sum(1 for ex in examples if ex.scores is None or len(ex.scores) != 1 + len(ex.negatives))
        if missing:
            raise ConfigError(f"loss '{loss}' needs teacher scores for every document of every example; "
                              f"{missing} of {len(examples)} examples lack them (negatives.teacher: fused writes them)")
    config = AutoConfig.from_pretrained(base_model)
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(f"{base_model} is an encoder-decoder (seq2seq) model: train it with model_type 'monot5'")
    # the whole encoder as it ships (a pooler too, where the architecture has one): the pooler is never used
    # (mean pooling), so it keeps its weights and the saved folder loads without missing ones
    model = AutoModel.from_pretrained(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    return TrainingParts(
        model, tokenizer, GroupDataset(examples), BiEncoderCollator(tokenizer, max_length), LOSSES[loss],
        pairs_per_group(examples),
    )


def finalize(model_dir: Path, max_length: int) -> None:
    """Training-family hook, run by ``train_reranker`` on the saved folder: write the sentence-transformers module files beside the saved encoder (mean pooling, normalise)."""
    from transformers import AutoConfig

    dim = int(AutoConfig.from_pretrained(model_dir).hidden_size)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (model_dir / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (model_dir / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False}) + "\n", encoding="utf-8"
    )
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (model_dir / "1_Pooling").mkdir(exist_ok=True)
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", encoding="utf-8")
    (model_dir / "2_Normalize").mkdir(exist_ok=True)
