"""monoT5-style seq2seq rerankers (Nogueira, Jiang, Pradeep, Lin, "Document Ranking with a Pretrained
Sequence-to-Sequence Model", Findings of EMNLP 2020).

The encoder reads ``Query: {q} Document: {d} Relevant:``; the decoder is trained (teacher forcing,
token cross-entropy) to write ``true`` for a relevant document and ``false`` for a non-relevant one
(followed by the tokenizer's end-of-sequence token when it has one). At inference the relevance score is
the probability of ``true`` in a softmax restricted to the logits of ``true`` and ``false`` at the first
decoder step: :func:`monot5_scores` (which the rerank stage imports).

Truncation keeps the template whole: the *document* is cut, at a token boundary, so that the encoded
input fits ``max_length`` with ``Relevant:`` still at its end (cutting the whole string would drop the
very cue the model answers).

Any tokenizer whose ``true`` and ``false`` are single tokens works: T5's SentencePiece tokenizer
(``▁true``, ``▁false``) and BERT's WordPiece (used by the tests with a tiny randomly initialised T5,
since no T5 checkpoint can be downloaded offline).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inpars.errors import ConfigError
from inpars.records import TrainingExample
from inpars.training.cross_encoder import PairDataset, TrainingParts

log = logging.getLogger(__name__)

MONOT5_TEMPLATE = "Query: {query} Document: {document} Relevant:"
TRUE_TOKEN = "true"
FALSE_TOKEN = "false"


def monot5_token_ids(tokenizer: Any, true: str = TRUE_TOKEN, false: str = FALSE_TOKEN) -> tuple[int, int]:
    """Ids of the ``true`` and ``false`` target tokens; ConfigError if either is not a single token."""
    ids = []
    for word in (true, false):
        enc = tokenizer.encode(word, add_special_tokens=False)
        if len(enc) != 1:
            raise ConfigError(f"monoT5 needs '{word}' to be one token of the tokenizer; it is {len(enc)} tokens: {enc}")
        ids.append(int(enc[0]))
    return ids[0], ids[1]


def monot5_texts(
    tokenizer: Any, queries: Sequence[str], docs: Sequence[str], max_length: int, template: str = MONOT5_TEMPLATE
) -> list[str]:
    """Input strings, each document cut at a token boundary so that the whole string fits ``max_length``."""
    fixed = [template.format(query=q, document="") for q in queries]
    n_fixed = [len(ids) for ids in tokenizer(fixed, add_special_tokens=True)["input_ids"]]
    enc = tokenizer(list(docs), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for q, d, n, offsets in zip(queries, docs, n_fixed, enc["offset_mapping"], strict=True):
        budget = max_length - n
        if len(offsets) > budget:
            d = d[: offsets[budget - 1][1]] if budget > 0 else ""
        out.append(template.format(query=q, document=d))
    return out


def monot5_encode(
    tokenizer: Any, queries: Sequence[str], docs: Sequence[str], max_length: int, template: str = MONOT5_TEMPLATE
) -> Any:
    """Encoder inputs (padded tensors) for (query, document) pairs."""
    texts = monot5_texts(tokenizer, queries, docs, max_length, template)
    return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def decoder_start_id(model: Any) -> int:
    start = model.config.decoder_start_token_id
    if start is None:
        start = model.config.pad_token_id
    if start is None:
        raise ConfigError("the seq2seq model's config has neither decoder_start_token_id nor pad_token_id")
    return int(start)


def monot5_scores(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 32,
    max_length: int = 512,
    *,
    log_prob: bool = False,
    template: str = MONOT5_TEMPLATE,
    token_ids: tuple[int, int] | None = None,
) -> list[float]:
    """monoT5 relevance scores of (query, document) pairs, in input order.

    ``token_ids``: the (relevant, non-relevant) token ids; default ``true``/``false``
    (:func:`monot5_token_ids`; :mod:`inpars.families.monot5` reads a model's own pair, e.g. mT5's).

    Score = softmax over the (``true``, ``false``) logits at the first decoder step, probability of
    ``true`` (in [0, 1]); ``log_prob=True`` returns its natural log instead (what the monoT5 authors
    rank by; the order is the same). Pairs are batched by length to limit padding. The model is put in
    eval mode and run without gradients on its own device.

    >>> model, tok = load_monot5("path/to/monot5")                 # doctest: +SKIP
    >>> monot5_scores(model, tok, [("what is x", "x is ...")])      # doctest: +SKIP
    [0.93]
    """
    import torch

    if not pairs:
        return []
    true_id, false_id = token_ids or monot5_token_ids(tokenizer)
    start = decoder_start_id(model)
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]), reverse=True)
    scores = [0.0] * len(pairs)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            enc = monot5_encode(tokenizer, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx], max_length, template)
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            dec = torch.full((len(idx), 1), start, dtype=torch.long, device=device)
            logits = model(**enc, decoder_input_ids=dec).logits[:, 0, :]
            pair_logits = torch.stack([logits[:, true_id], logits[:, false_id]], dim=1).float()
            lp = torch.log_softmax(pair_logits, dim=1)[:, 0]
            values = lp if log_prob else lp.exp()
            for i, v in zip(idx, values.tolist(), strict=True):
                scores[i] = float(v)
    return scores


def load_monot5(path: str, device: str | None = None) -> tuple[Any, Any]:
    """A seq2seq model (eval mode) and its tokenizer from a local folder or hub id."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    if not getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"{path} is not an encoder-decoder (seq2seq) model: model_type 'monot5' needs a T5-like checkpoint"
        )
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    if device:
        model.to(device)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


@dataclass
class MonoT5Collator:
    """Encoder inputs + target ids (``true``/``false`` [+ eos]) for a batch of labelled pairs."""

    tokenizer: Any
    max_length: int
    template: str = MONOT5_TEMPLATE

    def __post_init__(self) -> None:
        self.true_id, self.false_id = monot5_token_ids(self.tokenizer)
        eos = self.tokenizer.eos_token_id
        self.suffix = [int(eos)] if eos is not None else []

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        enc = monot5_encode(
            self.tokenizer, [it["query"] for it in items], [it["doc"] for it in items], self.max_length, self.template
        )
        labels = [[self.true_id if it["label"] > 0.5 else self.false_id, *self.suffix] for it in items]
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": torch.tensor(labels, dtype=torch.long),
        }


def seq2seq_loss(model: Any, inputs: dict[str, Any]) -> Any:
    """Token cross-entropy of the target (the model shifts ``labels`` right to feed its decoder)."""
    return model(**inputs).loss


def build(base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> TrainingParts:
    """Model, tokenizer, dataset, collator and loss for a monoT5 run (pointwise ``bce`` only)."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    if loss != "bce":
        raise ConfigError(f"model_type 'monot5' trains with loss 'bce' (true/false targets), not {loss!r}")
    config = AutoConfig.from_pretrained(base_model)
    if not getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"{base_model} is not an encoder-decoder (seq2seq) model: model_type 'monot5' needs a T5-like "
            "checkpoint (use model_type 'cross-encoder' for BERT-like models such as minilm-l6)"
        )
    model = AutoModelForSeq2SeqLM.from_pretrained(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    decoder_start_id(model)
    return TrainingParts(
        model, tokenizer, PairDataset(examples), MonoT5Collator(tokenizer, max_length), seq2seq_loss, 1.0
    )
