"""Reports of a pipeline run: Markdown and HTML with the metrics table against BM25 (with significance),
a per-query difference plot, a metric-by-stage plot, filter statistics, sample generated queries and
stage timings. ``inpars report RUN_DIR`` rebuilds it from the stage folders alone.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from inpars.errors import InputError
from inpars.io import atomic_write, read_jsonl, write_json
from inpars.layout import OUTPUTS, STAGES, stage_dir
from inpars.manifest import MANIFEST, PENDING

log = logging.getLogger(__name__)


def _load_json(path: Path) -> Any:
    """A JSON object from a file of the run; an unreadable or non-object file is an InputError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason}); the file is damaged", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg}); the file is damaged", path=path, line=exc.lineno) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}; the file is damaged", path=path)
    return data


#: the manifest fields the report reads, and the types they must have (None allowed for each)
_MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "seconds": (int, float), "finished": (str,), "resumed": (bool,), "summary": (dict,)}


def _load_manifest(path: Path) -> dict[str, Any]:
    m = _load_json(path)
    for key, types in _MANIFEST_TYPES.items():
        value = m.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
            raise InputError(f"expected {' or '.join(t.__name__ for t in types)}, got {value!r:.40}; the manifest "
                             "is damaged (run the stage again with --force)", path=path, field=key)
    return m


def _stage_folders(run_dir: Path) -> dict[str, Path]:
    return {s: stage_dir(run_dir, s) for s in STAGES}


def _output(folders: dict[str, Path], stage: str, key: str) -> Path:
    return folders[stage] / OUTPUTS[stage][key]


def collect(run_dir: str | Path) -> dict[str, Any]:
    """Gather what the report shows from a run folder (missing stages are left out)."""
    run_dir = Path(run_dir)
    folders = _stage_folders(run_dir)
    info: dict[str, Any] = {"run_dir": str(run_dir), "timings": [], "config": None}
    if (run_dir / "config.json").is_file():
        info["config"] = _load_json(run_dir / "config.json")
    for name, folder in folders.items():
        mpath = folder / MANIFEST
        if name != "report" and mpath.is_file():
            m = _load_manifest(mpath)
            info["timings"].append({"stage": name, "seconds": m.get("seconds"), "finished": m.get("finished"),
                                    "resumed": m.get("resumed") or False, "summary": m.get("summary") or {}})
    metrics = _output(folders, "evaluate", "metrics")
    if metrics.is_file():
        info["metrics"] = _load_json(metrics)
        md = _output(folders, "evaluate", "markdown")
        info["metrics_md"] = md.read_text(encoding="utf-8") if md.is_file() else ""
    freport = _output(folders, "filter", "report")
    if freport.is_file():
        info["filter_report"] = _load_json(freport)
    queries = _output(folders, "generate", "queries")
    if queries.is_file():
        samples = []
        for _, obj in read_jsonl(queries, skip_truncated_tail=True):
            samples.append(obj)
            if len(samples) >= 10:
                break
        info["samples"] = samples
    rr = folders["rerank"] / MANIFEST
    if rr.is_file():
        info["rerank"] = _load_manifest(rr).get("summary") or {}
    fusion = _output(folders, "rerank", "fusion")
    if fusion.is_file():
        info["fusion"] = _load_json(fusion)
    ranker = _output(folders, "rerank", "ranker")
    if ranker.is_file():
        info["ranker"] = _load_json(ranker)
    return info


def _per_query(metrics: dict[str, Any], run: str, measure: str) -> dict[str, float]:
    return {q: float(v) for q, v in metrics.get("per_query", {}).get(run, {}).get(measure, {}).items()}


