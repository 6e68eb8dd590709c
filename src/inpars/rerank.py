"""Reranking: score (query, document) pairs with a trained reranker and reorder a first-stage run.

Three kinds of rerankers, all loaded with :func:`load_scorer`:

- ``cross-encoder``: a BERT-like encoder with a one-logit classification head
  (``AutoModelForSequenceClassification``, ``num_labels=1``); the score is the raw logit. A checkpoint
  with a two-class head scores ``logit[1] - logit[0]`` (same order as the softmax probability).
- ``monot5``: a seq2seq model that reads ``Query: {q} Document: {d} Relevant:``; the score is the
  probability of ``true`` in a softmax over the ``true``/``false`` logits at the first decoder step
  (:func:`inpars.training.monot5.monot5_scores`, shared with training).

- ``bi-encoder``: a sentence-transformers embedding model (e.g. the packaged all-MiniLM-L6-v2 as it was
  trained); the score is the cosine of the query and document embeddings. Each distinct text is encoded
  once per scorer, so reranking costs one pass per document, not one per pair.

The type is read from the checkpoint when not given (:func:`detect_model_type`: ``is_encoder_decoder``
-> monot5; a sentence-transformers folder without a classification head -> bi-encoder; else
cross-encoder).

Speed on CPU (cross-encoders): pairs are tokenised once, sorted by token length so that each batch
pads little, scored under ``torch.inference_mode`` and put back in input order; only the *document* is
truncated to ``max_length`` (``truncation="only_second"``). In the torch engines a BERT cross-encoder's
last layer runs at the [CLS] position only (:func:`prune_last_layer`): the classification head reads
nothing else, so the scores are the same (within 1e-6) for 1.09x (fp32) to 1.21x (bf16) the pairs/s.
Engines (pairs/s on 2 idle AMD EPYC cores, the SciFact-trained MiniLM-L6, length 256, batch 32:
``benchmarks/bench_rerank.py``, where ``CrossEncoder.predict`` gives 20.0):

==============  ==============================================================================
``auto``        ``onnx`` for a cross-encoder on the CPU when the ``[onnx]`` extra is installed, else
                ``torch``
``torch``       the transformers model in fp32 (reference scores): 20.3 pairs/s
``onnx``        the same model exported once to ONNX (cached under ``$INPARS_CACHE/onnx``, keyed
                by the checkpoint's files) and run by onnxruntime in fp32: same scores within 1e-4,
                22.1 pairs/s (the full model: the export keeps every position of the last layer)
``torch-bf16``  the transformers model with bfloat16 weights (CPUs with AVX512-BF16/AMX, or a GPU
                with bf16): 42.2 pairs/s, 2.1x ``CrossEncoder.predict`` with the same nDCG@10 on 20
                SciFact test queries (2.4x and -0.0005 on 50); scores move by about 0.01 (max 0.11),
                so close documents can swap (Kendall tau 0.945 against fp32): opt-in, check it with
                ``benchmarks/bench_rerank.py --model``. Refused where bf16 is emulated (slow)
``onnx-int8``   that ONNX graph with dynamically quantised int8 weights (onnxruntime
                ``quantize_dynamic``, per-channel): 47.1 pairs/s, but scores move enough to reorder
                close documents (nDCG@10 -0.019 on the same check): opt-in
==============  ==============================================================================

>>> scorer = load_scorer("minilm-l6", batch_size=16, max_length=128)           # doctest: +SKIP
>>> scorer.score([("what lowers cholesterol", "Statins reduce cholesterol.")])  # doctest: +SKIP
[0.0213]
>>> run = rerank_run("scifact", "bm25.trec", "reranked.trec", model="runs/x/model")  # doctest: +SKIP

Interpolation with the first-stage score (:func:`interpolate`) uses per-query min-max normalised scores,
``alpha * rerank + (1 - alpha) * first_stage``; :func:`tune_alpha` picks ``alpha`` on a train/dev split
and refuses a protected (test) split.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from inpars.datasets import PROTECTED_SPLITS, Dataset, load_dataset, ranked, read_run_dict, write_run
from inpars.errors import ConfigError, InputError, LeakageError, require
from inpars.io import JsonlAppender, hash_obj, read_jsonl, repair_jsonl
from inpars.models import cache_dir, resolve_model

log = logging.getLogger(__name__)

MODEL_TYPES = ("cross-encoder", "monot5", "bi-encoder")
ENGINES = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
ONNX_OPSET = 17
_ONNX_FORMAT = 1  # bump when the export recipe changes, so that cached graphs are rebuilt

Pair = tuple[str, str]
RunDict = dict[str, dict[str, float]]


# ------------------------------------------------------------------------------------------- scorers


def _progress(iterable: Iterable[Any], total: int, show: bool | None, desc: str) -> Iterable[Any]:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


class Scorer(ABC):
    """Scores (query, document text) pairs; a higher score means more relevant.

    Subclasses implement :meth:`_score_sorted`; :meth:`score` checks the input, sorts the pairs by
    length, batches them and restores the input order.
    """

    model_type: str = ""
    engine: str = "torch"

    def __init__(self, model: str, batch_size: int, max_length: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {max_length}")
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length

    def score(self, pairs: Sequence[Pair], *, show_progress: bool | None = False) -> list[float]:
        """Relevance scores of ``(query, document)`` pairs, in input order."""
        pairs = list(pairs)
        for i, p in enumerate(pairs):
            if not (isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str)):
                raise InputError(f"pair {i} is not a (query, document) tuple of two strings: {p!r:.80}")
        if not pairs:
            return []
        return self._score(pairs, show_progress)

    @abstractmethod
    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]: ...

    def describe(self) -> dict[str, Any]:
        """What produced the scores (for manifests and logs)."""
        return {
            "model": self.model,
            "model_type": self.model_type,
            "engine": self.engine,
            "max_length": self.max_length,
        }

    def __repr__(self) -> str:
        d = self.describe()
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in d.items())})"


class CrossEncoderScorer(Scorer):
    """A cross-encoder run by torch (``engine="torch"``, ``"torch-bf16"``) or onnxruntime (``"onnx"``,
    ``"onnx-int8"``)."""

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
        super().__init__(model, batch_size, max_length)
        import torch
        from transformers import AutoConfig, AutoTokenizer

        if engine not in ENGINES:
            raise ConfigError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
        if threads is not None:
            torch.set_num_threads(threads)
        self.threads = threads
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.model_max_length and self.tokenizer.model_max_length < max_length:
            log.warning("max_length %d exceeds the tokenizer's %d", max_length, self.tokenizer.model_max_length)
        config = AutoConfig.from_pretrained(model)
        self.num_labels = _head_labels(config)
        self._torch_model: Any = None
        self._session: Any = None
        self.device = device or (
            "cuda" if torch.cuda.is_available() and engine in ("torch", "torch-bf16", "auto") else "cpu"
        )
        if engine == "auto":
            engine = "onnx" if self.device == "cpu" else "torch"
            if engine == "onnx":
                try:
                    self._open_onnx(model, threads, quantize=False)
                except (ImportError, RuntimeError) as exc:  # no onnx extra, or a model that does not export
                    log.warning("engine 'auto': ONNX unavailable for %s (%s); using torch", model, exc)
                    engine = "torch"
        elif engine.startswith("onnx"):
            if self.device != "cpu":
                raise ConfigError(f"engine '{engine}' runs on the CPU only; use engine 'torch' on {self.device}")
            self._open_onnx(model, threads, quantize=engine == "onnx-int8")
        self.first_token_last_layer = False
        if engine in ("torch", "torch-bf16"):
            self._torch_model = _load_sequence_classifier(model, self.num_labels).to(self.device).eval()
            if first_token_last_layer:
                self.first_token_last_layer = prune_last_layer(self._torch_model)
        if engine == "torch-bf16":
            if not bf16_supported(self.device):
                raise ConfigError(
                    f"engine 'torch-bf16': this {self.device} has no native bfloat16 support "
                    "(it would be emulated, slower than fp32); use engine 'onnx' or 'torch'"
                )
            self._torch_model.to(torch.bfloat16)
        self.engine = engine

    def _open_onnx(self, model: str, threads: int | None, quantize: bool) -> None:
        path = onnx_model_path(model, self.num_labels, quantize=quantize)
        self._session = _ort_session(path, threads)
        self._input_names = [i.name for i in self._session.get_inputs()]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(), "threads": self.threads, "device": self.device,
            "first_token_last_layer": self.first_token_last_layer,
        }

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
        for start in _progress(starts, len(starts), show_progress, "rerank"):
            idx = order[start : start + self.batch_size]
            batch = [encoded[i] for i in idx]
            values = self._forward(batch)
            for i, v in zip(idx, values, strict=True):
                scores[i] = float(v)
        return scores

    def _forward(self, batch: list[dict[str, list[int]]]) -> list[float]:
        if self._session is not None:
            arrays = self.tokenizer.pad(batch, padding=True, return_tensors="np")
            inputs = {n: arrays[n].astype("int64") for n in self._input_names}
            logits = self._session.run(None, inputs)[0]
            return _logits_to_scores(logits.tolist(), self.num_labels)
        import torch

        padded = self.tokenizer.pad(batch, padding=True, return_tensors="pt")
        feats = {k: v.to(self.device) for k, v in padded.items()}
        with torch.inference_mode():
            logits = self._torch_model(**feats).logits.float().cpu()
        return _logits_to_scores(logits.tolist(), self.num_labels)


class _TorchScorer(Scorer):
    """Set-up shared by the scorers that run in torch only (monot5, bi-encoder): engine check, threads,
    device (CUDA when available)."""

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        max_length: int = 256,
        engine: str = "torch",
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(model, batch_size, max_length)
        import torch

        if engine not in ("torch", "auto"):
            raise ConfigError(
                f"engine '{engine}' supports cross-encoders only; use engine 'torch' for {self.model_type}"
            )
        if threads is not None:
            torch.set_num_threads(threads)
        self.threads = threads
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads": self.threads, "device": self.device}


class MonoT5Scorer(_TorchScorer):
    """A monoT5-style seq2seq reranker (torch); the score is P(``true``) (see module docstring)."""

    model_type = "monot5"

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        from inpars.training.monot5 import load_monot5, monot5_token_ids

        self._model, self.tokenizer = load_monot5(model, device=self.device)
        monot5_token_ids(self.tokenizer)  # fail now, not at the first batch, if 'true'/'false' are not tokens

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        from inpars.training.monot5 import monot5_scores

        # monot5_scores sorts by length itself; chunk only to show progress on long inputs.
        chunk = self.batch_size * 16
        out: list[float] = []
        starts = range(0, len(pairs), chunk)
        for s in _progress(starts, len(starts), show_progress, "rerank"):
            out.extend(
                monot5_scores(self._model, self.tokenizer, pairs[s : s + chunk], self.batch_size, self.max_length)
            )
        return out


class BiEncoderScorer(_TorchScorer):
    """A sentence-transformers bi-encoder; the score is the cosine of the two embeddings.

    Embeddings are kept per text for the scorer's lifetime, so documents shared by several queries (or by
    the test and tuning splits) are encoded once.

    >>> scorer = load_scorer("minilm-l6", "bi-encoder", max_length=128)                # doctest: +SKIP
    >>> scorer.score([("what lowers cholesterol", "Statins reduce LDL cholesterol.")])  # doctest: +SKIP
    [0.61]
    """

    model_type = "bi-encoder"

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(model, device=self.device)
        self._model.max_seq_length = self.max_length
        self._cache: dict[str, Any] = {}
        self.encoded = 0  # texts encoded so far (the cache's misses)

    def _embed(self, texts: list[str], show_progress: bool | None) -> None:
        todo = sorted({t for t in texts if t not in self._cache}, key=lambda t: (-len(t), t))
        if not todo:
            return
        shown = bool(show_progress) if show_progress is not None else None
        vectors = self._model.encode(
            todo, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=shown,
        )
        self._cache.update(zip(todo, vectors, strict=True))
        self.encoded += len(todo)

    def _score(self, pairs: list[Pair], show_progress: bool | None) -> list[float]:
        self._embed([q for q, _ in pairs] + [d for _, d in pairs], show_progress)
        return [float(self._cache[q] @ self._cache[d]) for q, d in pairs]


def has_classification_head(config: Any) -> bool:
    """Whether a checkpoint's config names a sequence-classification architecture (a cross-encoder head)."""
    archs = getattr(config, "architectures", None) or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


