"""The README does not rot: its commands run, its flags parse, its figures come from benchmarks/results.

Commands are read from the README itself: every line of a fenced code block and every table row whose
first cell is a single code span. ``inpars`` commands run unchanged, in README order, in one temporary
folder (so that each finds the files the ones before it wrote), on a 12-document slice of SciFact built
at test time and reached as ``--dataset scifact`` through ``$INPARS_DATA_HOME``; each process is pinned
to one CPU core, so llama.cpp and torch use one thread. ``make`` commands are checked against the
Makefile (CI runs them). ``inpars X --help`` spans in the prose run too; any other ``inpars ...`` code
span in the prose must be a pattern with a placeholder (``inpars run CONFIG.yaml``, ``inpars -v ...``)
or a bare subcommand name. The measured table must equal the one benchmarks/readme_table.py generates,
and no measured figure may appear outside it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAKEFILE = ROOT / "Makefile"
SCIFACT = Path(os.environ.get("INPARS_DATA_HOME") or ROOT.parent / "shared" / "data") / "scifact"
# Read-only inputs that README commands may name by a relative path; copied into the work folder.
INPUT_DIRS = ("examples", "benchmarks")
SPLITS = ("test",)  # label-free, as the README commands are: judgements for evaluation only
N_QUERIES = 4  # per split, with their judged documents
N_DOCS = 12  # documents in the slice, judged ones included

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
SHELL_BLOCKS = {"", "bash", "sh", "console"}
SPAN = re.compile(r"`([^`\n]+)`")
PLACEHOLDER = re.compile(r"\.\.\.|\b[A-Z][A-Z_]{2,}\b")


# -- reading the README ----------------------------------------------------------------------------


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _generated_span(text: str) -> tuple[int, int]:
    mod = _readme_table()
    return text.find(mod.BEGIN), text.find(mod.END)


def readme_commands(text: str) -> list[str]:
    """Commands shown in ``text``, in order: fenced code lines and single-span first table cells."""
    found: list[tuple[int, str]] = []
    for block in FENCE.finditer(text):
        if block.group(1).strip() not in SHELL_BLOCKS:
            continue
        offset = block.start(2)
        for line in block.group(2).splitlines(keepends=True):
            cmd = re.sub(r"\s+#.*$", "", line.strip()).removeprefix("$ ").strip()
            if cmd and not cmd.startswith("#"):
                found.append((offset, cmd))
            offset += len(line)
    pos = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("|"):
            first = line.strip().strip("|").split("|")[0].strip()
            m = re.fullmatch(r"`([^`]+)`", first)
            if m:
                found.append((pos, m.group(1).strip()))
        pos += len(line)
    return [cmd for _, cmd in sorted(found)]


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of ``text``."""
    return [b.group(2) for b in FENCE.finditer(text) if b.group(1).strip() == "python"]


def prose_spans(text: str) -> list[str]:
    """Code spans outside fenced blocks."""
    return SPAN.findall(FENCE.sub("", text))


def _readme_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "benchmarks" / "readme_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMANDS = readme_commands(_readme())
INPARS_COMMANDS = [c for c in COMMANDS if c.split()[0] == "inpars"]
# `inpars X --help` in the prose: run by test_readme_help_runs (fast).
IDS = [f"{i + 1:02d}-{' '.join(c.split()[:2])}" for i, c in enumerate(INPARS_COMMANDS)]
HELP_COMMANDS = sorted({s for s in prose_spans(_readme()) if re.fullmatch(r"inpars [a-z]+ --help", s)})


# -- fast checks -----------------------------------------------------------------------------------


def test_readme_extraction() -> None:
    text = (
        "```bash\nmake demo   # the demo\n$ inpars x --a 1\n```\n"
        "| command | what |\n|---|---|\n| `inpars y --out b` | does y |\n| plain | `inpars z` |\n"
        "Prose `inpars run CONFIG.yaml` and `inpars -v ...`.\n"
    )
    assert readme_commands(text) == ["make demo", "inpars x --a 1", "inpars y --out b"]
    assert prose_spans(text) == ["inpars y --out b", "inpars z", "inpars run CONFIG.yaml", "inpars -v ..."]


def test_readme_commands_are_known() -> None:
    assert INPARS_COMMANDS, "no inpars command found in the README"
    assert f"{N_DOCS}-document slice" in _readme(), "the README says how large the test's slice is"
    for cmd in COMMANDS:
        assert cmd.split()[0] in {"inpars", "make", "pip"}, f"README command of an unknown kind: {cmd!r}"
        assert not re.search(r"[|;&<>]", cmd), f"README commands run without a shell: {cmd!r}"


