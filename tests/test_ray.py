"""Generation on a local Ray cluster (``executor: ray``): 2 CPUs, 2 actors, the fake backend.

One module-scoped cluster; the actors' backend is :class:`ray_helpers.ArmedFakeBackend` (the fake backend
of the fast tier, able to kill its worker or raise once on a chosen document).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from conftest import generated_records, write_beir  # noqa: E402
from fakes import register_fake_backend  # noqa: E402
from inpars.errors import ConfigError  # noqa: E402
from inpars.generate import generate_queries  # noqa: E402
from ray_helpers import ARM_ENV  # noqa: E402

TESTS = Path(__file__).resolve().parent
N_DOCS = 20


@pytest.fixture(scope="module")
def beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = [
        {"_id": f"d{i:02d}", "title": f"Topic {i}",
         "text": f"word{i} " + " ".join(f"term{(i * 7 + k) % 31}" for k in range(12)) + "."}
        for i in range(N_DOCS)
    ]
    docs[5]["text"] += " Line\u2028separator and next\x85line."  # line breaks other than \n inside JSON strings
    queries = [{"_id": "q1", "text": "term1"}]
    return write_beir(tmp_path_factory.mktemp("ray_beir") / "tiny", docs, queries, {"test": [("q1", "d01", 1)]})


KW: dict[str, Any] = dict(backend="fake", model="fake", n_docs=N_DOCS, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def reference(beir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    register_fake_backend()
    out = tmp_path_factory.mktemp("local") / "q.jsonl"
    generate_queries(beir, out, **KW)
    return generated_records(out)


@pytest.mark.parametrize("sampling", [False, True], ids=["greedy", "sampled"])
def test_ray_writes_the_single_process_records_in_order(
    cluster: Path, beir: Path, tmp_path: Path, sampling: bool
) -> None:
    register_fake_backend()
    kw = {**KW, "temperature": 0.7, "queries_per_doc": 2} if sampling else KW
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    generate_queries(beir, local, **kw)
    s = generate_queries(beir, remote, executor="ray", executor_options={"actors": 2}, **kw)
    assert s.n_generated == s.n_queries == N_DOCS * kw.get("queries_per_doc", 1)
    assert generated_records(remote) == generated_records(local)
    assert len(generated_records(remote)) == len({(r["doc_id"], r["query_index"]) for r in generated_records(remote)})
    # a rerun has nothing left to do
    again = generate_queries(beir, remote, executor="ray", executor_options={"actors": 2}, **kw)
    assert again.n_generated == 0 and again.n_skipped_existing == s.n_queries


def test_killed_worker_is_restarted_and_its_batch_retried(
    cluster: Path, beir: Path, tmp_path: Path, reference: list[dict[str, Any]]
) -> None:
    cluster.write_text("exit word7", encoding="utf-8")
    out = tmp_path / "q.jsonl"
    s = generate_queries(beir, out, executor="ray", executor_options={"actors": 2}, **KW)
    assert not cluster.exists(), "the armed worker never ran"
    assert s.n_generated == N_DOCS and generated_records(out) == reference
    again = generate_queries(beir, out, executor="ray", executor_options={"actors": 2}, **KW)
    assert again.n_generated == 0


def test_failed_batch_stops_the_run_and_a_rerun_finishes_only_the_rest(
    cluster: Path, beir: Path, tmp_path: Path, reference: list[dict[str, Any]]
) -> None:
    cluster.write_text("raise word13", encoding="utf-8")
    out = tmp_path / "q.jsonl"
    with pytest.raises(Exception, match="injected failure"):
        generate_queries(beir, out, executor="ray", executor_options={"actors": 2}, **KW)
    partial = generated_records(out) if out.is_file() else []
    assert partial == reference[: len(partial)]  # a prefix, in order
    assert not any(r["doc_id"] == reference[len(partial)]["doc_id"] for r in partial)
    s = generate_queries(beir, out, executor="ray", executor_options={"actors": 2}, **KW)
    assert s.n_skipped_existing == len(partial) and s.n_generated == N_DOCS - len(partial)
    assert generated_records(out) == reference


def test_worker_killed_without_restarts_fails_and_a_rerun_finishes_only_the_rest(
    cluster: Path, beir: Path, tmp_path: Path, reference: list[dict[str, Any]]
) -> None:
    cluster.write_text("exit word11", encoding="utf-8")
    out = tmp_path / "q.jsonl"
    with pytest.raises(Exception):  # noqa: B017 - Ray reports the dead actor with its own exception types
        generate_queries(beir, out, executor="ray", executor_options={"actors": 2, "max_restarts": 0}, **KW)
    assert not cluster.exists(), "the armed worker never ran"
    partial = generated_records(out) if out.is_file() else []
    assert partial == reference[: len(partial)] and len(partial) < N_DOCS
    assert not any(r["doc_id"] == "d11" for r in partial)
    s = generate_queries(beir, out, executor="ray", executor_options={"actors": 2}, **KW)
    assert s.n_skipped_existing == len(partial) and s.n_generated == N_DOCS - len(partial)
    assert generated_records(out) == reference


# A driver that joins the test cluster and dies (os._exit: no cleanup, like SIGKILL) in the middle of
# writing its 7th record, leaving half a line in the output file.
KILLED_DRIVER = """
import json, os, sys
from fakes import register_fake_backend
from inpars import io
from inpars.generate import generate_queries