def _head_labels(config: Any) -> int:
    """Labels of an existing classification head, or 1 for a bare encoder (a new one-logit head)."""
    if has_classification_head(config):
        n = int(getattr(config, "num_labels", 1))
        if n not in (1, 2):
            raise ConfigError(f"a cross-encoder needs a 1- or 2-label head; this checkpoint has {n} labels")
        return n
    return 1


def _load_sequence_classifier(model: str, num_labels: int, **kwargs: Any) -> Any:
    """The classifier; a head missing from the checkpoint is initialised from a fixed seed, so that every
    engine (and every load) of a bare encoder scores alike."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_pretrained(model, num_labels=num_labels, **kwargs)


def _first_token_layer(layer: Any) -> Any:
    """A stand-in for the last layer of a BERT encoder that computes its output at the first ([CLS])
    position only, which is all that the pooler and the classification head read. Keys and values still
    come from every position, so it is the same function; the query projection, attention output and
    feed-forward block run on one position instead of all of them."""
    import torch

    class FirstTokenLayer(torch.nn.Module):
        def __init__(self, layer: Any) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            layer, sa = self.layer, self.layer.attention.self
            b = hidden_states.shape[0]
            first = hidden_states[:, :1]

            def heads(x: Any) -> Any:
                return x.view(b, x.shape[1], sa.num_attention_heads, sa.attention_head_size).transpose(1, 2)

            mask = attention_mask
            if mask is not None and mask.dim() == 4:  # (batch, 1, query, key): keep the first query row
                mask = mask[:, :, :1, :]
            context = torch.nn.functional.scaled_dot_product_attention(
                heads(sa.query(first)), heads(sa.key(hidden_states)), heads(sa.value(hidden_states)),
                attn_mask=mask, scale=sa.scaling,
            )
            attended = layer.attention.output(context.transpose(1, 2).reshape(b, 1, -1), first)
            return layer.output(layer.intermediate(attended), attended)

    return FirstTokenLayer(layer)


def prune_last_layer(model: Any) -> bool:
    """Make a BERT cross-encoder's last layer compute the [CLS] position only (:func:`_first_token_layer`):
    the same scores (within float rounding: 4e-7 in fp32 on MiniLM-L6) for about 1.17x the pairs/s on
    CPU. Applied to ``BertForSequenceClassification`` in eval mode without decoder or cross-attention
    options; any other model is left alone. Returns whether it was applied."""
    config = model.config
    if (
        type(model).__name__ != "BertForSequenceClassification"
        or model.training
        or config.is_decoder
        or getattr(config, "add_cross_attention", False)
        or getattr(config, "chunk_size_feed_forward", 0)
        or config._attn_implementation not in ("sdpa", "eager")
    ):
        return False
    layers = model.bert.encoder.layer
    if not hasattr(layers[-1], "attention"):  # already replaced, or an unknown layout
        return False
    layers[-1] = _first_token_layer(layers[-1])
    return True


def _logits_to_scores(logits: list[list[float]], num_labels: int) -> list[float]:
    if num_labels == 1:
        return [row[0] for row in logits]
    return [row[1] - row[0] for row in logits]


def detect_model_type(model: str) -> str:
    """``monot5`` for an encoder-decoder checkpoint; ``bi-encoder`` for a sentence-transformers folder
    (``modules.json``) without a classification head, such as the packaged all-MiniLM-L6-v2 or a
    bi-encoder trained by :func:`inpars.training.train_reranker` (read as a cross-encoder, it would score
    with a randomly initialised head); else ``cross-encoder``."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    if getattr(config, "is_encoder_decoder", False):
        return "monot5"
    if not has_classification_head(config) and (Path(model) / "modules.json").is_file():
        return "bi-encoder"
    return "cross-encoder"


