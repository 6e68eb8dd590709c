"""The documentation site (mkdocs.yml, docs/) does not rot: it builds with --strict, its commands run, its
recipes and YAML snippets validate, its generated reference covers the code, its figures come from
benchmarks/results.

Commands are read from the pages (in mkdocs.yml's nav order) as tests/test_readme.py reads them from the
README (its ``readme_commands``): from ```bash (sh, console, unlabelled) blocks, with ``\\`` continuations
joined, and from table rows whose first cell is a single code span. Each command is checked by one test
(:func:`test_every_command_is_run_by_a_test` checks the mapping covers them all):

- ``make X``: the target exists and is .PHONY (CI runs them);
- ``pip ...``: the README's install lines, which tests/test_readme.py checks against the project;
- ``inpars ... --help`` (and ``inpars X --help`` spans in the prose): parsed in-process, exit 0;
- any other ``inpars`` command: every flag parses (fast), and it runs in :func:`test_doc_command_runs`
  (slow) in the README test's ``Workspace`` (the 12-document SciFact slice, pinned to one core; a command
  whose config reads a train split gets a copy with 3 train-split queries), in nav order; except a command
  the README shows identically, which tests/test_readme.py runs, unless a command run here reads its
  output (:func:`run_plan`).

Generated parts (``<!-- generated: NAME -->`` markers, ``docs/gen_reference.py``) are filled in when the
site is built, so they cannot be stale; the tests here check that they name every config field, every
subcommand and flag, every result file and variant, every public name.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shlex
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import test_readme as readme  # the README's command extraction, slice and workspace

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"
RECIPES = ROOT / "examples" / "recipes"
PAPER_RECIPES = ("inpars-v1", "inpars-v2", "promptagator", "gpl", "duqgen")
SHELLS = {"", "bash", "sh", "console"}  # as tests/test_readme.py reads blocks
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.S | re.M)
N_TRAIN_QUERIES = 3  # train-split queries added to the slice for a config that reads them (few-shot examples)


# -- reading the pages -----------------------------------------------------------------------------


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def mkdocs_config() -> dict[str, Any]:
    return yaml.safe_load(MKDOCS.read_text(encoding="utf-8"))


def pages() -> list[Path]:
    """The pages in nav order (the order a reader, and the commands' chain, follows)."""
    return [DOCS / p for p in _nav_pages(mkdocs_config()["nav"])]


def shell_only(text: str) -> str:
    """``text`` without its non-shell fenced blocks, and with ``\\``-continued shell lines joined."""

    def keep(m: re.Match[str]) -> str:
        if m.group(1).strip() in SHELLS:
            return re.sub(r"[ \t]*\\\n[ \t]*", " ", m.group(0))
        return ""

    return FENCE.sub(keep, text)


def doc_commands(text: str) -> list[str]:
    return readme.readme_commands(shell_only(text))


def all_commands() -> list[str]:
    """Every command of every page, in nav order, each once."""
    out: list[str] = []
    for page in pages():
        out += [c for c in doc_commands(page.read_text(encoding="utf-8")) if c not in out]
    return out


def is_help(cmd: str) -> bool:
    return cmd.split()[-1] in {"--help", "-h"}


def reads_train_split(cmd: str) -> bool:
    """Whether a command's config (with its ``--set`` overrides) names a labelled split to read."""
    tokens = shlex.split(cmd)
    if "--train-split" in tokens:
        return True
    if tokens[:2] != ["inpars", "run"] or len(tokens) < 3 or not (ROOT / tokens[2]).is_file():
        return False
    data = yaml.safe_load((ROOT / tokens[2]).read_text(encoding="utf-8")) or {}
    sets = dict(t.partition("=")[::2] for prev, t in itertools.pairwise(tokens) if prev == "--set")
    split = sets.get("dataset.train_split", (data.get("dataset") or {}).get("train_split"))
    return split not in (None, "", "null", "none")


def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMANDS = all_commands()
INPARS_COMMANDS = [c for c in COMMANDS if c.split()[0] == "inpars"]
PROSE_HELP = sorted({s for p in pages() for s in readme.prose_spans(p.read_text(encoding="utf-8"))
                     if re.fullmatch(r"inpars [a-z]+ --help", s)})
HELP_COMMANDS = sorted({c for c in INPARS_COMMANDS if is_help(c)} | set(PROSE_HELP))


def _outputs(cmd: str) -> list[str]:
    """What a command writes: its ``--out`` paths, and for ``inpars run`` the run folder."""
    tokens = shlex.split(cmd)
    outs = readme._outputs(cmd)
    if tokens[:2] == ["inpars", "run"] and len(tokens) > 2:
        if "--run-dir" in tokens:
            outs.append(tokens[tokens.index("--run-dir") + 1])
        elif (ROOT / tokens[2]).is_file():
            outs.append(str(yaml.safe_load((ROOT / tokens[2]).read_text(encoding="utf-8")).get("run_dir", "")))
    return [o for o in outs if o]


def run_plan(commands: list[str], covered: set[str]) -> list[str]:
    """The commands to run here, in order: those not in ``covered`` (run by another test), and every
    earlier command whose output one of them reads (a token equal to the output or under it)."""
    run = [c not in covered for c in commands]
    for i in reversed(range(len(commands))):
        if not run[i]:
            continue
        tokens = shlex.split(commands[i])[1:]
        for j in range(i):
            for out in _outputs(commands[j]):
                if any(t == out or t.startswith(out.rstrip("/") + "/") for t in tokens):
                    run[j] = True
    return [c for c, r in zip(commands, run, strict=True) if r]


README_RUN = set(readme.INPARS_COMMANDS)
RUN_HERE = run_plan([c for c in INPARS_COMMANDS if not is_help(c)], README_RUN)
RUN_IDS = [f"{i + 1:02d}-{' '.join(c.split()[:3])}" for i, c in enumerate(RUN_HERE)]


# -- extraction --------------------------------------------------------------------------------------


def test_extraction() -> None:
    text = (
        "```yaml\nrun_dir: x\n```\n"
        "```bash\nmake docs   # the site\ninpars run a.yaml \\\n  --until generate\n```\n"
        "```text\ninpars not-a-command\n```\n"
        "| command | what |\n|---|---|\n| `inpars y --out b` | does y |\n"
    )
    assert doc_commands(text) == ["make docs", "inpars run a.yaml --until generate", "inpars y --out b"]


def test_run_plan_pulls_in_what_a_command_reads() -> None:
    cmds = ["inpars retrieve --out bm25.trec", "inpars train --out models/minilm", "inpars x --help",
            "inpars rerank --run bm25.trec --model models/minilm/model --out r.trec", "inpars other --out o"]
    assert run_plan(cmds, set(cmds)) == []
    assert run_plan(cmds, set(cmds[:4])) == ["inpars other --out o"]
    assert run_plan(cmds, set(cmds[:3])) == [cmds[0], cmds[1], cmds[3], cmds[4]]


# -- fast checks of the commands ---------------------------------------------------------------------


def test_every_page_is_in_the_nav() -> None:
    listed = {p.resolve() for p in pages()}
    on_disk = {p.resolve() for p in DOCS.rglob("*.md")}
    assert on_disk == listed, f"pages outside mkdocs.yml's nav: {sorted(map(str, on_disk - listed))}"
    assert all(p.is_file() for p in listed), "mkdocs.yml's nav names a page that does not exist"


def test_commands_are_known() -> None:
    assert INPARS_COMMANDS, "no inpars command found in docs/"
    text = "\n".join(" ".join(p.read_text(encoding="utf-8").split()) for p in pages())
    assert f"{readme.N_DOCS}-document slice" in text and f"with {N_TRAIN_QUERIES} train-split queries" in text, (
        "the docs say how large the tests' slice is"
    )
    for cmd in COMMANDS:
        assert cmd.split()[0] in {"inpars", "make", "pip"}, f"docs command of an unknown kind: {cmd!r}"
        assert not re.search(r"[|;&<>]", cmd), f"docs commands run without a shell: {cmd!r}"
        assert cmd.split()[0] != "inpars" or not readme.PLACEHOLDER.search(cmd), (
            f"a pattern in a code block is not a command: {cmd!r} (write it in the prose)"
        )


def test_every_command_is_run_by_a_test() -> None:
    """The mapping from each command to the test that runs it covers every command of the pages."""
    mapping: dict[str, str] = {}
    for cmd in COMMANDS:
        if cmd.split()[0] == "make":
            mapping[cmd] = "test_make_targets_defined (CI runs make)"
        elif cmd.split()[0] == "pip" and cmd in readme.COMMANDS:
            mapping[cmd] = "tests/test_readme.py::test_readme_install_lines_are_the_projects"
        elif is_help(cmd):
            mapping[cmd] = "test_doc_help_runs"
        elif cmd in RUN_HERE:
            mapping[cmd] = "test_doc_command_runs"
        elif cmd in README_RUN:
            mapping[cmd] = "tests/test_readme.py::test_readme_command_runs"
    missing = [c for c in COMMANDS if c not in mapping]
    assert not missing, f"docs commands no test runs: {missing}"


def test_make_targets_defined() -> None:
    makefile = readme.MAKEFILE.read_text(encoding="utf-8")
    targets = [c.split()[1] for c in COMMANDS if c.split()[0] == "make"]
    assert "docs" in targets, "the docs show how to build them (make docs)"
    for target in targets:
        assert re.search(rf"^{re.escape(target)}\s*:", makefile, re.M), f"Makefile has no target {target!r}"
        assert re.search(rf"^\.PHONY:.*\b{re.escape(target)}\b", makefile, re.M), f"{target} not .PHONY"
    test_deps = re.search(r"^test:(.*)$", makefile, re.M)
    assert test_deps and "docs" in test_deps.group(1).split(), "make test builds the docs"


@pytest.mark.parametrize("cmd", [c for c in INPARS_COMMANDS if not is_help(c)])
def test_doc_command_parses(cmd: str) -> None:
    """Every flag of every docs command exists (fast: argparse only)."""
    readme.check_parses(cmd)


@pytest.mark.parametrize("cmd", HELP_COMMANDS)
def test_doc_help_runs(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    readme.check_help(cmd, capsys)


def test_prose_commands_are_patterns_or_run() -> None:
    """A concrete ``inpars`` command in the prose would escape the tests: it goes in a code block."""
    for page in pages():
        for span in readme.prose_spans(page.read_text(encoding="utf-8")):
            tokens = span.split()
            if tokens[0] != "inpars" or span in COMMANDS + HELP_COMMANDS or len(tokens) <= 2:
                continue
            if readme.PLACEHOLDER.search(span):
                continue
            pytest.fail(f"{page.relative_to(ROOT)} shows `{span}` in the prose: put it in a ```bash block")


def test_named_files_exist() -> None:
    """Every repository file a page names in a code span exists (configs, scripts, examples)."""
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for name in sorted(set(re.findall(r"`((?:examples|benchmarks|tests|docs|src)/[\w./-]+)`", text))):
            if "*" in name:
                continue
            assert (ROOT / name).exists(), f"{page.relative_to(ROOT)} names {name}, which does not exist"


def test_yaml_snippets_validate() -> None:
    """Every ```yaml block of the pages is a valid config fragment (its backend options included)."""
    from inpars.config import load_config_dict
    from inpars.generation.base import check_backend

    found = 0
    for page in pages():
        for m in FENCE.finditer(page.read_text(encoding="utf-8")):
            if m.group(1) != "yaml" or "--8<--" in m.group(2):
                continue
            found += 1
            data = yaml.safe_load(m.group(2))
            data.setdefault("dataset", {"name": "scifact"})
            cfg = load_config_dict(data, source=str(page.relative_to(ROOT)))
            if "generate" in data:
                check_backend(cfg.generate.backend, None, cfg.generate.backend_options)
    assert found


# -- the generated parts ---------------------------------------------------------------------------


def test_markers_are_known_and_used() -> None:
    g = gen()
    used = g.markers()
    assert set(used) == set(g.GENERATORS), f"markers in docs/: {used}; generators: {sorted(g.GENERATORS)}"
    assert all(len(p) == 1 for p in used.values()), f"a marker used on several pages: {used}"
    with pytest.raises(ValueError, match="unknown marker 'nope'"):
        g.expand("<!-- generated: nope -->\n")


def _model_fields(model: Any, prefix: str) -> list[str]:
    """Every dotted key of a pydantic model, nested models (and lists of them) included."""
    from pydantic import BaseModel

    out = []
    for name, info in model.model_fields.items():
        out.append(prefix + name)
        kind = info.annotation
        item = (typing.get_args(kind) or (None,))[0] if typing.get_origin(kind) is list else kind
        if isinstance(item, type) and issubclass(item, BaseModel):
            out += _model_fields(item, f"{prefix}{name}{'[]' if item is not kind else ''}.")
    return out


def test_configuration_reference_names_every_field() -> None:
    from inpars.config import PipelineConfig
    from inpars.filter.base import FILTERS

    text = gen().configuration()
    keys = _model_fields(PipelineConfig, "")
    assert len(keys) > 60
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"the configuration reference misses {missing}"
    for name in FILTERS.names():
        assert f"#### `{name}`" in text, f"filter {name} is not in the configuration reference"


def test_configuration_reference_follows_the_models() -> None:
    """A field added to a section appears with its type, default and description."""
    from pydantic import Field, create_model

    from inpars.config import Section

    g = gen()
    model = create_model("Extra", __base__=Section, new_knob=(int, Field(7, ge=2, description="turns it")))
    rows = g._field_rows(model, "generate.")
    assert rows == [["`generate.new_knob`", "int", "`7`", "turns it; ≥ 2"]]


def test_cli_reference_names_every_subcommand_and_flag() -> None:
    import argparse

    from inpars.cli import build_parser

    text = gen().cli()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 9
    for name, p in sub.choices.items():
        assert f"## `inpars {name}`" in text, f"subcommand {name} is not in the CLI reference"
        section = text.split(f"## `inpars {name}`", 1)[1].split("\n## ", 1)[0]
        for action in p._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                assert f"`{flag}`" in section, f"inpars {name} {flag} is not in the CLI reference"


def test_results_are_the_readme_table() -> None:
    """The results page shows the whole table benchmarks/readme_table.py generates from the files."""
    g = gen()
    assert g.results_table().strip() == readme._readme_table().table().strip()


def test_ablation_tables_show_every_variant(tmp_path: Path) -> None:
    g = gen()
    text = g.ablation_tables()
    files = [p for p in sorted((ROOT / "benchmarks" / "results").glob("*.json"))
             if json.loads(p.read_text(encoding="utf-8")).get("benchmark") == "ablation_labelfree"]
    assert files
    for path in files:
        d = json.loads(path.read_text(encoding="utf-8"))
        assert f"### `{path.name}`" in text
        for name, v in d["variants"].items():
            assert f"| `{name}` |" in text and f"{v['fused']['nDCG@10']:.4f}" in text
    # a new result file gets its table
    shutil.copy(files[0], tmp_path / "ablation_new.json")
    assert "### `ablation_new.json`" in g.ablation_tables(tmp_path)


def test_api_reference_names_every_public_name() -> None:
    import inpars

    text = gen().api()
    for name in inpars.__all__:
        if name != "__version__":
            assert re.search(rf"^::: [\w.]+\.{re.escape(name)}$", text, re.M), f"{name} is not in the API page"


def test_architecture_page_shows_every_layer_and_stage() -> None:
    """The architecture page is generated from the import-linter contract and the stage table: every
    layer's modules and every stage of ``inpars run`` appear, so the page cannot fall behind the code."""
    import tomllib

    from inpars.layout import stage_dir
    from inpars.stages import TABLE

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    text = gen().layers()
    for i, layer in enumerate(layers, start=1):
        row = next(line for line in text.splitlines() if line.startswith(f"| {i} |"))
        assert all(f"`{m.strip().removeprefix('inpars.')}`" in row for m in layer.split("|")), layer
    table = gen().stages()
    assert all(f"`{stage_dir('', st.name).as_posix()}`" in table for st in TABLE)
    assert "<!-- generated: layers -->" in (DOCS / "architecture.md").read_text()


_FIGURE = re.compile(r"\bp (?:=|<|<=) 0\.\d+|[+−-]?(?<![\w.])0\.\d{3,4}(?!\d)")
# Figures of the hand-written pages that are not cells of the generated tables, with where they come from.
NOT_IN_TABLES = {
    "+0.043": "range of the fused gains over BM25 in the ablation tables (vs BM25 column), rounded",
    "+0.063": "range of the fused gains over BM25 in the ablation tables (vs BM25 column), rounded",
    "−0.013": "range of the fused deltas against the zero-shot model in the ablation tables, rounded",
    "+0.005": "range of the fused deltas against the zero-shot model in the ablation tables, rounded",
    "p = 0.09": "ablation_volume.json, mnrl-bm25 fused vs zero-shot (p = 0.091), rounded",
    "p <= 0.002": "a bound on the p-values of the fused gains over BM25 in the ablation tables",
}


def test_figures_come_from_the_results() -> None:
    """Every nDCG or p-value figure a hand-written page states is a cell of the generated result tables
    (built from benchmarks/results), or is listed in NOT_IN_TABLES with its source."""
    g = gen()
    generated = (g.results_table() + g.ablation_tables()).replace("-", "−")
    stray, allowed = [], set()
    for page in pages():
        for figure in _FIGURE.findall(g.MARKER.sub("", page.read_text(encoding="utf-8"))):
            if figure in NOT_IN_TABLES:
                allowed.add(figure)
            elif not re.search(rf"(?<![\d.]){re.escape(figure.replace('-', '−'))}(?!\d)", generated):
                stray.append(f"{page.relative_to(ROOT)}: {figure}")
    assert not stray, f"figures not in the generated tables (nor in NOT_IN_TABLES): {stray}"
    assert allowed == set(NOT_IN_TABLES), f"NOT_IN_TABLES lists figures no page states: {set(NOT_IN_TABLES) - allowed}"


def test_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (as ``make docs``): links, anchors, markers, the API from docstrings."""
    pytest.importorskip("mkdocs")
    exe = Path(sys.executable).with_name("mkdocs")
    argv = [str(exe)] if exe.is_file() else [sys.executable, "-m", "mkdocs"]
    proc = subprocess.run([*argv, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "inpars generate" in cli and "generated:" not in cli


# -- recipes ---------------------------------------------------------------------------------------


def recipe_cpu_flags(path: Path) -> list[str]:
    """The ``--set`` flags of a recipe's "CPU substitute" comment."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# CPU substitute"))
    flags: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("#   --set"):
            flags += shlex.split(line[1:])
        elif flags or not line.startswith("#"):
            break
    return flags


def _overrides(flags: list[str]) -> dict[str, Any]:
    pairs = [flags[i + 1] for i, f in enumerate(flags) if f == "--set"]
    return {k: yaml.safe_load(v) for k, _, v in (p.partition("=") for p in pairs)}


def test_recipes_exist_and_are_shown() -> None:
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    assert set(PAPER_RECIPES) <= set(names), f"recipes: {names}"
    page = (DOCS / "recipes.md").read_text(encoding="utf-8")
    for name in names:
        path = RECIPES / f"{name}.yaml"
        header = path.read_text(encoding="utf-8").split("\nrun_dir:", 1)[0]
        assert re.search(r"arXiv:\d{4}\.\d{4,5}", header), f"{name}: the header cites the paper"
        assert "# Hardware:" in header and "# CPU substitute" in header, f"{name}: hardware and CPU notes"
        assert f'--8<-- "examples/recipes/{name}.yaml"' in page, f"docs/recipes.md does not show {name}"
        shown = [c for c in COMMANDS if c.startswith(f"inpars run examples/recipes/{name}.yaml ")]
        assert len(shown) == 1, f"docs/recipes.md shows no (or several) commands for {name}"
        flags = recipe_cpu_flags(path)
        assert flags, f"{name}: no --set flags under 'CPU substitute'"
        assert _overrides(flags).items() <= _overrides(shlex.split(shown[0])).items(), (
            f"{name}: the command on docs/recipes.md does not apply the header's CPU substitute {flags}"
        )


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_recipe_validates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe loads; offline, ``validate`` refuses only models that must come from the hub, and passes
    with the header's CPU substitute."""
    from inpars.config import load_config
    from inpars.errors import ConfigError
    from inpars.pipeline import validate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(ROOT)  # the template path of a recipe is relative to the repository root
    path = RECIPES / f"{name}.yaml"
    cfg = load_config(path)
    assert cfg.run_dir == f"runs/{name}"
    substitutes = _overrides(recipe_cpu_flags(path))
    applied: dict[str, Any] = {}
    for _ in range(len(substitutes) + 1):  # each refusal: a hub model the CPU substitute replaces
        try:
            validate(load_config(path, applied))
            break
        except ConfigError as exc:
            assert "Hugging Face cache" in str(exc), f"{name}: {exc}"
            key = str(exc).split(":", 1)[0].split(" ")[0]
            keys = [k for k in substitutes if key == k or key.startswith(k + ".")]
            assert keys, f"{name}: the CPU substitute does not replace {key} ({exc})"
            applied.update({k: substitutes[k] for k in keys})
    assert cfg.generate.model not in ("smollm2-135m", "gemma3-270m"), f"{name} names the paper's generator"
    validate(load_config(path, substitutes))


# -- the commands themselves -------------------------------------------------------------------------


def add_train_split(folder: Path, n_queries: int = N_TRAIN_QUERIES) -> None:
    """Add the first ``n_queries`` judged queries of SciFact's train split, their judgements and documents
    to the slice ``folder`` (queries' ``metadata`` dropped as each line is read, as build_slice does)."""
    rows: list[tuple[str, str, int]] = []
    ids: list[str] = []
    for row in readme._qrels("train"):
        if row[0] not in ids:
            if len(ids) == n_queries:
                break
            ids.append(row[0])
        rows.append(row)
    judged = {r[1] for r in rows}
    have = {json.loads(line)["_id"] for line in (folder / "corpus.jsonl").open(encoding="utf-8")}
    with open(readme.SCIFACT / "corpus.jsonl", encoding="utf-8") as f:
        docs = [d for d in map(json.loads, f) if d["_id"] in judged - have]
    queries = []
    with open(readme.SCIFACT / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in ids:
                queries.append({"_id": q["_id"], "text": q["text"], "metadata": {}})
    with open(folder / "corpus.jsonl", "a", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    with open(folder / "queries.jsonl", "a", encoding="utf-8") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
    (folder / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> readme.Workspace:
    """The README test's workspace: the 12-document slice (test judgements only) and ``my-docs``."""
    if not (readme.SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {readme.SCIFACT} (set INPARS_DATA_HOME)")
    return readme.Workspace(tmp_path_factory.mktemp("docs"))


@pytest.fixture(scope="module")
def train_workspace(tmp_path_factory: pytest.TempPathFactory) -> readme.Workspace:
    """The same, with a train split, for the commands whose config reads one."""
    if not (readme.SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact not found at {readme.SCIFACT} (set INPARS_DATA_HOME)")
    ws = readme.Workspace(tmp_path_factory.mktemp("docs-train"))
    add_train_split(ws.data / "scifact")
    return ws


def test_train_split_commands_stand_alone() -> None:
    """A command run in the train-split workspace reads nothing an earlier command wrote (that one ran
    in the other workspace)."""
    for i, cmd in enumerate(RUN_HERE):
        if reads_train_split(cmd):
            assert run_plan(RUN_HERE[: i + 1], set(RUN_HERE[:i])) == [cmd], f"`{cmd}` reads an earlier output"


@pytest.mark.slow
@pytest.mark.parametrize("cmd", RUN_HERE, ids=RUN_IDS)
def test_doc_command_runs(cmd: str, request: pytest.FixtureRequest) -> None:
    workspace: readme.Workspace = request.getfixturevalue("train_workspace" if reads_train_split(cmd) else "workspace")
    readme.run_in(workspace, cmd, "docs")
    tokens = shlex.split(cmd)
    if tokens[:2] == ["inpars", "run"] and "--until" in tokens:
        until = tokens[tokens.index("--until") + 1]
        run_dir = workspace.cwd / _outputs(cmd)[0]
        assert any(p.name.endswith(f"-{until}") for p in run_dir.iterdir()), f"`{cmd}` wrote no {until} stage"
        if until == "generate":
            queries = next(run_dir.glob("*-generate/queries.jsonl"))
            assert queries.read_text(encoding="utf-8").strip(), f"`{cmd}` generated no query"

