"""Scoring engines: how a reranker's forward pass runs (torch fp32/bf16, onnxruntime fp32/int8).

The registry :data:`ENGINES` is the one list of engines (plain data of the bottom layer,
:mod:`inpars.catalog`): ``load_scorer`` validates against it, the CLI takes its ``--engine`` choices and
help from it, and the config validates ``rerank.engine`` with it. Which engines a family accepts is declared
by the family (:attr:`inpars.scoring.family.Family.engines`, checked by :func:`check_engine`). Here too:
whether a device runs bfloat16 natively (:func:`bf16_supported`).

>>> ENGINES.names()
['auto', 'onnx', 'onnx-int8', 'torch', 'torch-bf16']
>>> ENGINES.get("onnx-int8").runtime
'onnx'
"""

from __future__ import annotations

from inpars.catalog import DEFAULT_ENGINE, ENGINES, Engine, check_engine, engine_help, get_engine

__all__ = ["DEFAULT_ENGINE", "ENGINES", "Engine", "bf16_supported", "check_engine", "engine_help", "get_engine"]


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
