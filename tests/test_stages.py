"""The stage table's contract: a stage's identity is computed from the parameters its function receives, and
the function reads nothing else that decides its result (no ``ctx.cfg`` in a stage function)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from inpars import stages
from inpars.config import load_config_dict
from inpars.fingerprint import identity
from inpars.stages import TABLE, Context

SOURCE = Path(stages.__file__)


def _context(tmp_path: Path, **settings: object) -> Context:
    cfg = load_config_dict({"dataset": {"name": "scifact"}, "run_dir": str(tmp_path / "run"), **settings})
    return Context(cfg, None, tmp_path / "run", eval_ids=["q1", "q2"], tune_ids=[])  # type: ignore[arg-type]


def test_no_stage_function_reads_the_config_outside_its_parameters() -> None:
    """Settings reach a stage function as parameters (so the identity sees them): only the ``Context`` class
    and the table's ``params`` lambdas read ``ctx.cfg``."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    offenders = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if (isinstance(sub, ast.Attribute) and sub.attr == "cfg" and isinstance(sub.value, ast.Name)
                        and sub.value.id == "ctx"):
                    offenders.append(f"{node.name}:{sub.lineno}")
    assert not offenders, f"stage functions reading ctx.cfg: {offenders}"


@pytest.mark.parametrize("settings", [
    {},  # the label-free training run
    {"rerank": {"model": "minilm-l6", "model_type": "bi-encoder"}},  # the quick recipe's shape: nothing trained
    {"rerank": {"tune_split": "train"}},  # supervised tuning
    {"rerank": {"interpolate": False}},
])
def test_each_stage_function_takes_exactly_the_parameters_its_identity_is_made_of(
    tmp_path: Path, settings: dict[str, object]
) -> None:
    ctx = _context(tmp_path, **settings)
    for stage in TABLE:
        params = dict(stage.params(ctx))
        signature = inspect.signature(stage.run)
        signature.bind(ctx, tmp_path, **params)  # every parameter is one the function takes
        required = {n for n, p in signature.parameters.items()
                    if p.kind is p.KEYWORD_ONLY and p.default is inspect.Parameter.empty}
        assert required <= set(params), f"{stage.name}: {required - set(params)} not given"
        assert stage.config_identity(ctx) == identity(params)
        if stage.section is not None:  # the growable settings are found under the section's key
            assert stage.section in params


def test_a_setting_of_a_stage_changes_its_identity_and_a_runtime_one_does_not(tmp_path: Path) -> None:
    by_name = {s.name: s for s in TABLE}
    base = _context(tmp_path)
    for stage, setting, runtime in (("generate", {"generate": {"n_docs": 7}}, {"generate": {"batch_size": 3}}),
                                    ("rerank", {"rerank": {"depth": 7}}, {"rerank": {"batch_size": 3}}),
                                    ("pseudo-dev", {"filter": {"min_words": 5}}, {"threads": 1})):
        before = by_name[stage].config_identity(base)
        assert by_name[stage].config_identity(_context(tmp_path, **setting)) != before
        assert by_name[stage].config_identity(_context(tmp_path, **runtime)) == before
