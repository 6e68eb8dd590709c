"""The CLI's error boundary: whatever a user types, exit 2 with one line naming the file, field, key path
or option and what to do; never a traceback (except with -vv); inputs never written; secrets never shown."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from inpars.cli import main
from inpars.safety import check_output, describe_error, mask_secrets


@pytest.fixture
def work(tiny_beir: Path, tmp_path: Path) -> dict[str, Path]:
    gen = tmp_path / "q.jsonl"
    gen.write_text("".join(
        json.dumps({"doc_id": f"d{i}", "query": f"what about vitamin number {i}", "log_probs": [-0.1, -0.2]}) + "\n"
        for i in range(1, 4)), encoding="utf-8")
    run = tmp_path / "run.trec"
    run.write_text("q3 Q0 d5 1 2.0 x\nq3 Q0 d2 2 1.0 x\nq4 Q0 d4 1 1.0 x\n", encoding="utf-8")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    afile = tmp_path / "a-file"
    afile.write_text("x")
    return {"ds": tiny_beir, "gen": gen, "run": run, "dir": folder, "file": afile, "tmp": tmp_path}


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stderr). Any exception escaping main fails the test."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _one_error_line(code: int, err: str, command: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line or "Traceback" in line]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"inpars {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- inputs are never written ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["filter", "negatives"])
def test_output_equal_to_the_input_is_refused(capsys: Any, work: dict[str, Path], command: str) -> None:
    before = work["gen"].read_bytes()
    extra = ["--step", "none"] if command == "filter" else []
    code, err = _cli(capsys, command, "-d", work["ds"], "--in", work["gen"], "--out", work["gen"], *extra)
    _one_error_line(code, err, command, str(work["gen"]), "input")
    assert work["gen"].read_bytes() == before


def test_output_through_a_symlink_to_the_input_is_refused(capsys: Any, work: dict[str, Path]) -> None:
    link = work["tmp"] / "link.jsonl"
    link.symlink_to(work["gen"])
    code, err = _cli(capsys, "filter", "-d", work["ds"], "--in", work["gen"], "--out", link, "--step", "none")
    _one_error_line(code, err, "filter", "input")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_output_onto_a_dataset_file_is_refused(capsys: Any, work: dict[str, Path], name: str) -> None:
    before = _snapshot(work["ds"])
    code, err = _cli(capsys, "retrieve", "-d", work["ds"], "--out", work["ds"] / name,
                     "--index-dir", work["tmp"] / "idx")
    _one_error_line(code, err, "retrieve", name, "dataset")
    assert _snapshot(work["ds"]) == before


def test_evaluate_markdown_onto_its_run_is_refused(capsys: Any, work: dict[str, Path]) -> None:
    before = work["run"].read_bytes()
    code, err = _cli(capsys, "evaluate", work["run"], "-d", work["ds"], "--markdown", work["run"])
    _one_error_line(code, err, "evaluate", "--markdown", "input")
    assert work["run"].read_bytes() == before


def test_rerank_output_onto_its_first_stage_run_is_refused(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "rerank", "-d", work["ds"], "--run", work["run"], "--model", "minilm-l6",
                     "--out", work["run"])
    _one_error_line(code, err, "rerank", "input")


def test_train_output_folder_that_is_a_file_is_refused(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "train", "--train", work["gen"], "--out", work["file"], "--model", "minilm-l6")
    _one_error_line(code, err, "train", str(work["file"]), "folder")


def test_check_output_library_guard(work: dict[str, Path]) -> None:
    from inpars.errors import ConfigError

    with pytest.raises(ConfigError, match="input"):
        check_output(work["gen"], [str(work["gen"])])
    with pytest.raises(ConfigError, match="dataset"):
        check_output(work["ds"] / "corpus.jsonl", [], str(work["ds"]))
    # a new file beside the dataset's files is fine, and so is any path outside it
    assert check_output(work["tmp"] / "new.jsonl", [work["gen"]], str(work["ds"])) == work["tmp"] / "new.jsonl"


# -- file-system errors: one line, exit 2 ---------------------------------------------------------------

def test_fs_out_is_a_folder(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "filter", "-d", work["ds"], "--in", work["gen"], "--out", work["dir"], "--step", "none")
    _one_error_line(code, err, "filter", str(work["dir"]), "folder")


def test_fs_out_lies_under_a_file(capsys: Any, work: dict[str, Path]) -> None:
    out = work["file"] / "sub" / "x.jsonl"
    code, err = _cli(capsys, "filter", "-d", work["ds"], "--in", work["gen"], "--out", out, "--step", "none")
    _one_error_line(code, err, "filter", str(work["file"]), "is a file")


def test_fs_read_only_output_folder(capsys: Any, work: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ro = work["tmp"] / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real(p, mode, *a, **k))
    code, err = _cli(capsys, "filter", "-d", work["ds"], "--in", work["gen"], "--out", ro / "x.jsonl", "--step", "none")
    _one_error_line(code, err, "filter", str(ro), "not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes anything")
def test_fs_read_only_folder_for_real(capsys: Any, work: dict[str, Path]) -> None:
    ro = work["tmp"] / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = _cli(capsys, "retrieve", "-d", work["ds"], "--out", work["tmp"] / "r.trec", "--index-dir", ro / "idx")
        _one_error_line(code, err, "retrieve", str(ro))
    finally:
        ro.chmod(0o755)


def test_fs_read_only_cache(capsys: Any, work: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """$INPARS_CACHE (the index folder) cannot be created: the error names it."""
    cache = work["tmp"] / "cache"
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *a: Any, **k: Any) -> None:
        if str(self).startswith(str(cache)):
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setenv("INPARS_CACHE", str(cache))
    code, err = _cli(capsys, "retrieve", "-d", work["ds"], "--out", work["tmp"] / "r.trec")
    _one_error_line(code, err, "retrieve", str(cache), "permission denied")


def test_fs_unreadable_corpus(capsys: Any, work: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    corpus = str(work["ds"] / "corpus.jsonl")
    real_open = builtins.open

    def deny(file: Any, *a: Any, **k: Any) -> Any:
        if str(file) == corpus:
            raise PermissionError(13, "Permission denied", corpus)
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    code, err = _cli(capsys, "retrieve", "-d", work["ds"], "--out", work["tmp"] / "r.trec",
                     "--index-dir", work["tmp"] / "idx")
    _one_error_line(code, err, "retrieve", "corpus.jsonl", "permission denied")


def test_fs_corpus_is_a_folder(capsys: Any, work: dict[str, Path]) -> None:
    corpus = work["ds"] / "corpus.jsonl"
    corpus.unlink()
    corpus.mkdir()
    code, err = _cli(capsys, "retrieve", "-d", work["ds"], "--out", work["tmp"] / "r.trec",
                     "--index-dir", work["tmp"] / "idx")
    _one_error_line(code, err, "retrieve", "corpus.jsonl")


def test_fs_run_is_a_folder(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "evaluate", work["dir"], "-d", work["ds"])
    _one_error_line(code, err, "evaluate", str(work["dir"]), "folder")


def test_fs_markdown_is_a_folder(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "evaluate", work["run"], "-d", work["ds"], "--markdown", work["dir"])
    _one_error_line(code, err, "evaluate", "--markdown", str(work["dir"]))


def test_fs_markdown_and_json_same_file(capsys: Any, work: dict[str, Path]) -> None:
    out = work["tmp"] / "same.txt"
    code, err = _cli(capsys, "evaluate", work["run"], "-d", work["ds"], "--markdown", out, "--json", out)
    _one_error_line(code, err, "evaluate", "--markdown and --json")


def test_fs_config_is_a_folder(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "run", work["dir"])
    _one_error_line(code, err, "run", str(work["dir"]), "folder")


def test_fs_config_not_utf8(capsys: Any, work: dict[str, Path]) -> None:
    cfg = work["tmp"] / "latin1.yaml"
    cfg.write_bytes("dataset:\n  name: caf\xe9\n".encode("latin-1"))
    code, err = _cli(capsys, "run", cfg)
    _one_error_line(code, err, "run", str(cfg), "UTF-8")


@pytest.mark.parametrize("body", ["- a\n- b\n", "42\n", "dataset: 3\n"])
def test_config_that_is_not_a_mapping(capsys: Any, work: dict[str, Path], body: str) -> None:
    cfg = work["tmp"] / "c.yaml"
    cfg.write_text(body)
    code, err = _cli(capsys, "run", cfg, "--set", "seed=3")
    _one_error_line(code, err, "run", str(cfg))


def test_report_of_a_file_and_of_a_mistyped_path(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "report", work["file"])
    _one_error_line(code, err, "report", str(work["file"]))
    missing = work["tmp"] / "no-such-run"
    code, err = _cli(capsys, "report", missing)
    _one_error_line(code, err, "report", str(missing))
    assert not missing.exists()


# -- models and options ---------------------------------------------------------------------------------

def test_train_model_that_does_not_exist(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "train", "--train", work["gen"], "--out", work["tmp"] / "t", "--model", "/nonexistent/m")
    _one_error_line(code, err, "train", "--model", "/nonexistent/m")
    assert not (work["tmp"] / "t").exists()


def test_rerank_model_folder_that_is_not_a_model(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "rerank", "-d", work["ds"], "--run", work["run"], "--model", work["dir"],
                     "--out", work["tmp"] / "rr.trec")
    _one_error_line(code, err, "rerank", "--model", "config.json")


def test_unknown_hub_id_offline(capsys: Any, work: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _cli(capsys, "train", "--train", work["gen"], "--out", work["tmp"] / "t",
                     "--model", "no-such-org/no-such-model-xyz")
    _one_error_line(code, err, "train", "no-such-org/no-such-model-xyz", "offline")


@pytest.mark.parametrize("option,needle", [
    ("nope=1", "backend_options.nope"),
    ("concurrency=lots", "backend_options.concurrency"),
])
def test_bad_backend_option(capsys: Any, work: dict[str, Path], option: str, needle: str) -> None:
    code, err = _cli(capsys, "generate", "-d", work["ds"], "--out", work["tmp"] / "g.jsonl", "--backend", "openai",
                     "--model", "m", "--backend-option", option)
    _one_error_line(code, err, "generate", needle)
    assert not (work["tmp"] / "g.jsonl").exists()


@pytest.mark.parametrize("option,needle", [
    ("n_threads=abc", "expected int | None, got 'abc'"),  # an optional int: a string is no None
    ("n_threads=-3", "positive number of threads"),
    ("n_threads=100000", "threads"),
    ("decode_threads=0", "positive number of threads"),
    ("n_ctx=4", "n_ctx: expected 16.."),
])
def test_bad_llamacpp_option_is_refused_before_the_model_loads(
    capsys: Any, work: dict[str, Path], option: str, needle: str
) -> None:
    code, err = _cli(capsys, "generate", "-d", work["ds"], "--out", work["tmp"] / "g.jsonl", "--backend", "llamacpp",
                     "--model", "smollm2-135m", "--backend-option", option)
    _one_error_line(code, err, "generate", f"backend_options.{option.split('=')[0]}", needle)
    assert not (work["tmp"] / "g.jsonl").exists()


def test_unknown_backend_lists_the_available_ones() -> None:
    from inpars.errors import ConfigError
    from inpars.generation.base import get_backend

    with pytest.raises(ConfigError, match="available: .*llamacpp.*openai"):
        get_backend("no-such-backend", "m")


def test_unknown_irds_id(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "retrieve", "-d", "irds:no/such/dataset-xyz", "--out", work["tmp"] / "r.trec")
    _one_error_line(code, err, "retrieve")


@pytest.mark.parametrize("command", ["train", "rerank"])
def test_negative_threads(capsys: Any, work: dict[str, Path], command: str) -> None:
    argv: list[object] = (["train", "--train", work["gen"], "--out", work["tmp"] / "t"] if command == "train" else
            ["rerank", "-d", work["ds"], "--run", work["run"], "--model", "minilm-l6", "--out", work["tmp"] / "r"])
    code, err = _cli(capsys, *argv, "--threads", "-2")
    _one_error_line(code, err, command, "--threads")


def test_run_validates_models_and_steps_before_the_first_stage(capsys: Any, work: dict[str, Path]) -> None:
    run_dir = work["tmp"] / "run"
    cases: dict[str, dict[str, Any]] = {
        "train.model": {"train": {"model": "/nonexistent/model"}},
        "filter.steps.0.model": {"filter": {"steps": [{"name": "consistency", "model": "/nonexistent/ce"}]}},
        "generate.backend_options.nope": {"generate": {"backend": "openai", "model": "m",
                                                       "backend_options": {"nope": 1}}},
    }
    for key, section in cases.items():
        cfg = work["tmp"] / "c.yaml"
        cfg.write_text(json.dumps({"run_dir": str(run_dir), "dataset": {"name": str(work["ds"])}, **section}))
        code, err = _cli(capsys, "run", cfg)
        _one_error_line(code, err, "run", key)
        assert not run_dir.exists(), key  # nothing started: no stage folder, no config.json


# -- the boundary itself --------------------------------------------------------------------------------

def test_traceback_only_with_vv(capsys: Any, work: dict[str, Path]) -> None:
    argv = ["filter", "-d", work["ds"], "--in", work["gen"], "--out", work["dir"], "--step", "none"]
    code, err = _cli(capsys, *argv)
    assert code == 2 and "Traceback" not in err
    code, err = _cli(capsys, "-vv", *argv)
    assert code == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("inpars filter: error:")
    code, err = _cli(capsys, *argv, "-vv")  # after the subcommand too
    assert code == 2 and "Traceback" in err


def test_programming_error_is_one_line_with_exit_1(capsys: Any, work: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import inpars.filter

    def boom(*a: Any, **k: Any) -> None:
        raise KeyError("internal")

    monkeypatch.setattr(inpars.filter, "filter_queries", boom)
    code, err = _cli(capsys, "filter", "-d", work["ds"], "--in", work["gen"], "--out", work["tmp"] / "f.jsonl",
                     "--step", "none")
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error KeyError" in err and "-vv" in err


@pytest.mark.parametrize("exc,needle", [
    (PermissionError(13, "Permission denied", "/data/corpus.jsonl"), "/data/corpus.jsonl: permission denied"),
    (IsADirectoryError(21, "Is a directory", "/x/out"), "/x/out is a folder"),
    (NotADirectoryError(20, "Not a directory", "/x/f/y"), "/x/f/y: a part of this path is a file"),
    (OSError(28, "No space left on device", "/x/big"), "no space left"),
    (UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid start byte"), "not UTF-8"),
])
def test_describe_error_names_the_path(exc: BaseException, needle: str) -> None:
    code, line = describe_error(exc)
    assert code == 2 and needle in line and "\n" not in line


# -- secrets ----------------------------------------------------------------------------------------------

SECRET_URL = "http://someone:PASSWORD-123@127.0.0.1:9/v1?api_key=KEY-456"


def test_mask_secrets() -> None:
    masked = mask_secrets(f"POST {SECRET_URL}/completions token=TOK-789 Bearer sk-abc")
    for secret in ("PASSWORD-123", "KEY-456", "TOK-789", "sk-abc", "someone"):
        assert secret not in masked
    assert "127.0.0.1:9" in masked


@pytest.mark.parametrize("url", [
    "http://user:p@ssLEAK8@127.0.0.1:9/v1", "http://user:pa/ssLEAK8@127.0.0.1:9/v1",
    "http://user:pa#ssLEAK8@127.0.0.1:9/v1", "user:pa@ssLEAK8@127.0.0.1:9/v1",
    "http://user:pa@ss/w#rdLEAK8@127.0.0.1:9/v1",  # clients disagree on its host: refused
])
def test_a_password_holding_url_characters_never_shows(url: str, capsys: Any, work: dict[str, Path]) -> None:
    """'@', '/' or '#' in a password (unencoded), or no scheme: masked wherever the URL is printed, and a
    URL that does not parse is one user error (exit 2), never an internal one that prints it."""
    assert "LEAK8" not in mask_secrets(f"POST {url}/completions") and "127.0.0.1:9" in mask_secrets(url)
    pytest.importorskip("httpx")
    code, err = _cli(capsys, "generate", "-d", work["ds"], "--out", work["tmp"] / "g.jsonl", "--backend", "openai",
                     "--model", "m", "--n-docs", "1", "--backend-option", f"base_url={url}",
                     "--backend-option", "max_retries=0", "--backend-option", "timeout=1")
    assert code in (1, 2) and "LEAK8" not in err and "please report" not in err
    if "://" not in url or "#" in url or "/ss" in url or "/w#" in url:
        assert code == 2 and "base_url" in err


@pytest.mark.parametrize("value", ["sk-proj-AbCdEf0123456789xyzXYZ", "abcdef0123456789abcdef0123456789"])
def test_a_key_where_a_variable_name_belongs_is_refused_and_never_recorded(
    value: str, capsys: Any, work: dict[str, Path]
) -> None:
    pytest.importorskip("httpx")
    out = work["tmp"] / "k.jsonl"
    code, err = _cli(capsys, "generate", "-d", work["ds"], "--out", out, "--backend", "openai", "--model", "m",
                     "--n-docs", "1", "--backend-option", f"api_key_env={value}")
    assert code == 2 and "api_key_env" in err and value not in err
    assert not out.exists() and not list(work["tmp"].glob("k.jsonl*"))


def test_credentials_in_a_server_url_never_leave_memory(capsys: Any, work: dict[str, Path],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("httpx")
    out = work["tmp"] / "g.jsonl"
    with caplog.at_level("DEBUG"):
        code, err = _cli(capsys, "-vv", "generate", "-d", work["ds"], "--out", out, "--backend", "openai",
                         "--model", "m", "--n-docs", "2", "--no-progress", "--backend-option", f"base_url={SECRET_URL}",
                         "--backend-option", "max_retries=1", "--backend-option", "backoff=0.01",
                         "--backend-option", "timeout=2")
    assert code != 0  # nothing listens on port 9
    written = "".join(p.read_text(errors="replace") for p in work["tmp"].rglob("*") if p.is_file())
    for where, text in (("stderr", err), ("log", caplog.text), ("files", written)):
        assert "PASSWORD-123" not in text and "KEY-456" not in text, where


def test_run_masks_credentials_in_config_json_manifests_and_logs(capsys: Any, work: dict[str, Path],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from fakes import register_fake_backend

    register_fake_backend()
    run_dir = work["tmp"] / "run"
    cfg = work["tmp"] / "c.yaml"
    cfg.write_text(json.dumps({
        "run_dir": str(run_dir), "dataset": {"name": str(work["ds"])}, "retrieve": {"k": 5},
        "generate": {"backend": "fake", "model": "none", "backend_options": {"base_url": SECRET_URL}},
    }))
    with caplog.at_level("DEBUG"):
        code, err = _cli(capsys, "-vv", "run", cfg, "--until", "retrieve")
    assert code == 0, err
    config = json.loads((run_dir / "config.json").read_text())
    assert config["generate"]["backend_options"]["base_url"] == mask_secrets(SECRET_URL)
    written = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*.json"))
    for where, text in (("stderr", err), ("log", caplog.text), ("files", written)):
        assert "PASSWORD-123" not in text and "KEY-456" not in text, where


@pytest.mark.parametrize("grade", ["inf", "1e400", "-inf"])
def test_a_non_finite_grade_is_one_user_error_naming_the_line(grade: str, capsys: Any, work: dict[str, Path]) -> None:
    qrels = work["tmp"] / "q.tsv"
    qrels.write_text(f"query-id\tcorpus-id\tscore\nq3\td5\t1\nq3\td2\t{grade}\n")
    code, err = _cli(capsys, "evaluate", "--qrels", qrels, work["run"])
    _one_error_line(code, err, "evaluate", f"{qrels}:3", "relevance")


def test_corrupt_compressed_input_and_deep_nesting_are_user_errors(capsys: Any, work: dict[str, Path]) -> None:
    import gzip

    from inpars.safety import describe_error

    good = gzip.compress(work["run"].read_bytes())
    bad = work["tmp"] / "run.trec.gz"
    bad.write_bytes(good[:12] + b"\x00" * 8 + good[20:])  # a damaged deflate body
    code, err = _cli(capsys, "evaluate", "--dataset", work["ds"], bad)
    assert code == 2 and "please report" not in err and "Traceback" not in err
    assert describe_error(RecursionError("maximum recursion depth exceeded"))[0] == 2


def test_silent_wrong_results_are_refused(capsys: Any, work: dict[str, Path], tmp_path_factory: Any) -> None:
    """A 'nan' score in a run (measures would rank it first or last at will), and a model folder without
    its tokenizer (every text read as unknown tokens): one user error each, before any work."""
    import shutil

    from fakes import tiny_cross_encoder

    nan_run = work["tmp"] / "nan.trec"
    nan_run.write_text("q3 Q0 d5 1 nan x\nq3 Q0 d2 2 1.0 x\n")
    code, err = _cli(capsys, "evaluate", "--dataset", work["ds"], nan_run)
    _one_error_line(code, err, "evaluate", f"{nan_run}:1", "finite")
    model = Path(tiny_cross_encoder(tmp_path_factory.mktemp("no_tok")))
    for f in model.iterdir():
        if "token" in f.name or f.name.startswith(("vocab", "special")):
            f.unlink() if f.is_file() else shutil.rmtree(f)
    code, err = _cli(capsys, "rerank", "-d", work["ds"], "--run", work["run"], "--model", model,
                     "--out", work["tmp"] / "r.trec")
    _one_error_line(code, err, "rerank", "no tokenizer files")


def test_selection_options_given_as_flags_are_checked_with_the_method(capsys: Any, work: dict[str, Path]) -> None:
    """`--doc-selection ids --selection-option 'doc_ids=[...]'`, the documented form, was refused ("got None")
    because the config was validated before the options were merged in."""
    from fakes import register_fake_backend

    register_fake_backend()
    out = work["tmp"] / "ids.jsonl"
    code, err = _cli(capsys, "generate", "-d", work["ds"], "--backend", "fake", "--model", "none", "--doc-selection",
                     "ids", "--selection-option", 'doc_ids=["d2", "d4"]', "--out", out)
    assert code == 0, err
    assert [json.loads(x)["doc_id"] for x in out.read_text().splitlines()] == ["d2", "d4"]


def test_a_quoted_tilde_in_an_output_is_refused(capsys: Any, work: dict[str, Path]) -> None:
    code, err = _cli(capsys, "retrieve", "--dataset", work["ds"], "--out", "~/bm25.trec")
    _one_error_line(code, err, "retrieve", "'~' was not expanded")
    assert not Path("~").exists()


@pytest.mark.parametrize("step,needle", [
    ("reranker:model=minilm-l6,top_k=1,threads=-3", "option threads -3: expected at least 1"),
    ("consistency:threads=-3", "option threads -3"),
    ("reranker:model=minilm-l6,top_k=1,threads=100000", "option threads 100000: more than"),
    ("reranker:model=minilm-l6,top_k=1,device=banana", "option device 'banana': expected cpu, cuda"),
    ("reranker:model=minilm-l6,top_k=1,max_length=100000000", "option max_length 100000000: expected 16.."),
    ("reranker:model=minilm-l6,top_k=1,batch_size=0", "option batch_size 0"),
])
def test_a_filter_steps_scorer_options_are_bounded(capsys: Any, work: dict[str, Path], step: str, needle: str) -> None:
    out = work["tmp"] / "f.jsonl"
    code, err = _cli(capsys, "filter", "-d", work["ds"], "--in", work["gen"], "--out", out, "--step", step)
    _one_error_line(code, err, "filter", needle)
    assert not out.exists()


def test_a_cuda_device_the_machine_lacks_is_refused_before_loading(monkeypatch: Any) -> None:
    import torch

    from inpars.errors import ConfigError
    from inpars.rerank import load_scorer

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="device cuda:7: this machine has CUDA devices 0..0 only"):
        load_scorer("minilm-l6", device="cuda:7")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device cuda: this machine has no CUDA device"):
        load_scorer("minilm-l6", device="cuda")


@pytest.mark.parametrize("option,needle", [
    ("runtime_env=abc", "executor_options.runtime_env: expected a mapping"),
    ("address=3", "executor_options.address: expected a string"),
])
def test_bad_ray_options_are_refused_before_ray_starts(
    capsys: Any, work: dict[str, Path], monkeypatch: Any, option: str, needle: str
) -> None:
    import inpars.ray_cluster as rc

    monkeypatch.setattr(rc, "import_ray", lambda purpose: pytest.fail("Ray was started"))
    code, err = _cli(capsys, "generate", "-d", work["ds"], "--out", work["tmp"] / "g.jsonl", "--backend", "openai",
                     "--model", "m", "--executor", "ray", "--executor-option", option)
    _one_error_line(code, err, "generate", needle)


def test_a_non_finite_ray_resource_is_refused() -> None:
    from inpars.errors import ConfigError
    from inpars.ray_cluster import check_options

    with pytest.raises(ConfigError, match="executor_options.gpus_per_actor: expected a finite number"):
        check_options("ray", {"gpus_per_actor": float("inf")})
