"""Export synthetic data: a Hugging Face dataset folder, or the original InPars toolkit's training TSV.

A dataset folder holds one Parquet file per configuration and a ``README.md`` dataset card:

- ``queries/train-00000-of-00001.parquet``: the synthetic queries (``doc_id``, ``query``, ``query_index``,
  ``log_probs``, ``mean_log_prob``, ``flags``, ``filter_scores`` as a JSON string, ``model``, and the
  document text as ``document`` when the generation file holds it);
- ``training/train-00000-of-00001.parquet``: training groups (``query_id``, ``query``, ``pos_doc_id``,
  ``positive``, ``neg_doc_ids``, ``negatives``).

The card's YAML header names both configurations, so ``datasets.load_dataset(FOLDER, "queries")`` and
``datasets.load_dataset("parquet", data_files=FOLDER + "/queries/*.parquet")`` both load it. It states
the generator (model, backend, prompt and settings from the generation's ``.meta.json``), one prompt as
sent, and the filter steps (from the filter's ``.report.json``); the corpus licence is not known here, so
unless ``license`` is given the card says ``unknown`` and asks for it to be set before publishing.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.errors import InputError
from inpars.records import GeneratedQuery, TrainingExample

log = logging.getLogger(__name__)

EXPORT_FORMATS: tuple[str, ...] = ("hf", "original-triples", "original-pairs")
PARQUET_NAME = "train-00000-of-00001.parquet"


@dataclass
class Provenance:
    """What the card says about how the data was made (each part optional)."""

    generation: dict[str, Any] = field(default_factory=dict)
    filter_steps: list[dict[str, Any]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    prompt_example: str = ""
    sources: list[str] = field(default_factory=list)


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def provenance(generated: str | Path | None, queries: list[GeneratedQuery]) -> Provenance:
    """Read the filter report (``X.report.json``) and the generation settings (``X.meta.json``) that
    the stages write beside their outputs, following the report's ``input`` back to the generation."""
    prov = Provenance()
    prov.models = sorted({str(q.extra["model"]) for q in queries if q.extra.get("model")})
    prov.prompt_example = next((q.prompt_text for q in queries if q.prompt_text), "")
    if generated is None:
        return prov
    path = Path(generated)
    report = _load_json(path.with_name(path.stem + ".report.json"))
    if report:
        prov.sources.append(str(path.with_name(path.stem + ".report.json")))
        prov.filter_steps = [s for s in report.get("steps", []) if isinstance(s, dict)]
        if report.get("input"):
            path = _locate(Path(str(report["input"])), path.parent)
    meta = _load_json(path.with_name(path.name + ".meta.json"))
    if meta:
        prov.sources.append(str(path.with_name(path.name + ".meta.json")))
        prov.generation = dict(meta.get("params") or {})
    return prov


def _locate(path: Path, beside: Path) -> Path:
    """``path`` as recorded (relative to where the stage ran), else found from ``beside``'s parent."""
    if path.is_absolute() or path.exists():
        return path
    for i in range(len(path.parts)):
        candidate = beside.parent / Path(*path.parts[i:])
        if candidate.exists():
            return candidate
    return path


def _query_rows(queries: list[GeneratedQuery]) -> list[dict[str, Any]]:
    rows = []
    for q in queries:
        mean = q.mean_log_prob
        doc = q.extra.get("text", q.extra.get("doc_text"))
        rows.append({
            "doc_id": q.doc_id, "query": q.query, "query_index": q.query_index, "log_probs": q.log_probs,
            "mean_log_prob": mean if math.isfinite(mean) else None, "flags": q.flags,
            "filter_scores": json.dumps(q.filter_scores, sort_keys=True), "model": str(q.extra.get("model") or ""),
            "document": doc if isinstance(doc, str) else None,
        })
    if all(r["document"] is None for r in rows):
        for r in rows:
            del r["document"]
    return rows


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(path))


