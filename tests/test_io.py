"""Crash-safe files: atomic writes, appends that survive a kill, JSONL errors that name the line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inpars.errors import InputError
from inpars.io import JsonlAppender, atomic_write, read_jsonl, repair_jsonl, sha256_path, temp_prefix


def test_atomic_write_leaves_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("new, half written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temporary file left behind


def test_read_jsonl_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes(b'{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(InputError) as err:
        list(read_jsonl(p))
    assert f"{p}:3:" in str(err.value) and "invalid JSON" in str(err.value)
    p.write_bytes(b'{"a": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match=r":2: expected a JSON object, got list"):
        list(read_jsonl(p))
    p.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(InputError, match=r":1: invalid UTF-8"):
        list(read_jsonl(p))


def test_truncated_tail_is_repaired_not_fatal(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    assert [o["a"] for _, o in read_jsonl(p, skip_truncated_tail=True)] == [1, 2]
    assert repair_jsonl(p) == len(b'{"a": 3, "b"')
    with JsonlAppender(p) as out:
        out.write({"a": 4})
    assert [o["a"] for _, o in read_jsonl(p)] == [1, 2, 4]


def test_complete_tail_without_newline_is_kept(tmp_path: Path) -> None:
    p = tmp_path / "q.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert repair_jsonl(p) == 0
    assert p.read_bytes().endswith(b"}\n")
    assert [o["a"] for _, o in read_jsonl(p)] == [1, 2]


def test_appender_survives_sigkill(tmp_path: Path) -> None:
    """A writer killed with SIGKILL leaves only whole lines (each line is written and flushed at once)."""
    p = tmp_path / "out.jsonl"
    code = (
        "import sys\nfrom inpars.io import JsonlAppender\n"
        f"out = JsonlAppender({str(p)!r}, fsync_every=1000)\n"
        "i = 0\n"
        "while True:\n"
        "    out.write({'i': i, 'pad': 'x' * 5000})\n"
        "    i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(200):
            if p.exists() and p.stat().st_size > 200_000:
                break
            proc.wait(timeout=0.05) if proc.poll() is not None else None
            import time

            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    repair_jsonl(p)
    ids = [o["i"] for _, o in read_jsonl(p)]
    assert ids == list(range(len(ids))) and len(ids) > 10


def test_sha256_path_of_folder_depends_on_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("1")
    h1 = sha256_path(tmp_path / "a")
    (tmp_path / "a" / "x").write_text("2")
    h2 = sha256_path(tmp_path / "a")
    os.rename(tmp_path / "a" / "x", tmp_path / "a" / "y")
    h3 = sha256_path(tmp_path / "a")
    assert len({h1, h2, h3}) == 3
    assert json.dumps(h1)


def test_atomic_write_honours_the_umask(tmp_path: Path) -> None:
    from inpars.io import write_json

    mask = os.umask(0o022)
    os.umask(mask)
    write_json(tmp_path / "x.json", {"a": 1})  # mkstemp alone would give 0600
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_read_jsonl_accepts_a_bom_and_refuses_nan(tmp_path: Path) -> None:
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n')
    assert [obj["a"] for _, obj in read_jsonl(p)] == [1, 2]
    for token in ("NaN", "Infinity", "-Infinity"):
        p.write_text(f'{{"a": 1}}\n{{"log_probs": [-0.1, {token}]}}\n')
        with pytest.raises(InputError, match=rf"bom.jsonl:2: {token} is not a number"):
            list(read_jsonl(p))


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    """SIGKILL between the temporary file's creation and its rename leaves the temporary behind; the next
    write of the same target removes it, and leaves alone those of live writers, other hosts and names it
    did not make."""
    target = tmp_path / "out.json"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from inpars.io import atomic_write\n"
        "with atomic_write(Path(sys.argv[1])) as f:\n"
        "    f.write('half'); f.flush(); os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)], check=False)
    assert proc.returncode == 9
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".out.json.") and leftovers[0].endswith(".tmp")
    live = tmp_path / f"{temp_prefix(target)}abc.tmp"  # this process: alive
    other_host = tmp_path / f".out.json.elsewhere-{proc.returncode}-abc.tmp"
    foreign = tmp_path / ".out.json.notours.tmp"
    index_dir = tmp_path / f"{temp_prefix(target).replace(str(os.getpid()), str(2**22 + 7))}xyz.tmp"
    for p in (live, other_host, foreign):
        p.write_text("x")
    index_dir.mkdir()  # a folder left by a dead process (pid above Linux's pid_max): removed too
    with atomic_write(target) as f:
        f.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out.json", live.name, other_host.name, foreign.name]
    )


def test_atomic_write_never_replaces_a_link_a_fifo_or_a_device(tmp_path: Path) -> None:
    import os

    from inpars.errors import ConfigError
    from inpars.io import atomic_write

    target = tmp_path / "target.txt"
    target.write_text("keep")
    link, fifo = tmp_path / "link.txt", tmp_path / "fifo"
    link.symlink_to(target)
    os.mkfifo(fifo)
    for path, kind in ((link, "a symbolic link"), (fifo, "a FIFO"), (Path("/dev/null"), "a device")):
        with pytest.raises(ConfigError, match=kind), atomic_write(path) as f:
            f.write("x")
    assert link.is_symlink() and target.read_text() == "keep" and fifo.is_fifo() and Path("/dev/null").is_char_device()


def test_writing_commands_refuse_special_outputs_before_any_work(tmp_path: Path, tiny_beir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from inpars.cli import main

    fifo, link = tmp_path / "fifo", tmp_path / "link.trec"
    os.mkfifo(fifo)
    link.symlink_to(tmp_path / "elsewhere.trec")
    for out in (fifo, link):
        assert main(["retrieve", "--dataset", str(tiny_beir), "--out", str(out)]) == 2
        assert "regular files or new paths only" in capsys.readouterr().err
    assert fifo.is_fifo() and link.is_symlink() and not (tmp_path / "elsewhere.trec").exists()


def test_a_full_disk_names_the_file_that_could_not_be_written(tmp_path: Path) -> None:
    """A failed write or fsync carries no file name; the error line must still say which file."""
    import errno
    from unittest import mock

    from inpars.safety import describe_error

    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch("os.fsync", side_effect=full), pytest.raises(OSError) as info, \
            atomic_write(tmp_path / "x.json") as f:
        f.write("{}")
    assert describe_error(info.value) == (2, f"{tmp_path / 'x.json'}: no space left on the device (free some space, "
                                             "then run again to resume)")
    assert not list(tmp_path.iterdir())  # no temporary left behind
    out = JsonlAppender(tmp_path / "y.jsonl")
    with mock.patch("os.fsync", side_effect=OSError(errno.ENOSPC, "No space left on device")), \
            pytest.raises(OSError) as info:
        out.write({"a": 1})
    assert describe_error(info.value)[1].startswith(f"{tmp_path / 'y.jsonl'}: no space left")