beir, out, address, env = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
register_fake_backend()
write, written = io.JsonlAppender.write, []

def dying_write(self, record):
    if len(written) == 6:
        self._f.write(json.dumps(record)[:15])
        self._f.flush()
        os._exit(9)
    written.append(record)
    write(self, record)

io.JsonlAppender.write = dying_write
generate_queries(beir, out, backend="fake", model="fake", n_docs=20, batch_size=2, progress=False,
                 executor="ray", executor_options={"actors": 2, "address": address, "runtime_env": env})
"""


def test_killed_driver_loses_nothing_and_a_rerun_finishes_only_the_rest(
    cluster: Path, beir: Path, tmp_path: Path, reference: list[dict[str, Any]]
) -> None:
    import subprocess
    import sys

    assert KW["n_docs"] == N_DOCS == 20 and KW["batch_size"] == 2  # the values the driver script uses
    out = tmp_path / "q.jsonl"
    pythonpath = os.pathsep.join([str(TESTS), str(TESTS.parent / "src"), os.environ.get("PYTHONPATH", "")])
    env = {"worker_process_setup_hook": "ray_helpers.setup",
           "env_vars": {"PYTHONPATH": pythonpath, ARM_ENV: str(cluster), "TOKENIZERS_PARALLELISM": "false"}}
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_DRIVER, str(beir), str(out), address, json.dumps(env)],
        env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    raw = out.read_text(encoding="utf-8")
    assert not raw.endswith("\n")  # the driver died in the middle of a line
    s = generate_queries(beir, out, executor="ray", executor_options={"actors": 2}, **KW)
    assert s.n_skipped_existing == 6 and s.n_generated == N_DOCS - 6
    assert generated_records(out) == reference


def test_local_run_resumed_on_ray_and_bad_options(
    cluster: Path, beir: Path, tmp_path: Path, reference: list[dict[str, Any]]
) -> None:
    register_fake_backend()
    out = tmp_path / "q.jsonl"
    generate_queries(beir, out, **{**KW, "n_docs": 7})  # a smaller local run, then extended on Ray
    generate_queries(beir, out, executor="ray", **KW)
    assert generated_records(out) == reference
    with pytest.raises(ConfigError, match="executor_options.actor"):
        generate_queries(beir, tmp_path / "x.jsonl", executor="ray", executor_options={"actor": 2}, **KW)


@pytest.mark.slow
def test_llamacpp_on_ray_writes_the_records_of_one_process(cluster: Path, beir: Path, tmp_path: Path) -> None:
    """Real llama.cpp: 2 actors with 1 prompt thread each write what one process with 2 threads writes
    (decoding on its default single thread, no prompt cache, flash attention off: see
    inpars.generation.ray_engine)."""
    pytest.importorskip("xllamacpp")
    kw: dict[str, Any] = dict(
        backend="llamacpp", model="smollm2-135m", n_docs=2, batch_size=1, progress=False, max_doc_tokens=48,
        max_new_tokens=12, temperature=0.7, queries_per_doc=2, prompt="inpars",
    )
    options = {"n_ctx": 1024, "flash_attn": "off", "cache_prompt": False}
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    generate_queries(beir, local, backend_options={**options, "n_threads": 2}, **kw)
    generate_queries(beir, remote, backend_options=options, executor="ray", executor_options={"actors": 2}, **kw)
    def values(path: Path) -> list[dict[str, Any]]:  # what was generated, not how much came from the cache
        return [{k: v for k, v in r.items() if k != "cached_tokens"} for r in generated_records(path)]

    assert values(remote) == values(local)
    assert len(values(local)) == 4


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch, beir: Path, tmp_path: Path) -> None:
    import sys

    from inpars.errors import MissingExtraError

    register_fake_backend()
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"inpars-toolkit\[ray\]"):
        generate_queries(beir, tmp_path / "q.jsonl", executor="ray", **KW)


def test_an_actor_gives_torch_its_share_of_the_cores(beir: Path) -> None:
    """A backend without an ``n_threads`` option (transformers) still runs torch on the actor's share."""
    import torch

    from inpars.datasets import load_dataset
    from inpars.generation.ray_engine import GenerateActor

    register_fake_backend()
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        GenerateActor("fake", "fake", {}, load_dataset(beir), {}, threads=1)
        assert torch.get_num_threads() == 1
        GenerateActor("fake", "fake", {"n_threads": 2}, load_dataset(beir), {}, threads=1)
        assert torch.get_num_threads() == 2  # the backend's own thread setting comes first
    finally:
        torch.set_num_threads(n)
