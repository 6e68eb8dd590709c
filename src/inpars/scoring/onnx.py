"""ONNX export and cache of cross-encoders, int8 quantisation, onnxruntime sessions.

A graph is exported once per checkpoint and kept under ``$INPARS_CACHE/onnx/<key>/``; the key is
``versioned("onnx-export", ...)`` of the checkpoint's content (:func:`inpars.fingerprint.model_fingerprint`),
the head size, the opset and the torch/onnxruntime versions, so a changed checkpoint or a new export
recipe (bump ``VERSIONS["onnx-export"]``) builds a new graph.
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from inpars.errors import require
from inpars.fingerprint import model_fingerprint, versioned
from inpars.io import make_temp
from inpars.models import cache_dir
from inpars.scoring.classifier import load_sequence_classifier

log = logging.getLogger(__name__)

ONNX_OPSET = 17


def onnx_model_path(model: str, num_labels: int = 1, *, quantize: bool = False) -> Path:
    """The cached ONNX export of a cross-encoder (int8-quantised with ``quantize``), built when missing."""
    import torch

    ort = require("onnxruntime", "onnx", "engine 'onnx'")
    key = versioned(
        "onnx-export",
        {
            "model": model_fingerprint(model),
            "labels": num_labels,
            "opset": ONNX_OPSET,
            "torch": torch.__version__,
            "ort": ort.__version__,
        },
    )[:20]
    folder = cache_dir() / "onnx" / key
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        log.info("exporting %s to ONNX (%s)", model, fp32)
        _export_onnx(model, num_labels, fp32)
    if not quantize:
        return fp32
    int8 = folder / "model.int8-7bit.onnx"
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
    net = load_sequence_classifier(model, num_labels, attn_implementation="eager").eval()
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
    tmp = str(make_temp(target))
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
        got = ort_session(Path(tmp), 1).run(None, {n: sample[n].numpy() for n in names})[0]
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

    tmp = str(make_temp(target))
    try:
        hint = _DropMessage("pre-processing before quantization")  # onnxruntime's hint on the root logger
        logging.getLogger().addFilter(hint)
        try:
            # 7-bit weights (reduce_range): on x86 CPUs without VNNI, onnxruntime's u8s8 kernels saturate with
            # full-range int8 weights and every score moves (onnxruntime's quantization docs)
            quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
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


def ort_session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session with full graph optimisation and ``threads`` intra-op threads."""
    ort = require("onnxruntime", "onnx", "engine 'onnx'")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or 0
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
