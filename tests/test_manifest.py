"""Stage cache: a finished stage is skipped, an interrupted one resumes, a changed one starts afresh."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from inpars.manifest import PENDING, read_manifest, run_stage, stage_fingerprint


def _writer(calls: list[str], fail_after: int | None = None):
    def fn(folder: Path) -> dict:
        calls.append("run")
        out = folder / "out.txt"
        done = out.read_text().splitlines() if out.exists() else []
        with open(out, "a") as f:
            for i in range(len(done), 5):
                if fail_after is not None and i == fail_after:
                    raise KeyboardInterrupt
                f.write(f"{i}\n")
        return {"lines": 5}

    return fn


def test_skip_when_unchanged_and_rerun_when_input_changes(tmp_path: Path) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    calls: list[str] = []
    r1 = run_stage("s", tmp_path / "s", {"k": 1}, {"in": inp}, _writer(calls), seed=1)
    assert not r1.skipped and r1.summary == {"lines": 5}
    m = read_manifest(tmp_path / "s")
    assert m is not None and m["inputs"]["in"]["sha256"] and m["versions"]["python"]
    assert m["outputs"]["out.txt"] and m["seed"] == 1 and m["seconds"] >= 0
    r2 = run_stage("s", tmp_path / "s", {"k": 1}, {"in": inp}, _writer(calls))
    assert r2.skipped and calls == ["run"]
    inp.write_text("b")
    r3 = run_stage("s", tmp_path / "s", {"k": 1}, {"in": inp}, _writer(calls))
    assert not r3.skipped and len(calls) == 2
    r4 = run_stage("s", tmp_path / "s", {"k": 2}, {"in": inp}, _writer(calls))
    assert not r4.skipped and len(calls) == 3
    r5 = run_stage("s", tmp_path / "s", {"k": 2}, {"in": inp}, _writer(calls), force=True)
    assert not r5.skipped and len(calls) == 4
    assert (tmp_path / "s" / "out.txt").read_text().splitlines() == [str(i) for i in range(5)]


def test_interrupted_stage_resumes_in_place(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path / "s", {}, {}, _writer(calls, fail_after=3))
    assert (tmp_path / "s" / PENDING).is_file() and read_manifest(tmp_path / "s") is None
    run_stage("s", tmp_path / "s", {}, {}, _writer(calls))
    # resumed: the three lines already written were kept, not written twice
    assert (tmp_path / "s" / "out.txt").read_text().splitlines() == ["0", "1", "2", "3", "4"]
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["resumed"] is True
    assert not (tmp_path / "s" / PENDING).exists()


def test_interrupted_stage_with_other_config_starts_afresh(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path / "s", {"v": 1}, {}, _writer(calls, fail_after=3))
    (tmp_path / "s" / "stale.txt").write_text("from the old config")
    run_stage("s", tmp_path / "s", {"v": 2}, {}, _writer(calls))
    assert not (tmp_path / "s" / "stale.txt").exists()


def test_deleted_or_modified_output_is_not_up_to_date(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    assert run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls)).skipped
    out = tmp_path / "s" / "out.txt"
    out.write_text("0\n1\n")  # modified after the stage finished
    r = run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    assert not r.skipped and len(calls) == 2 and out.read_text().splitlines() == [str(i) for i in range(5)]
    out.unlink()  # deleted
    r = run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    assert not r.skipped and len(calls) == 3 and out.is_file()
    assert run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls)).skipped


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", "\xff\xfe"])
def test_corrupt_manifest_means_redo(tmp_path: Path, text: str) -> None:
    calls: list[str] = []
    run_stage("s", tmp_path / "s", {}, {}, _writer(calls))
    (tmp_path / "s" / "manifest.json").write_bytes(text.encode("latin-1"))
    assert read_manifest(tmp_path / "s") is None
    r = run_stage("s", tmp_path / "s", {}, {}, _writer(calls))
    assert not r.skipped and len(calls) == 2
    assert read_manifest(tmp_path / "s")["fingerprint"] == r.manifest["fingerprint"]


def test_corrupt_pending_means_start_afresh(tmp_path: Path) -> None:
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path / "s", {}, {}, _writer(calls, fail_after=3))
    (tmp_path / "s" / PENDING).write_text("{torn")
    run_stage("s", tmp_path / "s", {}, {}, _writer(calls))
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["resumed"] is False


def test_fingerprint_follows_the_stage_code_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from inpars import fingerprint

    fp = stage_fingerprint("generate", {"k": 1}, {"in": "abc"})
    assert stage_fingerprint("filter", {"k": 1}, {"in": "abc"}) != fp  # each stage has its own kind
    monkeypatch.setitem(fingerprint.VERSIONS, "filter", fingerprint.VERSIONS["filter"] + 1)
    assert stage_fingerprint("generate", {"k": 1}, {"in": "abc"}) == fp  # another stage's bump: no change
    monkeypatch.setitem(fingerprint.VERSIONS, "generate", fingerprint.VERSIONS["generate"] + 1)
    assert stage_fingerprint("generate", {"k": 1}, {"in": "abc"}) != fp
    # and a finished stage runs again after its version bump, not after the package version changes
    calls: list[str] = []
    run_stage("generate", tmp_path / "g", {}, {}, _writer(calls))
    monkeypatch.setattr("inpars.__version__", "999.0")
    assert run_stage("generate", tmp_path / "g", {}, {}, _writer(calls)).skipped
    monkeypatch.setitem(fingerprint.VERSIONS, "generate", fingerprint.VERSIONS["generate"] + 1)
    assert not run_stage("generate", tmp_path / "g", {}, {}, _writer(calls)).skipped and len(calls) == 2


def test_runtime_fields_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    from inpars.config import GenerateConfig, RerankConfig

    a = {"generate": GenerateConfig(batch_size=1, backend_options={"n_threads": 1}), "seed": 1}
    b = {"generate": GenerateConfig(batch_size=8, backend_options={"n_threads": 2}), "seed": 1}
    assert stage_fingerprint("generate", a, {}) == stage_fingerprint("generate", b, {})
    c = {"generate": GenerateConfig(temperature=0.5), "seed": 1}
    assert stage_fingerprint("generate", a, {}) != stage_fingerprint("generate", c, {})
    calls: list[str] = []
    run_stage("rerank", tmp_path / "r", RerankConfig(batch_size=4), {}, _writer(calls))
    assert run_stage("rerank", tmp_path / "r", RerankConfig(batch_size=64), {}, _writer(calls)).skipped
    m = read_manifest(tmp_path / "r")
    assert m is not None and m["config"]["batch_size"] == 4  # recorded in full, keyed on the identity


def test_finished_outputs_are_kept_until_the_new_work_succeeds(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    before = (tmp_path / "s" / "out.txt").read_text()

    def failing(folder: Path) -> dict:
        (folder / "out.txt").write_text("half")
        raise RuntimeError("the new work failed")

    with pytest.raises(RuntimeError):
        run_stage("s", tmp_path / "s", {"k": 2}, {}, failing)
    # the finished folder is back, whole, and still up to date for its own config
    assert (tmp_path / "s" / "out.txt").read_text() == before
    assert not (tmp_path / ".s.previous").exists()
    assert run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls)).skipped
    # success replaces it, and nothing is left aside
    assert not run_stage("s", tmp_path / "s", {"k": 2}, {}, _writer(calls)).skipped
    assert not (tmp_path / ".s.previous").exists()


def test_interrupted_redo_keeps_the_old_folder_aside_then_resumes(tmp_path: Path) -> None:
    calls: list[str] = []
    run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path / "s", {"k": 2}, {}, _writer(calls, fail_after=2))
    assert (tmp_path / ".s.previous" / "manifest.json").is_file()
    res = run_stage("s", tmp_path / "s", {"k": 2}, {}, _writer(calls))
    assert res.manifest["resumed"] and not (tmp_path / ".s.previous").exists()
    assert (tmp_path / "s" / "out.txt").read_text().splitlines() == [str(i) for i in range(5)]


def test_an_interrupted_redo_under_a_reverted_config_gets_the_finished_outputs_back(tmp_path: Path) -> None:
    """Ctrl-C (or a kill) while a changed config redoes a finished stage, then the change reverted: the
    finished outputs are put back and the stage is up to date, nothing is redone or lost."""
    calls: list[str] = []
    run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    before = (tmp_path / "s" / "out.txt").read_text()
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path / "s", {"k": 2}, {}, _writer(calls, fail_after=2))
    # a kill leaves the same state; under a third config the finished copy still stays aside
    with pytest.raises(KeyboardInterrupt):
        run_stage("s", tmp_path / "s", {"k": 3}, {}, _writer(calls, fail_after=1))
    assert (tmp_path / ".s.previous" / "manifest.json").is_file()
    n = len(calls)
    res = run_stage("s", tmp_path / "s", {"k": 1}, {}, _writer(calls))
    assert res.skipped and len(calls) == n and (tmp_path / "s" / "out.txt").read_text() == before
    assert not (tmp_path / ".s.previous").exists()


def test_manifest_masks_credentials_in_the_config(tmp_path: Path) -> None:
    url = "http://user:PASSWORD123@host:8080/v1?api_key=KEY456"
    run_stage("s", tmp_path / "s", {"backend_options": {"base_url": url}}, {}, _writer([]))
    text = (tmp_path / "s" / "manifest.json").read_text()
    assert "PASSWORD123" not in text and "KEY456" not in text and "host:8080" in text


def _growing(n: int, seen: list[int]):
    """A stage writing lines 0..n-1, keeping those already there (as generation extends its file)."""

    def fn(folder: Path) -> dict:
        out = folder / "out.txt"
        have = out.read_text().splitlines() if out.exists() else []
        seen.append(len(have))
        if len(have) > n:
            raise RuntimeError("the file holds more than asked for")
        with open(out, "a") as f:
            for i in range(len(have), n):
                f.write(f"{i}\n")
        return {"lines": n}

    return fn


def _grow(config: Mapping[str, Any]) -> tuple[dict, dict]:
    """The ``grow`` of a stage whose setting ``n`` grows."""
    return {"k": config["k"]}, {"n": config["n"]}


def test_a_grown_setting_extends_the_finished_outputs_and_keeps_them_until_it_succeeds(tmp_path: Path) -> None:
    seen: list[int] = []
    folder = tmp_path / "s"
    run_stage("s", folder, {"k": "k", "n": 2}, {}, _growing(2, seen), grow=_grow)
    res = run_stage("s", folder, {"k": "k", "n": 4}, {}, _growing(4, seen), grow=_grow)
    assert seen == [0, 2] and res.manifest["extended"] and res.manifest["grow"]["sizes"] == {"n": 4}
    assert (folder / "out.txt").read_text().splitlines() == ["0", "1", "2", "3"]
    assert not (tmp_path / ".s.previous").exists()

    # the extension fails: the finished folder (4 lines) is back, whole and up to date
    def failing(f: Path) -> dict:
        (f / "out.txt").write_text("torn")
        raise RuntimeError("the new work failed")

    with pytest.raises(RuntimeError):
        run_stage("s", folder, {"k": "k", "n": 6}, {}, failing, grow=_grow)
    assert (folder / "out.txt").read_text().splitlines() == ["0", "1", "2", "3"]
    assert run_stage("s", folder, {"k": "k", "n": 4}, {}, _growing(4, seen), grow=_grow).skipped

    # smaller, another key, or no grow record: afresh
    for config, grow in (({"k": "k", "n": 3}, _grow), ({"k": "j", "n": 5}, _grow), ({"k": "k", "n": 6}, None)):
        res = run_stage("s", folder, config, {}, _growing(config["n"], seen), grow=grow)  # type: ignore[arg-type]
        assert not res.manifest["extended"] and seen[-1] == 0


def test_a_grow_record_derived_for_an_older_manifest_needs_the_same_stage_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest without a ``grow`` record (written before its stage declared one) is extended when its
    recorded config and hashes reproduce its fingerprint, and redone when the stage's code version changed
    since (its derived key would otherwise match the current one)."""
    from inpars import manifest

    seen: list[int] = []
    for version, extended in ((None, True), (7, False)):
        folder = tmp_path / f"s{extended}"
        run_stage("s", folder, {"k": "k", "n": 2}, {}, _growing(2, seen), grow=_grow)
        done = json.loads((folder / "manifest.json").read_text())
        del done["grow"]
        (folder / "manifest.json").write_text(json.dumps(done))
        if version is not None:
            monkeypatch.setitem(manifest.VERSIONS, "s", version)
        res = run_stage("s", folder, {"k": "k", "n": 4}, {}, _growing(4, seen), grow=_grow)
        assert res.manifest["extended"] is extended and seen[-1] == (2 if extended else 0)
        assert (folder / "out.txt").read_text().splitlines() == ["0", "1", "2", "3"]