def bf16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 natively (CUDA with bf16, or a CPU with AVX512-BF16 or AMX that
    oneDNN uses)."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_scorer(
    model: str,
    model_type: str | None = None,
    *,
    batch_size: int = 32,
    max_length: int = 256,
    engine: str = "torch",
    threads: int | None = None,
    device: str | None = None,
) -> Scorer:
    """Load a reranker for :meth:`Scorer.score`.

    ``model``: a packaged name (``minilm-l6``), a local folder or a hub id (see
    :func:`inpars.models.resolve_model`). ``model_type``: ``cross-encoder``, ``monot5`` or ``bi-encoder``;
    read from the checkpoint when None (:func:`detect_model_type`). ``engine``: ``torch``, ``torch-bf16``, ``onnx`` or ``onnx-int8``
    (cross-encoders; see the module docstring for their speed and accuracy), or
    ``auto``: ``onnx`` for a cross-encoder on the CPU when onnxruntime and onnx are installed (same scores
    as torch within 1e-4, faster), else ``torch``. ``scorer.engine`` tells which one runs.
    ``threads``: CPU threads (``torch.set_num_threads``; onnxruntime's intra-op threads).

    >>> load_scorer("minilm-l6", engine="tensorflow")     # doctest: +SKIP
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: unknown engine 'tensorflow'; choose from auto, torch, torch-bf16, onnx, onnx-int8
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}")
    path = resolve_model(model)
    if model_type is None:
        model_type = detect_model_type(path)
    kwargs: dict[str, Any] = dict(
        batch_size=batch_size, max_length=max_length, engine=engine, threads=threads, device=device
    )
    if model_type == "cross-encoder":
        return CrossEncoderScorer(path, **kwargs)
    if model_type == "monot5":
        return MonoT5Scorer(path, **kwargs)
    if model_type == "bi-encoder":
        return BiEncoderScorer(path, **kwargs)
    raise ConfigError(f"unknown model_type '{model_type}'; choose from {', '.join(MODEL_TYPES)}")


# ---------------------------------------------------------------------------------------------- ONNX


def model_fingerprint(model: str) -> str:
    """A cheap identity of a checkpoint: its files' names, sizes and modification times (or its id)."""
    p = Path(model)
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.is_file())
        return hash_obj([[str(q.relative_to(p)), q.stat().st_size, q.stat().st_mtime_ns] for q in files])
    return hash_obj(model)


