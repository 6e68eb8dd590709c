"""The ``cross-encoder`` family: a BERT-like encoder with a sequence-classification head.

Scoring: ``AutoModelForSequenceClassification``; the score is the raw logit of a one-label head, or
``logit[1] - logit[0]`` of a two-label one (same order as the softmax probability). Pairs are tokenised
once, sorted by token length so that each batch pads little, scored under ``torch.inference_mode`` and put
back in input order; only the *document* is truncated to ``max_length`` (``truncation="only_second"``).
In the torch engines a BERT cross-encoder's last layer runs at the [CLS] position only
(:func:`inpars.scoring.surgery.prune_last_layer`): the same scores for less work. Every engine of
:data:`inpars.catalog.ENGINES` runs it.

Training (:mod:`inpars.training.cross_encoder`): one logit, loss ``bce`` (pointwise) or ``listwise``.
Detection: a checkpoint whose config names a ``...ForSequenceClassification`` architecture and is not an
encoder-decoder; a bare encoder that no family claims is read as a cross-encoder too (with a new head
initialised from a fixed seed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inpars.errors import ConfigError
from inpars.records import TrainingExample
from inpars.scoring import calibrate
from inpars.scoring import engines as _engines
from inpars.scoring import onnx as _onnx
from inpars.scoring.base import Pair, Scorer, TorchScorer, progress
from inpars.scoring.classifier import (
    has_classification_head,
    head_labels,
    load_sequence_classifier,
    logits_to_scores,
)
from inpars.scoring.family import Family, register
from inpars.scoring.surgery import prune_last_layer

log = logging.getLogger(__name__)


class CrossEncoderScorer(TorchScorer):
    """A cross-encoder run by torch (``engine="torch"``, ``"torch-bf16"``) or onnxruntime (``"onnx"``,
    ``"onnx-int8"``); ``"auto"`` runs the faster of onnx and torch fp32 (the same scores within 1e-4) on a
    CPU, measured on the first four batches of the first call and cached per machine and model
    (:mod:`inpars.scoring.calibrate`), and torch on a GPU; ``engine`` names the one that runs."""

    model_type = "cross-encoder"

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        engine: str = "torch",
        threads: int | None = None,
        device: str | None = None,
        first_token_last_layer: bool = True,
    ) -> None:
        super().__init__(model, batch_size=batch_size, max_length=max_length, engine=engine, threads=threads,
                         device=device)
        import torch
        from transformers import AutoConfig, AutoTokenizer

        spec = self.engine_spec
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.model_max_length and self.tokenizer.model_max_length < max_length:
            log.warning("max_length %d exceeds the tokenizer's %d", max_length, self.tokenizer.model_max_length)
        config = AutoConfig.from_pretrained(model)
        self.num_labels = head_labels(config)
        self._torch_model: Any = None
        self._session: Any = None
        self._choice_key: str | None = None  # set while engine 'auto' still has to measure (calibrate)
        if spec.runtime is None:  # auto: the faster exact engine on this CPU (inpars.scoring.calibrate)
            engine = "torch"
            if self.device == "cpu":
                key = calibrate.choice_key(model, threads=torch.get_num_threads(), batch_size=batch_size,
                                           max_length=max_length, candidates=("onnx", "torch"))
                chosen = calibrate.cached_choice(key)
                if chosen != "torch":
                    try:
                        self._open_onnx(model, threads, quantize=False)
                        engine = "onnx"
                    except (ImportError, RuntimeError) as exc:  # no onnx extra, or a model that does not export
                        log.warning("engine 'auto': ONNX unavailable for %s (%s); using torch", model, exc)
                self._choice_key = key if chosen is None and engine == "onnx" else None
            spec = _engines.get_engine(engine)
        elif spec.runtime == "onnx":
            if spec.cpu_only and self.device != "cpu":
                raise ConfigError(f"engine '{engine}' runs on the CPU only; use engine 'torch' on {self.device}")
            self._open_onnx(model, threads, quantize=spec.int8)
        self.first_token_last_layer = False
        if spec.runtime == "torch" or self._choice_key is not None:  # torch, or both until auto has measured
            self._torch_model = load_sequence_classifier(model, self.num_labels).to(self.device).eval()
            if first_token_last_layer:
                self.first_token_last_layer = prune_last_layer(self._torch_model)
            if spec.bf16:
                if not _engines.bf16_supported(self.device):
                    raise ConfigError(
                        f"engine '{engine}': this {self.device} has no native bfloat16 support "
                        "(it would be emulated, slower than fp32); use engine 'onnx' or 'torch'"
                    )
                self._torch_model.to(torch.bfloat16)
        self.engine = "auto" if self._choice_key is not None else engine  # 'auto' until it has measured

    def _open_onnx(self, model: str, threads: int | None, quantize: bool) -> None:
        path = _onnx.onnx_model_path(model, self.num_labels, quantize=quantize)
        self._session = _onnx.ort_session(path, threads)
        self._input_names = [i.name for i in self._session.get_inputs()]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "first_token_last_layer": self.first_token_last_layer}

    def _encode(self, pairs: list[Pair]) -> list[dict[str, list[int]]]:
        """Token ids of every pair, unpadded; the document is truncated, never the query (unless the query
        alone is too long, then both are cut)."""
        kw = {"max_length": self.max_length, "return_attention_mask": True}
        qs, ds = [p[0] for p in pairs], [p[1] for p in pairs]
        try:
            enc = self.tokenizer(qs, ds, truncation="only_second", **kw)
            return [{k: enc[k][i] for k in enc} for i in range(len(pairs))]
        except Exception:  # a query longer than max_length: 'only_second' cannot fit the pair
            out = []
            for q, d in pairs:
                try:
                    e = self.tokenizer(q, d, truncation="only_second", **kw)
                except Exception:
                    e = self.tokenizer(q, d, truncation="longest_first", **kw)
                out.append(dict(e))
            return out

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        encoded = self._encode(pairs)
        # Longest first (ties by position): batches pad little; the order is deterministic.
        order = sorted(range(len(pairs)), key=lambda i: (-len(encoded[i]["input_ids"]), i))
        scores = [0.0] * len(pairs)
        starts = range(0, len(order), self.batch_size)
        done: dict[int, list[float]] = {}
        if self._choice_key is not None and len(starts) >= calibrate.PROBE_BATCHES:
            probe = [[encoded[i] for i in order[s : s + self.batch_size]] for s in starts[: calibrate.PROBE_BATCHES]]
            done = dict(zip(starts, self._calibrate(probe), strict=False))
        for start in progress(starts, len(starts), show_progress, "rerank", unit="batch"):
            idx = order[start : start + self.batch_size]
            values = done.get(start) or self._forward([encoded[i] for i in idx])
            for i, v in zip(idx, values, strict=True):
                scores[i] = float(v)
        return scores

    def _calibrate(self, probe: list[list[dict[str, list[int]]]]) -> list[list[float]]:
        """Engine ``auto``: time onnx and torch on the probe batches, keep the faster, close the other, cache
        the choice; returns the chosen engine's scores of the probe batches."""
        assert self._choice_key is not None
        best, seconds, values = calibrate.time_engines({"onnx": self._forward_onnx, "torch": self._forward_torch},
                                                       probe)
        calibrate.remember(self._choice_key, best, seconds)
        log.info("engine 'auto': %s (timed seconds on the same batches: %s)", best, seconds)
        if best == "torch":
            self._session = None
        else:
            self._torch_model = None
        self.engine = best
        self._choice_key = None
        return values

    def _forward(self, batch: list[dict[str, list[int]]]) -> list[float]:
        return self._forward_onnx(batch) if self._session is not None else self._forward_torch(batch)

    def _forward_onnx(self, batch: list[dict[str, list[int]]]) -> list[float]:
        arrays = self.tokenizer.pad(batch, padding=True, return_tensors="np")
        inputs = {n: arrays[n].astype("int64") for n in self._input_names}
        logits = self._session.run(None, inputs)[0]
        return logits_to_scores(logits.tolist(), self.num_labels)

    def _forward_torch(self, batch: list[dict[str, list[int]]]) -> list[float]:
        import torch

        padded = self.tokenizer.pad(batch, padding=True, return_tensors="pt")
        feats = {k: v.to(self.device) for k, v in padded.items()}
        with torch.inference_mode():
            logits = self._torch_model(**feats).logits.float().cpu()
        return logits_to_scores(logits.tolist(), self.num_labels)


@register
class CrossEncoderFamily(Family):
    name = "cross-encoder"
    description = "BERT-like encoder with a one-logit classification head; score = the logit"
    engines = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
    losses = ("bce", "listwise")

    def detect(self, path: str, config: Any = None) -> bool:
        if config is None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path)
        return has_classification_head(config) and not getattr(config, "is_encoder_decoder", False)

    @property
    def scorer(self) -> type[Scorer]:
        return CrossEncoderScorer

    def build(self, base_model: str, examples: list[TrainingExample], *, loss: str, max_length: int) -> Any:
        from inpars.training.cross_encoder import build

        return build(base_model, examples, loss=loss, max_length=max_length)

    def usage(self, where: Path) -> str:
        return (
            "```python\n"
            "from sentence_transformers import CrossEncoder\n"
            f'model = CrossEncoder("{where}")  # predict() applies a sigmoid\n'
            'model.predict([("a query", "a document")])\n'
            "# or: transformers.AutoModelForSequenceClassification + AutoTokenizer (one logit = the score)\n"
            "```\n"
        )
