"""``python -m inpars.<stage>``, the original toolkit's commands: run the stage or exit 2 naming the command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from inpars.compat import COMMANDS, run_module


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_module_runs_the_matching_subcommand(module: str) -> None:
    proc = subprocess.run([sys.executable, "-m", f"inpars.{module}", "--help"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: inpars {COMMANDS[module]} ")


def test_original_flags_exit_2_naming_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    # the original README's command
    code = run_module("inpars.generate_triples", ["--input=trec-covid-queries-filtered.jsonl", "--dataset",
                                                  "trec-covid", "--output=trec-covid-triples.tsv"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'inpars negatives'" in err and "'inpars negatives --help'" in err
    assert run_module("inpars.train", ["--triples", "t.tsv", "--base_model", "t5-base"]) == 2
    err = capsys.readouterr().err
    assert "--triples, --base_model are flags of the original InPars toolkit" in err
    assert "'inpars train --train FILE' reads the original's triples or pairs TSV" in err


def test_our_flags_reach_the_stage(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "q.qrels").write_text("q1 0 d1 1\n")
    (tmp_path / "r.trec").write_text("q1 Q0 d1 1 2.0 x\n")
    assert run_module("inpars.evaluate", [str(tmp_path / "r.trec"), "--qrels", str(tmp_path / "q.qrels"),
                                          "--measures", "RR"]) == 0
    assert "1.0000" in capsys.readouterr().out
