"""Crash-test soak: `inpars generate` and `inpars run` are SIGKILLed at seeded random moments, then
resumed; the final outputs are byte-identical to an uninterrupted run's (no lost or duplicated record).

The kill moments are drawn (seeded) as fractions of an uninterrupted run's wall time, so they spread over
the whole run whatever the machine's speed; each kill is resumed by the next attempt. The number of kills
per command is ``INPARS_SOAK_KILLS`` (default 4, to keep the file fast; the issue's full soak is
``INPARS_SOAK_KILLS=10``). ``pytest -s`` shows where each kill landed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fakes import tiny_cross_encoder, tiny_pipeline_config

KILLS = int(os.environ.get("INPARS_SOAK_KILLS", "4"))
SEED = 12
TESTS = Path(__file__).resolve().parent
RUNNER = """\
import sys
sys.path.insert(0, {tests!r})
from fakes import register_fake_backend
register_fake_backend()
from inpars.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("soak") / "runner.py"
    path.write_text(RUNNER.format(tests=str(TESTS)), encoding="utf-8")
    return path


def _start(runner: Path, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(runner), *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]


def _timed(runner: Path, argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    _finish(_start(runner, argv, env))
    return time.perf_counter() - t0


def _kill_and_resume(runner: Path, argv: list[str], env: dict[str, str], wall: float, rng: random.Random,
                     output: Path) -> int:
    """SIGKILL the command ``KILLS`` times, each at a random moment of ``wall`` (an uninterrupted run's
    time), resuming the killed work each time; then run it to the end. An attempt that finishes before its
    moment (the machine got faster) sets ``wall`` to its own time and clears ``output`` to start the chain
    again. Returns how many kills landed."""
    landed = attempts = 0
    fresh = True  # the soaked run starts from nothing
    while landed < KILLS and attempts < 3 * KILLS:
        attempts += 1
        proc = _start(runner, argv, env)
        t0 = time.perf_counter()
        moment = rng.uniform(0.05, 0.95) * wall
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            landed += 1
            # where it landed (shown with -s): the stages left interrupted, or the records written so far
            where = ([p.parent.name for p in output.glob("*/pending.json")] if output.is_dir() else
                     f"{len(output.read_bytes().splitlines()) if output.exists() else 0} records")
            print(f"kill {landed} at {moment:.1f} s of {wall:.1f} s: {where}")
            fresh = False
        else:
            assert proc.returncode == 0, proc.stderr.read().decode(errors="replace")[-3000:] if proc.stderr else ""
            if fresh:  # a whole run: the machine's speed now
                wall = time.perf_counter() - t0
            if output.is_dir():
                shutil.rmtree(output)
            else:
                output.unlink()
            fresh = True
        finally:
            if proc.stderr:
                proc.stderr.close()
    _finish(_start(runner, argv, env))
    return landed


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["INPARS_CACHE"] = str(tmp_path / "cache")  # the BM25 index is built (and killed) per run too
    env["PYTHONHASHSEED"] = "0"
    return env


# what differs between two uninterrupted runs too: timings, dates, the report and plots that show them,
# the trainer's own bookkeeping (pickled arguments, log history with times), the score cache's key (it
# hashes the model folder, whose card is dated)
_VOLATILE_FILES = ("manifest.json", "pending.json", "report.md", "report.html", "training_args.bin",
                   "trainer_state.json", "README.md")
_VOLATILE_KEYS = re.compile(r"seconds|elapsed|date|started|finished|resumed|per_second|runtime|^key$", re.IGNORECASE)


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not _VOLATILE_KEYS.search(str(k))}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _files(folder: Path) -> dict[str, Any]:
    """Every file under ``folder`` (bytes; JSON and JSONL records without their timing keys, e.g. the
    seconds a generation took), volatile ones left out."""
    out: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name in _VOLATILE_FILES or p.suffix == ".png":
            continue
        name = str(p.relative_to(folder))
        if p.suffix == ".json":
            out[name] = _stable(json.loads(p.read_text(encoding="utf-8")))
        elif p.suffix == ".jsonl":
            out[name] = [_stable(json.loads(line)) for line in p.read_text(encoding="utf-8").splitlines()]
        else:
            out[name] = p.read_bytes()
    return out


def test_generate_killed_and_resumed_is_byte_identical(tmp_path: Path, runner: Path, scifact_dir: Path) -> None:
    env = _env(tmp_path)
    argv = ["generate", "-d", str(scifact_dir), "--backend", "fake", "--model", "none", "--n-docs", "300",
            "--queries-per-doc", "2", "--temperature", "1.0", "--max-doc-tokens", "40", "--batch-size", "1",
            "--no-progress", "--seed", "4"]
    out = tmp_path / "gen" / "out.jsonl"  # the same path for both runs: the files name it
    wall = _timed(runner, [*argv, "--out", str(out)], env)
    ref = _files(out.parent)
    (out.parent).rename(tmp_path / "reference")
    landed = _kill_and_resume(runner, [*argv, "--out", str(out)], env, wall, random.Random(SEED), out)
    assert landed == KILLS
    assert _files(out.parent) == ref
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    keys = {(r["doc_id"], r["query_index"]) for r in lines}
    assert len(lines) == len(keys) == 600  # no record lost, none duplicated


def _pipeline_config(path: Path, run_dir: Path, model: str) -> Path:
    cfg = tiny_pipeline_config(run_dir, model, **{"generate.batch_size": 1, "train.max_steps": 3})
    path.write_text(json.dumps(cfg), encoding="utf-8")
    return path


def test_pipeline_killed_and_resumed_is_byte_identical(tmp_path: Path, runner: Path, scifact_dir: Path) -> None:
    model = tiny_cross_encoder(tmp_path / "tiny")
    env = _env(tmp_path)
    run_dir = tmp_path / "run"  # the same path for both runs: reports and model cards name it
    cfg = _pipeline_config(tmp_path / "c.yaml", run_dir, model)
    wall = _timed(runner, ["run", str(cfg)], env)
    ref = _files(run_dir)
    run_dir.rename(tmp_path / "reference")
    landed = _kill_and_resume(runner, ["run", str(cfg)], env, wall, random.Random(SEED + 1), run_dir)
    assert landed == KILLS
    soaked = _files(run_dir)
    assert sorted(soaked) == sorted(ref)
    different = [name for name in ref if soaked[name] != ref[name]]
    assert not different
    assert not list(run_dir.glob(".*.previous"))