def _card(name: str, configs: dict[str, int], prov: Provenance, license: str | None) -> str:
    from inpars import __version__

    lic = license or "unknown"
    header = ["---", f"license: {lic}", "task_categories:", "- text-retrieval", "tags:", "- synthetic",
              "- inpars", "configs:"]
    for config in configs:
        header += [f"- config_name: {config}", "  data_files:", "  - split: train", f"    path: {config}/*.parquet"]
    header.append("---")
    g = prov.generation
    lines = [f"# {name}", "", f"Synthetic retrieval data written by inpars {__version__} (InPars-style: queries "
             "generated by a language model for corpus documents, without human relevance labels).", ""]
    lines += [f"- `{c}`: {n} rows" for c, n in configs.items()]
    lines += ["", "## Generator", ""]
    models = [str(g["model"])] if g.get("model") else prov.models
    lines.append(f"- model: {', '.join(models) or 'not recorded'}")
    for key in ("backend", "prompt", "queries_per_doc", "n_examples", "max_doc_tokens", "max_new_tokens",
                "temperature", "top_p", "chat", "seed", "dataset"):
        if key in g and g[key] is not None:
            lines.append(f"- {key}: {g[key]}")
    if prov.prompt_example:
        lines += ["", "One prompt as sent to the model:", "", "```text", prov.prompt_example.rstrip(), "```"]
    lines += ["", "## Filter", ""]
    if prov.filter_steps:
        for s in prov.filter_steps:
            lines.append(f"- {s.get('name', '?')}: {s.get('n_in', '?')} -> {s.get('n_out', '?')} queries "
                         f"(parameters: `{json.dumps(s.get('params', {}), sort_keys=True)}`)")
    else:
        lines.append("- no filter report found: unfiltered, or filtered elsewhere")
    lines += ["", "## Licence", ""]
    if license:
        lines.append(f"Declared by the exporter: {license}.")
    else:
        lines.append("Not known to the exporter: the queries and documents derive from the corpus, whose licence "
                     "(and the generator model's terms) apply. Set the licence (`license:` above) before "
                     "publishing.")
    if prov.sources:
        lines += ["", "Provenance read from: " + ", ".join(f"`{s}`" for s in prov.sources) + "."]
    return "\n".join(header + lines) + "\n"


def export_hf(
    out: str | Path,
    *,
    generated: str | Path | None = None,
    train: str | Path | None = None,
    name: str | None = None,
    license: str | None = None,
) -> dict[str, int]:
    """Write a Hugging Face dataset folder (Parquet + README.md card); returns rows per configuration.

    ``out`` must not exist yet (inputs are never overwritten); it appears complete or not at all.
    """
    if generated is None and train is None:
        raise InputError("nothing to export: give generated queries and/or training examples")
    target = Path(out)
    if target.exists():
        raise InputError("already exists; choose a new folder (nothing is overwritten)", path=target)
    from inpars.generate import read_generated
    from inpars.training.common import load_training_examples

    queries = read_generated(generated) if generated is not None else []
    examples: list[TrainingExample] = load_training_examples(train) if train is not None else []
    target.parent.mkdir(parents=True, exist_ok=True)
    configs: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        root = Path(tmp) / "dataset"
        if generated is not None:
            if not queries:
                raise InputError("no generated query in the file", path=generated)
            _write_parquet(_query_rows(queries), root / "queries" / PARQUET_NAME)
            configs["queries"] = len(queries)
        if examples:
            _write_parquet([ex.to_json() for ex in examples], root / "training" / PARQUET_NAME)
            configs["training"] = len(examples)
        card = _card(name or target.name, configs, provenance(generated, queries), license)
        (root / "README.md").write_text(card, encoding="utf-8")
        shutil.move(str(root), str(target))
    return configs


def export_original(out: str | Path, train: str | Path, fmt: str = "original-triples") -> int:
    """Write training examples (any format ``inpars train`` reads) as the original toolkit's triples or
    pairs TSV; returns the lines written."""
    from inpars.formats import write_pairs, write_triples
    from inpars.training.common import load_training_examples

    if Path(out).resolve() == Path(train).resolve():
        raise InputError("the output would overwrite the input", path=out)
    examples = load_training_examples(train)
    if fmt == "original-triples":
        return write_triples(out, examples)
    if fmt == "original-pairs":
        return write_pairs(out, examples)
    raise InputError(f"unknown export format '{fmt}' (one of {', '.join(EXPORT_FORMATS)})")