def test_readme_install_lines_are_the_projects() -> None:
    """The README's `pip install` lines name this project's extras and the pins the Makefile installs (CI
    runs the Makefile; tests/test_wheel.py installs the built wheel)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    makefile = MAKEFILE.read_text(encoding="utf-8")
    pips = [shlex.split(c) for c in COMMANDS if c.split()[0] == "pip"]
    assert pips, "the README has no install line"
    for argv in pips:
        assert argv[1] == "install", argv
        for arg in argv[2:]:
            if arg.startswith("."):  # '.[a,b]': this project with extras
                extras = re.fullmatch(r"\.\[([\w,-]+)\]", arg)
                assert extras, arg
                for extra in extras.group(1).split(","):
                    assert extra in project["optional-dependencies"], f"no extra {extra!r} in pyproject.toml"
                    assert extra in makefile, f"the Makefile does not install the {extra!r} extra"
            elif not arg.startswith("-"):
                assert arg in makefile, f"the README installs {arg}, the Makefile does not"


def test_prose_commands_are_patterns_or_run() -> None:
    """A concrete ``inpars`` command in the prose would escape the test: it must be in a table or block."""
    for span in prose_spans(_readme()):
        tokens = span.split()
        if tokens[0] != "inpars" or span in COMMANDS + HELP_COMMANDS or len(tokens) <= 2:
            continue
        if PLACEHOLDER.search(span):
            continue
        pytest.fail(f"README shows `{span}` in the prose: put it in the commands table or a code block")


def test_make_targets_listed_and_defined() -> None:
    makefile = MAKEFILE.read_text(encoding="utf-8")
    targets = [c.split()[1] for c in COMMANDS if c.split()[0] == "make"]
    assert {"demo", "test"} <= set(targets), f"README must list make demo and make test, lists {targets}"
    for target in targets:
        assert re.search(rf"^{re.escape(target)}\s*:", makefile, re.M), f"Makefile has no target {target!r}"
        assert re.search(rf"^\.PHONY:.*\b{re.escape(target)}\b", makefile, re.M), f"{target} not .PHONY"


def check_parses(cmd: str) -> None:
    """Every flag of ``cmd`` exists (argparse only, nothing runs); ``--help`` exits 0."""
    from inpars.cli import build_parser

    try:
        args = build_parser().parse_args(shlex.split(cmd)[1:])
    except SystemExit as exc:
        if exc.code == 0 and "--help" in cmd.split():
            return
        pytest.fail(f"`{cmd}` does not parse (exit {exc.code}); see the argparse message above")
    assert getattr(args, "func", None), f"`{cmd}` names no subcommand"


def check_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``cmd`` (``inpars X --help``) prints the usage and exits 0."""
    from inpars.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(shlex.split(cmd)[1:])
    assert exc.value.code == 0, f"`{cmd}` exited {exc.value.code}"
    assert "usage: inpars" in capsys.readouterr().out


@pytest.mark.parametrize("cmd", INPARS_COMMANDS, ids=IDS)
def test_readme_command_parses(cmd: str) -> None:
    check_parses(cmd)


