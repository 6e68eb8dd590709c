"""The names a configuration may give, and where each is implemented: the registries of the bottom layer.

Four registries (:class:`~inpars.registry.Registry`) whose names are known without importing what
implements them:

- :data:`FAMILIES`: model families (``train.model_type``, ``rerank.model_type``), implemented in
  :mod:`inpars.families`;
- :data:`ENGINES`: scoring engines (``rerank.engine``), plain data (:class:`Engine`), all here;
- :data:`FILTERS`: filter steps (``filter.steps[].name``), implemented in :mod:`inpars.filter`;
- :data:`SELECTIONS`: document selection methods (``generate.doc_selection``), implemented in
  :mod:`inpars.generation.selection`, with their options (:data:`SELECTION_OPTIONS`,
  :func:`check_selection`).

A family, filter or selection method registers itself here from its own module; each registry names those
modules (``modules``), which are imported on the first lookup (``get``) of one of their names. So
:mod:`inpars.config` checks a name against these registries without importing any implementation, and this
module imports nothing above :mod:`inpars.registry` and :mod:`inpars.errors` (the layers are declared in
``pyproject.toml``, ``[tool.importlinter]``).

>>> FAMILIES.names()
['bi-encoder', 'cross-encoder', 'monot5', 'query-likelihood']
>>> ENGINES.get("onnx-int8").runtime
'onnx'
>>> sorted(FILTERS.names())
['consistency', 'logprob', 'per_doc', 'random', 'reranker']
>>> check_selection("ids", {"doc_ids": [3, "d7"]})
{'doc_ids': ['3', 'd7']}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from inpars.errors import ConfigError
from inpars.registry import Registry

# --------------------------------------------------------------------------------------------- families

#: model families by ``model_type`` (:class:`inpars.scoring.family.Family` instances, each registered by
#: its module of :mod:`inpars.families`)
FAMILIES: Registry[Any] = Registry(
    "model type",
    modules={
        "bi-encoder": "inpars.families.bi_encoder",
        "cross-encoder": "inpars.families.cross_encoder",
        "monot5": "inpars.families.monot5",
        "query-likelihood": "inpars.families.query_likelihood",
    },
)
DEFAULT_FAMILY = "cross-encoder"

# ---------------------------------------------------------------------------------------------- engines


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


#: how a reranker's forward pass runs; which engines a family accepts is declared by the family
#: (:attr:`inpars.scoring.family.Family.engines`)
ENGINES: Registry[Engine] = Registry("engine")
DEFAULT_ENGINE = "torch"

for _engine in (
    Engine("auto", "a cross-encoder on the CPU: the faster of onnx and torch fp32 (same scores), measured on the "
           "first batches and cached per machine and model; else torch", None),
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
    return ENGINES.get(name)


def check_engine(name: str, model_type: str) -> Engine:
    """The engine, after checking that family ``model_type`` can run on it."""
    engine = get_engine(name)
    if name not in FAMILIES.get(model_type).engines:
        able = [f"{f}s" for f in FAMILIES.names() if name in FAMILIES.get(f).engines]
        raise ConfigError(
            f"engine '{name}' supports {', '.join(able) or 'no model type'} only; use engine 'torch' for {model_type}"
        )
    return engine


# ---------------------------------------------------------------------------------------------- filters

#: filter steps by name (:class:`inpars.filter.base.Filter` subclasses, each registered by its module)
FILTERS: Registry[Any] = Registry(
    "filter",
    modules={
        "consistency": "inpars.filter.consistency",
        "logprob": "inpars.filter.logprob",
        "per_doc": "inpars.filter.per_doc",
        "random": "inpars.filter.random_subset",
        "reranker": "inpars.filter.reranker",
    },
)


def build_filters(steps: Iterable[Any]) -> list[Any]:
    """The filters of a sequence of :class:`~inpars.config.FilterStep`: each the class registered under its
    name instantiated with it (which checks its fields and options), then checked against the score names
    the steps before it write (:meth:`inpars.filter.base.Filter.check_after`). ``steps`` is read one step at
    a time, so an error names the first bad step."""
    filters: list[Any] = []
    scores: list[str] = []
    for step in steps:
        flt = FILTERS.get(step.name)(step)
        flt.check_after(tuple(scores))
        scores.extend(flt.score_names())
        filters.append(flt)
    return filters


# ------------------------------------------------------------------------------------ document selection

#: name -> function(dataset, eligible sorted ids, n_docs, seed, options) -> chosen ids
#: (:mod:`inpars.generation.selection`)
SELECTIONS: Registry[Any] = Registry(
    "document selection",
    modules={name: "inpars.generation.selection" for name in ("clusters", "ids", "random")},
)
#: name -> the options it accepts, with their defaults
SELECTION_OPTIONS: dict[str, dict[str, Any]] = {
    "random": {},
    "clusters": {"model": "minilm-l6", "clusters": None, "temperature": 0.1, "max_length": 256,
                 "fit_sample": 50_000},
    "ids": {"doc_ids": None},
}


def check_selection(method: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` with the method's defaults filled in; a :class:`ConfigError` names an unknown method,
    an unknown option or a bad value."""
    if method not in SELECTIONS:
        SELECTIONS.get(method)  # raises UnknownNameError listing the methods
    known = SELECTION_OPTIONS[method]
    given = dict(options or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"generate.selection_options: unknown option(s) {', '.join(unknown)} for "
                          f"doc_selection '{method}' (accepted: {accepted})")
    merged = {**known, **given}
    if method == "clusters":
        for key in ("clusters", "max_length", "fit_sample"):
            value = merged[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"generate.selection_options.{key}: expected a positive integer, got {value!r}")
        temp = merged["temperature"]
        if isinstance(temp, bool) or not isinstance(temp, (int, float)) or temp <= 0:
            raise ConfigError(f"generate.selection_options.temperature: expected a number > 0, got {temp!r}")
        if not isinstance(merged["model"], str) or not merged["model"]:
            raise ConfigError("generate.selection_options.model: expected a model name or path")
    if method == "ids":
        ids = merged["doc_ids"]
        if not isinstance(ids, list) or not ids or not all(isinstance(d, (str, int)) for d in ids):
            raise ConfigError("generate.selection_options.doc_ids: expected a non-empty list of document ids, "
                              f"got {ids!r}")
        merged["doc_ids"] = [str(d) for d in ids]
    return merged