def plot_per_query(metrics: dict[str, Any], measure: str, baseline: str, out: Path) -> list[Path]:
    """Sorted per-query differences of each run against the baseline: one PNG per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    base = _per_query(metrics, baseline, measure)
    for run in metrics.get("per_query", {}):
        if run == baseline:
            continue
        vals = _per_query(metrics, run, measure)
        diffs = sorted(vals.get(q, 0.0) - base.get(q, 0.0) for q in base)
        if not diffs:
            continue
        fig, ax = plt.subplots(figsize=(8, 3.2))
        colors = ["#2a9d8f" if d > 0 else "#e76f51" if d < 0 else "#999999" for d in diffs]
        ax.bar(range(len(diffs)), diffs, color=colors, width=1.0)
        ax.axhline(0, color="black", lw=0.6)
        better = sum(d > 0 for d in diffs)
        worse = sum(d < 0 for d in diffs)
        ax.set_title(f"{measure}: {run} - {baseline} per query ({better} better, {worse} worse)")
        ax.set_xlabel("queries (sorted)")
        ax.set_ylabel(f"delta {measure}")
        fig.tight_layout()
        path = out / f"per_query_{run}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_by_stage(metrics: dict[str, Any], measures: list[str], out: Path) -> Path | None:
    """Each measure for each run, in pipeline order (BM25 -> reranked -> interpolated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = metrics.get("aggregate", {})
    runs = list(agg)
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(measures))
    for i, m in enumerate(measures):
        ax.bar([r + i * width for r in range(len(runs))], [agg[run].get(m, 0.0) for run in runs], width, label=m)
    ax.set_xticks([r + width * (len(measures) - 1) / 2 for r in range(len(runs))], runs)
    ax.set_ylim(0, 1)
    ax.set_title("metric by stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "by_stage.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(info: dict[str, Any], images: list[Path]) -> str:
    lines = [f"# inpars report: {info['run_dir']}", ""]
    cfg = info.get("config") or {}
    lines += _unfinished(info)
    lines += _verdict(info)
    if cfg:
        g = cfg.get("generate", {})
        lines += [
            "## Run", "",
            f"Dataset `{cfg.get('dataset', {}).get('name')}`, "
            + (f"evaluated on split `{cfg['dataset']['eval_split']}`" if cfg.get("dataset", {}).get("eval_split")
               else "no judged split (not evaluated)")
            + f"; generator `{g.get('backend')}:{g.get('model')}` "
            f"with prompt `{g.get('prompt')}` on {_generated_docs(info, g.get('n_docs'))} documents; reranker "
            f"`{cfg.get('train', {}).get('model')}` ({cfg.get('train', {}).get('model_type')}); seed {cfg.get('seed')}.",
            "",
        ]
    if info.get("metrics_md"):
        lines += ["## Effectiveness", "", info["metrics_md"].strip(), ""]
    lines += _fusion(info.get("fusion"))
    for img in images:
        lines += [f"![{img.stem}]({img.name})", ""]
    fr = info.get("filter_report")
    if fr:
        lines += ["## Filtering", "", f"Kept {fr.get('n_kept')} of {fr.get('n_input')} generated queries.", "",
                  "| step | in | out | removed, by reason |", "|---|---|---|---|"]
        for step in fr.get("steps", []):
            why = ", ".join(f"{r} {n}" for r, n in sorted(step.get("removed", {}).items(), key=lambda kv: -kv[1]))
            lines.append(f"| {step.get('name')} | {step.get('n_in')} | {step.get('n_out')} | {why or '-'} |")
        lines.append("")
    if info.get("samples"):
        lines += ["## Sample generated queries", "", "| doc_id | query | mean log-prob |", "|---|---|---|"]
        for s in info["samples"]:
            lp = s.get("log_probs") or []
            mean = sum(lp) / len(lp) if lp else float("nan")
            q = str(s.get("query", "")).replace("|", "\\|")
            lines.append(f"| {s.get('doc_id')} | {q} | {mean:.3f} |")
        lines.append("")
    if info.get("timings"):
        lines += ["## Stage timings", "", "| stage | seconds | finished | resumed |", "|---|---|---|---|"]
        total = 0.0
        for t in info["timings"]:
            total += t["seconds"] or 0.0
            lines.append(f"| {t['stage']} | {t['seconds']:.1f} | {t['finished']} | {t['resumed']} |")
        lines += [f"| total | {total:.1f} | | |", ""]
    return "\n".join(lines)


def expected_stages(cfg: dict[str, Any]) -> list[str]:
    """The stages a run of ``cfg`` (its ``config.json``) runs: no training with a given ``rerank.model``, no
    synthetic queries when nothing trains or tunes on them, no evaluation without a judged split."""
    rerank = cfg.get("rerank", {})
    training = not rerank.get("model")
    synthesizing = training or (rerank.get("interpolate", True) and not rerank.get("tune_split"))
    skip = set() if synthesizing else {"generate", "filter", "negatives"}
    skip |= set() if training else {"train"}
    skip |= set() if cfg.get("dataset", {}).get("eval_split") else {"evaluate"}
    return [s for s in STAGES if s != "report" and s not in skip]


def _unfinished(info: dict[str, Any]) -> list[str]:
    """A line naming the stages of a run that have not finished (interrupted, or not reached)."""
    cfg = info.get("config") or {}
    done = {t["stage"] for t in info.get("timings", [])}
    run_dir = Path(info["run_dir"])
    missing = []
    for stage in expected_stages(cfg):
        if stage not in done:
            interrupted = (stage_dir(run_dir, stage) / PENDING).is_file()
            missing.append(f"{stage} ({'interrupted' if interrupted else 'not run yet'})")
    if not missing:
        return []
    return [f"**Unfinished run**: {', '.join(missing)}; `inpars run` again finishes it.", ""]


def _verdict(info: dict[str, Any]) -> list[str]:
    """The report's first section: what was decided without labels, on what evidence, and what to use."""
    cfg = info.get("config") or {}
    fusion = info.get("fusion") or {}
    ranker = info.get("ranker") or {}
    if not (cfg and ranker):
        return []
    splits = cfg.get("label_splits") or []
    lines = ["## Verdict", ""]
    lines.append("- Label-free: no stage but evaluation read a relevance judgement." if not splits else
                 f"- Supervised: the run read the judgements of {', '.join(f'`{s}`' for s in splits)} outside "
                 "evaluation.")
    where = fusion.get("tuned_on", "pseudo-dev")
    model = f"`{ranker.get('model')}` ({ranker.get('model_type')})"
    if fusion.get("reason"):
        lines.append(f"- Model: {model}; {fusion['reason']}.")
    else:
        lines.append(f"- Model: {model}.")
    alpha = ranker.get("alpha")
    if alpha is None:
        lines.append(f"- Ranking: BM25's top {ranker.get('depth')} reranked by the model (no fusion).")
    else:
        how = {"given": "given in the config", "fallback": "the default, without a choice"}.get(
            fusion.get("alpha_source", "tuned"), f"the best on `{where}`")
        lines.append(f"- Ranking: BM25's top {ranker.get('depth')} reranked and fused with BM25 at weight "
                     f"{alpha:g} ({how}).")
    ev = fusion.get("evidence") or {}
    if ev.get("gain") is not None:
        ci = ev.get("ci95")
        interval = f", 95% interval {ci[0]:+.4f} to {ci[1]:+.4f}" if ci else ""
        kind = "synthetic queries, each judged by its source document" if not fusion.get("supervised") else "queries"
        lines.append(f"- On `{where}` ({ev['queries']} {kind}): {fusion.get('measure', 'nDCG@10')} "
                     f"{ev['mean']:.4f} against BM25 {ev['baseline']:.4f}, {ev['gain']:+.4f}{interval}, "
                     f"p = {ev['p']:.3g}.")
    lines += _judged_gain(info)
    lines.append(f"- Use it: `inpars search {info['run_dir']} --queries QUERIES.tsv --out run.trec` "
                 "(or `inpars.Ranker.load(...)` in Python).")
    lines.append("")
    return lines


def _judged_gain(info: dict[str, Any]) -> list[str]:
    cfg = info.get("config") or {}
    metrics = info.get("metrics")
    split = cfg.get("dataset", {}).get("eval_split")
    if not metrics:
        return ["- Judgements: none for this collection, so no effectiveness figure on real queries."
                if not split else "- Judgements: not evaluated yet."]
    agg, pv = metrics.get("aggregate", {}), metrics.get("pvalues", {})
    run = "interpolated" if "interpolated" in agg else "reranked"
    if "bm25" not in agg or run not in agg:
        return []
    measure = next(iter(agg[run]))
    value, base = agg[run][measure], agg["bm25"][measure]
    tests = pv.get(run, {}).get(measure, {})
    p = f", {', '.join(f'{t} p = {v:.3g}' for t, v in tests.items())}" if tests else ""
    n = len(metrics.get("query_ids", [])) or "its"
    return [f"- On the judged split `{split}` ({n} queries): {measure} {value:.4f} against BM25 {base:.4f}, "
            f"{value - base:+.4f}{p}."]


def _generated_docs(info: dict[str, Any], asked: Any) -> Any:
    """The documents queries were written for: the generate stage's count (a collection smaller than
    ``n_docs`` gives all of its documents), else the configured ``n_docs``."""
    for t in info.get("timings", []):
        if t["stage"] == "generate" and isinstance(t.get("summary"), dict) and "n_docs" in t["summary"]:
            return t["summary"]["n_docs"]
    return asked


def _fusion(fusion: dict[str, Any] | None) -> list[str]:
    """The tuning set's view: BM25 (alpha 0), the reranker alone (alpha 1), and the chosen fusion."""
    if not fusion:
        return []
    table = fusion.get("table") or {}
    alpha = fusion.get("alpha")
    where = fusion.get("tuned_on")
    measure = fusion.get("measure", "nDCG@10")
    bm25, model, fused = table.get("0"), table.get("1"), table.get(f"{alpha:g}") if alpha is not None else None
    lines = [f"## Fusion, tuned on `{where}` ({fusion.get('queries')} queries)", "",
             f"| run | {measure} on `{where}` |", "|---|---|"]
    for name, value in (("bm25", bm25), ("reranker alone", model), (f"fusion, alpha = {alpha}", fused)):
        if value is not None:
            lines.append(f"| {name} | {value:.4f} |")
    lines.append("")
    if bm25 is not None and model is not None and model <= bm25:
        lines += [f"The reranker alone does **not** beat BM25 on `{where}` ({model:.4f} against {bm25:.4f}).", ""]
    seen = fusion.get("selection_pseudo_dev") or {}
    if seen:
        chosen = fusion.get("selected_model")
        figures = ", ".join(f"{name} {value:.4f}" for name, value in seen.items())
        lines += [f"Model selection on `{where}` (fused, each at its weight): trained vs start checkpoint: "
                  f"{figures}; reranking with the **{chosen}** model: {fusion.get('reason', '')}.", ""]
    return lines


def _html(markdown_text: str, info: dict[str, Any], images: list[Path]) -> str:
    """A self-contained HTML page (tables and images; no Markdown library needed)."""
    body = [f"<h1>inpars report: {html.escape(info['run_dir'])}</h1>"]
    metrics = info.get("metrics") or {}
    agg = metrics.get("aggregate", {})
    if agg:
        measures = list(next(iter(agg.values())).keys())
        body.append("<h2>Effectiveness</h2><table><tr><th>run</th>" + "".join(
            f"<th>{html.escape(m)}</th>" for m in measures) + "</tr>")
        pv = metrics.get("pvalues", {})
        for run, vals in agg.items():
            cells = []
            for m in measures:
                cell = f"{vals.get(m, float('nan')):.4f}"
                tests = pv.get(run, {}).get(m, {})
                if tests:
                    cell += " <small>(" + ", ".join(f"{k} p={v:.3g}" for k, v in tests.items()) + ")</small>"
                cells.append(f"<td>{cell}</td>")
            body.append(f"<tr><td>{html.escape(run)}</td>{''.join(cells)}</tr>")
        body.append("</table>")
    for img in images:
        body.append(f'<p><img src="{html.escape(img.name)}" alt="{html.escape(img.stem)}"></p>')
    # The rest of the Markdown, verbatim.
    rest = markdown_text.split("## Filtering", 1)
    if len(rest) == 2:
        body.append("<pre>" + html.escape("## Filtering" + rest[1]) + "</pre>")
    style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>inpars report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"


def build_report(run_dir: str | Path) -> Path:
    """(Re)build ``<run_dir>/09-report/report.md`` and ``report.html``; returns the Markdown path."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise InputError("not a run folder of 'inpars run' (no config.json); give the run_dir of a run", path=run_dir)
    out = stage_dir(run_dir, "report")
    out.mkdir(parents=True, exist_ok=True)
    info = collect(run_dir)
    images: list[Path] = []
    metrics = info.get("metrics")
    if metrics:
        measures = list(next(iter(metrics.get("aggregate", {}).values()), {}).keys())
        baseline = metrics.get("baseline") or "bm25"
        first = measures[0] if measures else "nDCG@10"
        images += plot_per_query(metrics, first, baseline, out)
        by_stage = plot_by_stage(metrics, measures, out)
        if by_stage:
            images.append(by_stage)
    md = _markdown(info, images)
    with atomic_write(_output({"report": out}, "report", "markdown")) as f:
        f.write(md + "\n")
    with atomic_write(_output({"report": out}, "report", "html")) as f:
        f.write(_html(md, info, images))
    write_json(out / MANIFEST, {"stage": "report", "files": sorted(p.name for p in out.iterdir())})
    path = _output({"report": out}, "report", "markdown")
    log.info("report written to %s", path)
    return path
