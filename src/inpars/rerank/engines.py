"""Scoring engines: how a reranker's forward pass runs (torch fp32/bf16, onnxruntime fp32/int8).

The registry :data:`ENGINES` is the one list of engines: ``load_scorer`` validates against it, the CLI
takes its ``--engine`` choices and help from it, and the config validates ``rerank.engine`` with it.
Which engines a family accepts is declared by the family (:attr:`inpars.families.Family.engines`).

>>> ENGINES.names()
['auto', 'onnx', 'onnx-int8', 'torch', 'torch-bf16']
>>> ENGINES.get("onnx-int8").runtime
'onnx'
"""

from __future__ import annotations

from dataclasses import dataclass

from inpars.errors import ConfigError
from inpars.registry import Registry


@dataclass(frozen=True)
class Engine:
    """One way to run a scorer.

    ``runtime``: ``torch`` or ``onnx`` (None for ``auto``, which picks one when the scorer loads);
    ``bf16``: bfloat16 weights; ``int8``: dynamically quantised int8 weights; ``cpu_only``: refused on a GPU.
    """

    name: str
    description: str
    runtime: str | None
    bf16: bool = False
    int8: bool = False
    cpu_only: bool = False


ENGINES: Registry[Engine] = Registry("engine")
DEFAULT_ENGINE = "torch"

for _engine in (
    Engine("auto", "onnx for a cross-encoder on the CPU when the [onnx] extra is installed, else torch", None),
    Engine("torch", "the transformers model in fp32 (the reference scores)", "torch"),
    Engine(
        "torch-bf16",
        "the transformers model with bfloat16 weights, on CPUs with AVX512-BF16/AMX or a GPU with bf16; "
        "scores move slightly, so close documents can swap (opt-in); refused where bf16 would be emulated",
        "torch", bf16=True,
    ),
    Engine(
        "onnx",
        "the model exported once to ONNX (cached under $INPARS_CACHE/onnx) and run by onnxruntime in fp32: "
        "the same scores as torch within 1e-4",
        "onnx", cpu_only=True,
    ),
    Engine(
        "onnx-int8",
        "that ONNX graph with dynamically quantised int8 weights: scores move enough to reorder close "
        "documents (opt-in)",
        "onnx", int8=True, cpu_only=True,
    ),
):
    ENGINES.register(_engine.name)(_engine)


def engine_help() -> str:
    """One line per engine, for help texts."""
    return "; ".join(f"{name}: {ENGINES.get(name).description}" for name in ENGINES.names())


def get_engine(name: str) -> Engine:
    """The engine called ``name``; :class:`~inpars.errors.ConfigError` naming the valid ones otherwise."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine '{name}'; choose from {', '.join(ENGINES.names())}")
    return ENGINES.get(name)


def check_engine(name: str, model_type: str) -> Engine:
    """The engine, after checking that family ``model_type`` can run on it."""
    from inpars.families import FAMILIES

    engine = get_engine(name)
    if name not in FAMILIES.get(model_type).engines:
        able = [f"{f}s" for f in FAMILIES.names() if name in FAMILIES.get(f).engines]
        raise ConfigError(
            f"engine '{name}' supports {', '.join(able) or 'no model type'} only; use engine 'torch' for {model_type}"
        )
    return engine


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