def onnx_model_path(model: str, num_labels: int = 1, *, quantize: bool = False) -> Path:
    """The cached ONNX export of a cross-encoder (int8-quantised with ``quantize``), built when missing.

    Cached under ``$INPARS_CACHE/onnx/<key>/`` where the key hashes the checkpoint's fingerprint, the head
    size, the opset and the torch/onnxruntime versions.
    """
    import torch

    ort = require("onnxruntime", "onnx", "engine 'onnx'")
    key = hash_obj(
        {
            "model": model_fingerprint(model),
            "labels": num_labels,
            "opset": ONNX_OPSET,
            "format": _ONNX_FORMAT,
            "torch": torch.__version__,
            "ort": ort.__version__,
        }
    )[:20]
    folder = cache_dir() / "onnx" / key
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        log.info("exporting %s to ONNX (%s)", model, fp32)
        _export_onnx(model, num_labels, fp32)
    if not quantize:
        return fp32
    int8 = folder / "model.int8.onnx"
    if not int8.is_file():
        log.info("quantising %s to int8 (%s)", fp32, int8)
        _quantize_onnx(fp32, int8)
    return int8


def _export_onnx(model: str, num_labels: int, target: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    require("onnx", "onnx", "exporting to ONNX")
    tok = AutoTokenizer.from_pretrained(model)
    # Eager attention exports to plain ops that onnxruntime fuses; sdpa's masking is traced less cleanly.
    net = _load_sequence_classifier(model, num_labels, attn_implementation="eager").eval()
    # Two pairs of different lengths, so that the padding/mask path is traced, not a mask-free shortcut.
    sample = tok(
        ["a short query", "a somewhat longer query about something"],
        ["a document", "another document that is a good deal longer than the first one is"],
        padding=True,
        return_tensors="pt",
    )
    # Graph inputs follow the order of forward()'s parameters; name them in that order.
    params = list(inspect.signature(net.forward).parameters)
    names = sorted((n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample), key=params.index)

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export.", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (),
                tmp,
                kwargs={n: sample[n] for n in names},
                input_names=names,
                output_names=["logits"],
                dynamic_axes={**{n: {0: "batch", 1: "length"} for n in names}, "logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
            expected = net(**{n: sample[n] for n in names}).logits.numpy()
        got = _ort_session(Path(tmp), 1).run(None, {n: sample[n].numpy() for n in names})[0]
        diff = float(abs(got - expected).max())
        if diff > 1e-3:
            raise RuntimeError(f"the ONNX export of {model} disagrees with torch (max abs diff {diff:.2e})")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _quantize_onnx(source: Path, target: Path) -> None:
    require("onnx", "onnx", "int8 quantisation")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(prefix=".quant.", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        hint = _DropMessage("pre-processing before quantization")  # onnxruntime's hint on the root logger
        logging.getLogger().addFilter(hint)
        try:
            quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger().removeFilter(hint)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _ort_session(path: Path, threads: int | None) -> Any:
    ort = require("onnxruntime", "onnx", "engine 'onnx'")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or 0
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------------------------- runs


def top_depth(run: RunDict, depth: int) -> RunDict:
    """Each query's first ``depth`` documents in trec_eval order (score desc, doc id desc)."""
    return {qid: dict(ranked(docs)[:depth]) for qid, docs in run.items()}


def _as_run(run: str | Path | RunDict) -> RunDict:
    return read_run_dict(run) if isinstance(run, (str, Path)) else run


def rerank_run(
    dataset: str | Path | Dataset,
    run: str | Path | RunDict,
    out: str | Path | None = None,
    *,
    model: str | None = None,
    model_type: str | None = None,
    depth: int = 100,
    batch_size: int = 32,
    max_length: int = 256,
    engine: str = "torch",
    split: str = "test",
    threads: int | None = None,
    device: str | None = None,
    scorer: Scorer | None = None,
    resume: bool = True,
    show_progress: bool | None = None,
    tag: str = "inpars-rerank",
) -> RunDict:
    """Rerank the top ``depth`` documents of each query of a first-stage run; returns the new run.

    Query texts come from ``dataset.queries(split)`` (never from relevance judgements); documents are
    ``title + " " + text``. With ``out``, writes the run in TREC format and keeps per-query scores in
    ``<out>.scores.jsonl`` as they are computed, so that a killed rerank resumes where it stopped (the
    cache is discarded when the model, engine, max_length or split differ). A run query that has no text
    in ``split`` is skipped with a warning; a document missing from the corpus is an error.

    ``scorer`` reuses a loaded :class:`Scorer` (then ``model`` and the engine options are ignored).
    """
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}")
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    run_path = str(run) if isinstance(run, (str, Path)) else "<run>"
    first = top_depth(_as_run(run), depth)
    if not first:
        raise InputError("the first-stage run is empty", path=run_path)
    queries = ds.queries(split)
    missing = [q for q in first if q not in queries]
    if missing:
        log.warning(
            "%d of %d run queries have no text in split '%s'; skipped (e.g. %s)",
            len(missing), len(first), split, ", ".join(missing[:5]),
        )
    qids = [q for q in first if q in queries]
    if not qids:
        raise InputError(f"no query of the run is in split '{split}' of {ds.name}", path=run_path)
    docs = ds.docs()
    for q in qids:
        for d in first[q]:
            if d not in docs:
                raise InputError(f"document '{d}' (query '{q}') is not in the corpus of {ds.name}", path=run_path)

    if scorer is None:
        if model is None:
            raise ConfigError("rerank_run needs a model (or a loaded scorer)")
        scorer = load_scorer(
            model, model_type, batch_size=batch_size, max_length=max_length, engine=engine,
            threads=threads, device=device,
        )
    described = scorer.describe()  # threads, device and batch size do not change scores: not in the key
    meta = {k: described.get(k) for k in ("model_type", "engine", "max_length")}
    meta.update(model=model_fingerprint(str(described["model"])), split=split, dataset=ds.name)
    cache_path = Path(f"{out}.scores.jsonl") if out is not None else None
    done = _load_cache(cache_path, meta, first) if (cache_path and resume) else {}
    todo = [q for q in qids if q not in done]
    if done:
        log.info("resuming: %d of %d queries already scored in %s", len(qids) - len(todo), len(qids), cache_path)

    appender = JsonlAppender(cache_path) if cache_path is not None else None
    try:
        if appender is not None and not done:
            appender.write({"meta": meta})
        # A chunk of queries per scorer call: length sorting pays off across queries; the cache is
        # written after each chunk.
        per_call = max(1, 2048 // depth)
        chunks = range(0, len(todo), per_call)
        for c in _progress(chunks, len(chunks), show_progress, f"rerank {len(todo)} queries"):
            chunk = todo[c : c + per_call]
            pairs, owners = [], []
            for q in chunk:
                for d in first[q]:
                    pairs.append((queries[q], docs[d].full_text))
                    owners.append((q, d))
            values = scorer.score(pairs)
            fresh: dict[str, dict[str, float]] = {q: {} for q in chunk}
            for (q, d), v in zip(owners, values, strict=True):
                fresh[q][d] = v
            for q in chunk:
                done[q] = fresh[q]
                if appender is not None:
                    appender.write({"qid": q, "scores": fresh[q]})
    finally:
        if appender is not None:
            appender.close()

    result = {q: done[q] for q in qids}
    if out is not None:
        write_run(out, result, tag=tag)
        log.info("reranked %d queries x top %d -> %s", len(result), depth, out)
    return result


def _load_cache(path: Path, meta: dict[str, Any], first: RunDict) -> dict[str, dict[str, float]]:
    """Scores of a previous, interrupted rerank with the same settings (empty if none or different)."""
    if not path.is_file():
        return {}
    repair_jsonl(path)
    done: dict[str, dict[str, float]] = {}
    try:
        records = list(read_jsonl(path, skip_truncated_tail=True))
    except InputError as exc:
        log.warning("ignoring an unreadable score cache (%s)", exc)
        path.unlink()
        return {}
    if not records or records[0][1].get("meta") != meta:
        log.info("score cache %s was made with other settings; starting over", path)
        path.unlink()
        return {}
    for _, rec in records[1:]:
        q, scores = rec.get("qid"), rec.get("scores")
        # Reuse a query only if its document set is the one asked for now.
        if isinstance(q, str) and isinstance(scores, dict) and q in first and set(scores) == set(first[q]):
            done[q] = {d: float(s) for d, s in scores.items()}
    return done


# ------------------------------------------------------------------------------------- interpolation


def _minmax(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {d: (s - lo) / span if span > 0 else 0.0 for d, s in scores.items()}


def interpolate(first_stage: RunDict, reranked: RunDict, alpha: float) -> RunDict:
    """``alpha * rerank + (1 - alpha) * first_stage`` on per-query min-max normalised scores.

    Covers the documents of ``reranked``; a document the first stage did not score gets the lowest
    first-stage value (0). ``alpha=1`` keeps the reranker's order, ``alpha=0`` the first stage's.

    >>> first = {"q": {"a": 10.0, "b": 5.0, "c": 0.0}}
    >>> rr = {"q": {"a": 0.0, "b": 1.0, "c": 2.0}}
    >>> interpolate(first, rr, 0.5)
    {'q': {'a': 0.5, 'b': 0.5, 'c': 0.5}}
    >>> interpolate(first, rr, 0.25)["q"]["a"]
    0.75
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    out: RunDict = {}
    n_missing = 0
    for qid, rr in reranked.items():
        fs_raw = first_stage.get(qid, {})
        fs = _minmax({d: fs_raw[d] for d in rr if d in fs_raw})
        n_missing += sum(1 for d in rr if d not in fs)
        rn = _minmax(rr)
        out[qid] = {d: alpha * rn[d] + (1.0 - alpha) * fs.get(d, 0.0) for d in rr}
    if n_missing:
        log.warning("%d reranked documents have no first-stage score; counted as the lowest", n_missing)
    return out


def tune_alpha(
    dataset: str | Path | Dataset,
    split: str,
    first_stage: str | Path | RunDict,
    reranked: str | Path | RunDict,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    measure: str = "nDCG@10",
) -> tuple[float, dict[str, float]]:
    """Choose the interpolation weight on a train/dev ``split``; returns ``(best_alpha, {alpha: value})``.

    Evaluated on the queries of ``reranked`` only, with ``split``'s relevance judgements. A protected
    split (``test``) is refused: tuning on it would leak the evaluation labels into the system. Ties go to
    the larger alpha (more weight on the reranker).
    """
    if split in PROTECTED_SPLITS:
        raise LeakageError(
            f"tune_alpha refuses split '{split}': it is reserved for evaluation, and a weight tuned on its "
            "judgements would leak them into the result; tune on a train/dev split (e.g. 'train')"
        )
    if not alphas:
        raise ConfigError("alphas is empty")
    from inpars.evaluation import evaluate_runs, parse_measures

    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    qrels = ds.qrels_dict(split)
    rr, fs = _as_run(reranked), _as_run(first_stage)
    qids = [q for q in rr if q in qrels]
    if not qids:
        raise InputError(f"no reranked query has relevance judgements in split '{split}'")
    name = str(parse_measures([measure])[0])
    runs = {f"{a:g}": interpolate(fs, rr, a) for a in alphas}
    res = evaluate_runs(qrels, runs, measures=[measure], tests=[], query_ids=qids)
    table = {k: float(res.aggregate[k][name]) for k in runs}
    best = max(alphas, key=lambda a: (table[f"{a:g}"], a))
    log.info(
        "interpolation weight on %s (%d queries, %s): alpha=%g (%.4f); alpha=1: %s",
        split, len(qids), name, best, table[f"{best:g}"], table.get("1"),
    )
    return float(best), table


def append_tail(reranked: RunDict, first_stage: RunDict, depth: int) -> RunDict:
    """Put the first-stage documents below ``depth`` back under the reranked ones, in first-stage order.

    Reranking only the top ``depth`` must not cut recall at deeper cut-offs (R@100 after reranking the
    top 30): the tail keeps its first-stage order, with scores strictly below every reranked score.

    >>> append_tail({"q": {"b": 0.9, "a": 0.1}}, {"q": {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}}, 2)
    {'q': {'b': 0.9, 'a': 0.1, 'c': -0.9, 'd': -1.9}}
    """
    out: RunDict = {}
    for qid, scores in reranked.items():
        merged = dict(scores)
        floor = min(scores.values()) if scores else 0.0
        tail = [d for d, _ in ranked(first_stage.get(qid, {}))[depth:] if d not in merged]
        for i, d in enumerate(tail, start=1):
            merged[d] = floor - float(i)
        out[qid] = merged
    return out