@pytest.mark.parametrize("cmd", HELP_COMMANDS)
def test_readme_help_runs(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    check_help(cmd, capsys)


def test_readme_configs_exist_and_load() -> None:
    """Every YAML file the README names exists and validates."""
    from inpars.config import load_config

    names = sorted(set(re.findall(r"[\w./-]+\.yaml\b", _readme())) - {"CONFIG.yaml"})
    assert names
    for name in names:
        if "/" not in name:  # a bare file name in prose, e.g. a placeholder
            continue
        path = ROOT / name
        assert path.is_file(), f"README names {name}, which does not exist"
        load_config(path)


def test_readme_table_is_generated() -> None:
    mod = _readme_table()
    text = _readme()
    assert mod.replace_table(text, mod.readme_table()) == text, (
        "README's measured table differs from benchmarks/results: run python benchmarks/readme_table.py --write"
    )


def test_table_renders_every_kind(tmp_path: Path) -> None:
    """Every shown result file gets its row; a result of an unknown kind is still listed."""
    mod = _readme_table()
    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "new_kind.json").write_text(json.dumps({"benchmark": "x", "what": "a new probe"}))
    table = mod.table(tmp_path)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`benchmarks/results/" in line]
    shown = [n for n in mod.SHOWN if (tmp_path / n).is_file()]
    assert [row.rsplit("`benchmarks/results/", 1)[1].split("`")[0] for row in rows] == shown
    assert "`new_kind.json`" in table


def test_rerank_row_names_the_engines_this_cpu_refused() -> None:
    mod = _readme_table()
    d = json.loads((ROOT / "benchmarks" / "results" / "rerank.json").read_text(encoding="utf-8"))
    assert "refused on this CPU" not in mod._rerank(d)[1]
    d["refused"] = {"torch-bf16": "engine 'torch-bf16': this cpu has no native bfloat16 support"}
    assert mod._rerank(d)[1].endswith("; refused on this CPU: torch-bf16")


def test_no_figures_outside_the_generated_table() -> None:
    """Speed-ups and nDCG values belong in the generated table only (they come from results JSON)."""
    text = _readme()
    begin, end = _generated_span(text)
    outside = text[:begin] + text[end:]
    figures = re.findall(r"\b\d+(?:\.\d+)?x\b|\bnDCG@10 [-+−]?0\.\d+|\bpairs/s\b|\bq/s\b", outside)
    assert not figures, f"measured figures outside the generated table: {figures}"


# -- the commands themselves -------------------------------------------------------------------------


def _qrels(split: str) -> list[tuple[str, str, int]]:
    with open(SCIFACT / "qrels" / f"{split}.tsv", newline="", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)
        return [(q.strip(), d.strip(), int(s)) for q, d, s in rows]


def build_slice(root: Path) -> Path:
    """A BEIR folder ``root/scifact``: the first N_QUERIES judged queries of each of SPLITS with their
    judgements, and N_DOCS documents (the judged ones, then the first of the corpus). Query ``metadata``
    (SciFact's evidence, i.e. labels) is dropped as each line is read."""
    qrels: dict[str, list[tuple[str, str, int]]] = {}
    for split in SPLITS:
        ids: list[str] = []
        qrels[split] = []
        for row in _qrels(split):
            if row[0] not in ids:
                if len(ids) == N_QUERIES:
                    break
                ids.append(row[0])
            qrels[split].append(row)
    query_ids = {r[0] for rows in qrels.values() for r in rows}
    judged = {r[1] for rows in qrels.values() for r in rows}
    docs = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if doc["_id"] in judged or len(docs) < N_DOCS - len(judged):
                docs.append(doc)
    queries = []
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in query_ids:
                queries.append({"_id": q["_id"], "text": q["text"], "metadata": {}})
    out = root / "scifact"
    (out / "qrels").mkdir(parents=True)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (out / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


class Workspace:
    def __init__(self, root: Path) -> None:
        self.cwd = root / "work"
        self.cwd.mkdir()
        for name in INPUT_DIRS:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, self.cwd / name, ignore=shutil.ignore_patterns("__pycache__"))
        self.data = root / "data"
        build_slice(self.data)
        # 'my-docs': one's own collection, a corpus without queries or judgements
        (self.cwd / "my-docs").mkdir()
        shutil.copy(self.data / "scifact" / "corpus.jsonl", self.cwd / "my-docs" / "corpus.jsonl")
        self.env = dict(
            os.environ,
            INPARS_DATA_HOME=str(self.data),
            INPARS_CACHE=str(root / "cache"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        self.failed: str | None = None

    def run(self, cmd: str) -> subprocess.CompletedProcess[str]:
        exe = Path(sys.executable).with_name("inpars")
        argv = [str(exe)] if exe.is_file() else [sys.executable, "-m", "inpars"]
        argv += shlex.split(cmd)[1:]
        pin = None
        if hasattr(os, "sched_setaffinity"):
            core = max(os.sched_getaffinity(0))

            def pin() -> None:
                os.sched_setaffinity(0, {core})

        return subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=600, preexec_fn=pin
        )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {SCIFACT} (set INPARS_DATA_HOME)")
    return Workspace(tmp_path_factory.mktemp("readme"))


def _outputs(cmd: str) -> list[str]:
    tokens = shlex.split(cmd)
    return [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in {"--out", "-o"}]


def run_in(workspace: Workspace, cmd: str, what: str = "README") -> None:
    """Run ``cmd`` in ``workspace`` (skipped after an earlier failure there); it must exit 0 and write its
    ``--out`` paths. A failure marks the workspace, so that the commands after it are skipped."""
    if workspace.failed:
        pytest.skip(f"an earlier {what} command failed: {workspace.failed}")
    proc = workspace.run(cmd)
    if proc.returncode != 0:
        workspace.failed = cmd
        pytest.fail(
            f"`{cmd}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    missing = [out for out in _outputs(cmd) if not (workspace.cwd / out).exists()]
    if missing:
        workspace.failed = cmd
        pytest.fail(f"`{cmd}` exited 0 but wrote no {', '.join(missing)}")


@pytest.mark.slow
@pytest.mark.parametrize("cmd", INPARS_COMMANDS, ids=IDS)
def test_readme_command_runs(cmd: str, workspace: Workspace) -> None:
    run_in(workspace, cmd)


@pytest.mark.slow
@pytest.mark.parametrize("code", python_blocks(_readme()), ids=lambda c: c.splitlines()[0][:30])
def test_readme_python_runs(code: str, workspace: Workspace) -> None:
    """The README's Python quickstart, after its commands (in the same folder: the run is there)."""
    if workspace.failed:
        pytest.skip(f"an earlier README command failed: {workspace.failed}")
    proc = subprocess.run([sys.executable, "-c", code], cwd=workspace.cwd, env=workspace.env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"
    assert "fused with BM25" in proc.stdout


def test_readme_python_quickstart_is_short() -> None:
    blocks = python_blocks(_readme())
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) <= 10
