"""The distributions install clean: ``python -m build`` makes an sdist and, from it, a wheel without a
warning; the wheel, installed (not editable) into a fresh virtual environment, answers ``inpars --version``
with the single-sourced version and runs a tiny retrieve + evaluate pipeline through its console script.

Offline and quick: the sources are copied to a temporary folder and built there with this environment's
setuptools (no build isolation, nothing written into the checkout); the new environment is made without
pip, and a ``.pth`` line puts this environment's site-packages after its own for the dependencies (torch
and the rest are not installed again). A ``.pth`` path line does not run the ``.pth`` files of the folder
it adds, so the editable install's path to ``src/`` stays out: ``inpars`` must come from the wheel.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def single_source_version() -> str:
    """``inpars.__version__`` as written in ``src/inpars/__init__.py`` (read, not imported)."""
    tree = ast.parse((ROOT / "src" / "inpars" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise AssertionError("no __version__ in src/inpars/__init__.py")


def _run(argv: list[str | Path], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path, tiny_beir: Path) -> None:
    version = single_source_version()
    # PYTHONDONTWRITEBYTECODE goes too: under it setuptools warns that byte-compiling is disabled.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}
    env.update(PYTHONNOUSERSITE="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               INPARS_CACHE=str(tmp_path / "cache"))

    # 1. Build from a copy of the sources: sdist, then the wheel from the sdist.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src" / "inpars", source / "src" / "inpars",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    log = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, source], env, tmp_path)
    file_lines = re.compile(r"(copying|adding|creating|hard linking|removing|writing) ")  # may name any file
    warnings = [line for line in log.splitlines()
                if ("warn" in line.lower() or "!!" in line) and not file_lines.match(line)]
    assert not warnings, "python -m build warned:\n" + "\n".join(warnings)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name == f"inpars_toolkit-{version}-py3-none-any.whl"
    assert sdist.name == f"inpars_toolkit-{version}.tar.gz"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"inpars_toolkit-{version}.dist-info/METADATA").decode()
    packaged = {p.relative_to(source / "src").as_posix() for p in (source / "src" / "inpars").rglob("*") if p.is_file()}
    assert packaged <= names, f"missing from the wheel: {sorted(packaged - names)}"
    assert "inpars/py.typed" in names and "inpars/prompts_data/inpars.txt" in names
    assert f"inpars_toolkit-{version}.dist-info/licenses/LICENSE" in names
    assert f"\nVersion: {version}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
    assert "Provides-Extra: models" in metadata

    # 2. A fresh environment, the dependencies borrowed from this one, the wheel installed (not editable).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env, tmp_path)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env,
                     tmp_path).strip())
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_borrowed_dependencies.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         env, tmp_path)
    probe = (
        "import importlib.metadata, importlib.resources, json, inpars, inpars.cli; "
        "files = importlib.resources.files('inpars'); "
        "print(json.dumps({'file': inpars.__file__, 'cli': inpars.cli.__file__, 'version': inpars.__version__, "
        "'dist': importlib.metadata.version('inpars-toolkit'), "
        "'data': [(files / p).is_file() for p in ('py.typed', 'prompts_data/inpars.txt', "
        "'prompts_data/promptagator.yaml')]}))"
    )
    seen = json.loads(_run([python, "-c", probe], env, tmp_path).strip().splitlines()[-1])
    for key in ("file", "cli"):
        assert Path(seen[key]).resolve().is_relative_to(site.resolve()), f"inpars imported from {seen[key]}"
    assert seen["version"] == seen["dist"] == version
    assert all(seen["data"]), seen

    # 3. The console script: --version, then BM25 and trec_eval on a tiny BEIR folder.
    inpars = venv / "bin" / "inpars"
    assert _run([inpars, "--version"], env, tmp_path).strip() == f"inpars {version}"
    run_file, result = tmp_path / "bm25.trec", tmp_path / "eval.json"
    _run([inpars, "retrieve", "--dataset", tiny_beir, "--split", "test", "--out", run_file,
          "--index-dir", tmp_path / "index"], env, tmp_path)
    lines = [line.split() for line in run_file.read_text(encoding="utf-8").splitlines()]
    assert {row[0] for row in lines} == {"q3", "q4"} and all(len(row) == 6 for row in lines)
    top = {row[0]: row[2] for row in lines if row[3] == "1"}
    assert top == {"q3": "d5", "q4": "d4"}
    _run([inpars, "evaluate", run_file, "--dataset", tiny_beir, "--split", "test", "--json", result],
         env, tmp_path)
    evaluation = json.loads(result.read_text(encoding="utf-8"))
    assert evaluation["n_queries"] == 2 and evaluation["runs"] == ["bm25"]
    scores = evaluation["aggregate"]["bm25"]  # each query's one judged document is BM25's first hit
    assert scores and all(value == 1.0 for value in scores.values()), scores
