"""The ``query-likelihood`` family: a causal language model as a zero-shot reranker (UPR, Sachan et al. 2022).

The score of (query, document) is the mean log-probability of the query's tokens given the document:
``1/|q| * sum_t log P(q_t | q_<t, prompt(document))`` with the prompt of UPR::

    Passage: <document, cut to max_length tokens>. Please write a question based on this passage.
    Question: <query>

Any transformers causal LM serves (a folder, a hub id, or a ``.gguf`` file, dequantised by transformers,
such as the packaged ``smollm2-135m``): the query generator itself can rerank. Pairs are scored in
batches of ``batch_size`` with right padding; padding never changes a score (each pair's positions and
attention are its own). There is nothing to train: it is a zero-shot model (``inpars train`` refuses it).
Detection: a checkpoint whose architecture is ``*ForCausalLM``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpars.errors import ConfigError
from inpars.records import TrainingExample
from inpars.scoring.base import Pair, Scorer, TorchScorer
from inpars.scoring.family import Family, register

PROMPT = "Passage: {document}. Please write a question based on this passage.\nQuestion:"


class QueryLikelihoodScorer(TorchScorer):
    """Mean log P(query | document) under a causal LM (see the module docstring).

    >>> scorer = load_scorer("smollm2-135m", "query-likelihood", max_length=128)          # doctest: +SKIP
    >>> scorer.score([("what lowers cholesterol", "Statins reduce LDL cholesterol.")])    # doctest: +SKIP
    """

    model_type = "query-likelihood"

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from inpars.models import from_pretrained_source

        source, extra = from_pretrained_source(model, purpose="scoring with a GGUF file through transformers")
        if not extra:  # a GGUF file is a causal LM; a folder says what it is in its config
            _check_causal(model, source)
        self.tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        lm: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **extra)
        self.lm = lm.to(self.device).eval()
        self._pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def _encode(self, query: str, document: str) -> tuple[list[int], int]:
        """Token ids of prompt + query, and the number of query tokens at the end."""
        tok = self.tokenizer
        doc_ids = tok(document, add_special_tokens=False)["input_ids"][: self.max_length]
        head, tail = PROMPT.split("{document}")
        prompt = (tok(head, add_special_tokens=False)["input_ids"] + doc_ids
                  + tok(tail, add_special_tokens=False)["input_ids"])
        q_ids = tok(" " + query.strip(), add_special_tokens=False)["input_ids"] or [self._pad]
        return prompt + q_ids, len(q_ids)

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        import torch

        out: list[float] = []
        encoded = [self._encode(q, d) for q, d in pairs]
        for start in range(0, len(encoded), self.batch_size):
            batch = encoded[start : start + self.batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (seq, _) in enumerate(batch):
                ids[i, : len(seq)] = torch.tensor(seq)
                mask[i, : len(seq)] = 1
            with torch.inference_mode():
                logits = self.lm(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for i, (seq, n_q) in enumerate(batch):
                positions = torch.arange(len(seq) - n_q, len(seq))
                targets = ids[i, positions].to(logp.device)
                out.append(float(logp[i, positions - 1, targets].mean()))
        return out


def _is_causal(config: Any) -> bool:
    names = [str(a) for a in (getattr(config, "architectures", None) or [])]
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in names) and not getattr(
        config, "is_encoder_decoder", False)


def _check_causal(model: str, source: str) -> None:
    """Refuse a checkpoint whose config names no causal-LM architecture (a BERT encoder or cross-encoder,
    a T5): transformers would give it a new, untrained language-model head and every score would be noise."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    if not _is_causal(config):
        found = ", ".join(getattr(config, "architectures", None) or []) or "no architecture"
        raise ConfigError(f"{model} is not a causal language model ({found}): model_type 'query-likelihood' "
                          "needs a *ForCausalLM checkpoint or a .gguf file; leave model_type unset to use the "
                          "checkpoint's own type")


@register
class QueryLikelihoodFamily(Family):
    name = "query-likelihood"
    description = "causal LM, zero-shot: score = mean log P(query | document) (UPR)"
    losses = ()

    def detect(self, path: str, config: Any = None) -> bool:
        if config is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path)
        return _is_causal(config)

    @property
    def scorer(self) -> type[Scorer]:
        return QueryLikelihoodScorer

    def check_loss(self, loss: str) -> None:
        raise ConfigError("model_type 'query-likelihood' is a zero-shot reranker (UPR): it is not trained; "
                          "use it as rerank.model with rerank.model_type: query-likelihood")

    def build(self, base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> Any:
        self.check_loss(loss)

    def usage(self, where: Path) -> str:
        return f"Rerank with: `inpars rerank --model {where} --model-type query-likelihood ...`\n"
