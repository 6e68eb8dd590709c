"""The stage table of ``inpars run``: what each stage reads, writes and decides its identity from.

Each :class:`Stage` declares

- ``section``: the config section it is driven by (its parameter object);
- ``inputs``: named outputs of earlier stages (``(stage, key)`` pairs from :data:`inpars.layout.OUTPUTS`)
  or extra files resolved from the config (``extra_inputs``);
- ``identity``: what, beyond the section's :func:`~inpars.fingerprint.identity`, decides its result
  (seed, query ids, ...);
- ``run(ctx, folder)``: the library call, returning a JSON-able summary.

:func:`inpars.pipeline.run_pipeline` walks this table once; caching, resuming and ``--from``/``--until``/
``--force`` are handled there, not here. A new stage is one function and one row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inpars.config import PipelineConfig, TrainConfig
from inpars.datasets import Dataset, read_run_dict, write_run
from inpars.decision import decide
from inpars.evaluation import evaluate_dataset
from inpars.families import detect_model_type
from inpars.filter import filter_queries, load_records
from inpars.fingerprint import identity, item_seed
from inpars.fusion import TuneSet, fuse, tuning_qrels
from inpars.generate import generate_queries
from inpars.io import atomic_write, write_json, write_jsonl
from inpars.layout import OUTPUTS, output_path
from inpars.manifest import Split, StageResult
from inpars.models import resolve_model
from inpars.negatives import mine_negatives
from inpars.rerank import load_scorer
from inpars.rerank.run import rerank_run
from inpars.retrieval import get_index, retrieve
from inpars.scoring.base import release
from inpars.summary import as_dict
from inpars.training import saved_model_path, train_reranker

log = logging.getLogger(__name__)

#: Name of the held-out synthetic queries that stand in for a labelled tuning split.
PSEUDO_DEV = "pseudo-dev"
#: Name of a collection's own queries when no split judges them (file names of the ranked runs).
UNJUDGED = "queries"


def label_splits(cfg: PipelineConfig) -> list[str]:
    """The judgement splits a run reads outside evaluation: only those its config names (opt-in)."""
    named = {cfg.dataset.train_split, cfg.rerank.tune_split if cfg.rerank.interpolate else None}
    return sorted(s for s in named if s)


@dataclass
class Context:
    """What every stage of one run shares: the config, the dataset, the run folder, the query ids."""

    cfg: PipelineConfig
    ds: Dataset
    run_dir: Path
    eval_ids: list[str]
    tune_ids: list[str]
    #: the judged split evaluated (``dataset.eval_split``, or ``test`` where judged); None: no evaluation,
    #: and ``eval_ids`` are the collection's own queries (``queries.jsonl``), ranked but never scored
    eval_split: str | None = "test"
    results: dict[str, StageResult] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        """Whether the ranked queries have judgements, so that the evaluate stage runs."""
        return self.eval_split is not None

    @property
    def query_set(self) -> str:
        """The name the ranked queries' files carry: the judged split, or ``queries`` (the collection's own
        queries, without judgements)."""
        return self.eval_split or UNJUDGED

    def eval_queries(self) -> dict[str, str]:
        """The texts of the ranked queries (ids only are read from a split's judgements)."""
        texts = self.ds.queries(self.eval_split) if self.eval_split else self.ds.queries()
        return {q: texts[q] for q in self.eval_ids if q in texts}

    @property
    def tune_split(self) -> str:
        """The split the fusion weight is tuned on: a labelled split named by the config, else the
        pseudo-dev set of held-out synthetic queries."""
        return self.cfg.rerank.tune_split or PSEUDO_DEV

    @property
    def label_splits(self) -> list[str]:
        return label_splits(self.cfg)

    @property
    def pseudo_dev(self) -> bool:
        """Whether the fusion weight is tuned on held-out synthetic queries (the label-free default)."""
        return self.cfg.rerank.interpolate and not self.cfg.rerank.tune_split

    @property
    def index_dir(self) -> Path:
        """The BM25 index shared by retrieve, filter and negatives (built once per run folder)."""
        return self.run_dir / "bm25-index"

    @property
    def training(self) -> bool:
        """Whether this run trains its reranker (no ``rerank.model`` given)."""
        return self.cfg.rerank.model is None

    @property
    def synthesizing(self) -> bool:
        """Whether this run writes synthetic queries: to train on, or to tune the fusion on."""
        return self.training or self.pseudo_dev

    def out(self, stage: str, key: str) -> Path:
        """The path of a declared output of ``stage`` in this run."""
        return output_path(self.run_dir, stage, key, eval_split=self.query_set, tune_split=self.tune_split,
                           depth=self.cfg.rerank.depth)

    def model(self) -> tuple[str, str | None]:
        """The reranker checkpoint and its declared type: the trained one, or ``rerank.model``."""
        if self.training:
            return str(saved_model_path(self.out("train", "model").parent)), self.cfg.train.model_type
        return str(self.cfg.rerank.model), self.cfg.rerank.model_type


@dataclass(frozen=True)
class Stage:
    name: str
    section: str | None
    run: Callable[[Context, Path], Any]
    inputs: tuple[tuple[str, str], ...] = ()
    identity: Callable[[Context], Mapping[str, Any]] = lambda ctx: {}
    extra_inputs: Callable[[Context], Mapping[str, Path]] = lambda ctx: {}
    enabled: Callable[[Context], bool] = lambda ctx: True
    #: why a disabled stage does not run, said once to the user (None: nothing worth saying)
    skipped: Callable[[Context], str | None] = lambda ctx: None
    #: settings of the section whose increase extends the finished outputs (see run_stage's ``grow``),
    #: when ``growable(ctx)`` says the current config allows it (by default it does; it also gates ``reuses``)
    grows: tuple[str, ...] = ()
    #: settings of the section whose change (any value) still lets the stage start from a copy of its
    #: finished outputs, which the stage reuses as far as they hold (train: ``average_start`` is applied
    #: after the last step, so the finished run's last checkpoint gives the new average without training)
    reuses: tuple[str, ...] = ()
    growable: Callable[[Context], bool] = lambda ctx: True

    def grow(self, ctx: Context) -> Split | None:
        """The ``grow`` of :func:`inpars.manifest.run_stage` (:meth:`split_growth`), or ``None`` when nothing
        may grow."""
        if not (self.grows or self.reuses) or self.section is None or not self.growable(ctx):
            return None
        return self.split_growth

    def split_growth(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A config identity of this stage (as its manifest records it) without its growable and reusable
        settings, and the growable ones' values. Raises ``KeyError`` when a growable setting is missing."""
        assert self.section is not None
        section = dict(config[self.section])
        sizes = {name: section.pop(name) for name in self.grows}
        for name in self.reuses:  # an added_field at its default is absent from the identity
            section.pop(name, None)
        return {**config, self.section: section}, sizes

    def config_identity(self, ctx: Context) -> dict[str, Any]:
        """The stage's section minus runtime-only fields, plus its declared extras."""
        out: dict[str, Any] = {}
        if self.section is not None:
            out[self.section] = identity(getattr(ctx.cfg, self.section))
        out.update(self.identity(ctx))
        return out

    def input_paths(self, ctx: Context) -> dict[str, Path]:
        paths = {key: ctx.out(stage, key) for stage, key in self.inputs}
        paths.update(self.extra_inputs(ctx))
        return paths

    @property
    def outputs(self) -> dict[str, str]:
        return OUTPUTS[self.name]


# --- the stages ---------------------------------------------------------------------------------------


def _retrieve(ctx: Context, folder: Path) -> dict[str, Any]:
    """BM25 runs of the ranked queries and of a labelled tuning split; the index is built in any case (the
    run's ranker searches it)."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    index = get_index(ctx.ds, ctx.index_dir, **ctx.cfg.retrieve.index_params())
    out["index"] = {"documents": len(index), "seconds": round(time.perf_counter() - t, 2)}
    tune = ctx.ds.queries(ctx.tune_split) if ctx.tune_ids else {}
    for name, queries, key in ((ctx.query_set, ctx.eval_queries(), "eval_run"),
                               (ctx.tune_split, {q: tune[q] for q in ctx.tune_ids if q in tune}, "tune_run")):
        if not queries:
            continue
        t = time.perf_counter()
        retrieve(ctx.ds, queries=queries, index_dir=ctx.index_dir, out=ctx.out("retrieve", key),
                 **ctx.cfg.retrieve.model_dump())
        out[name] = {"queries": len(queries), "seconds": round(time.perf_counter() - t, 2)}
    return out


def _generate(ctx: Context, folder: Path) -> dict[str, Any]:
    return as_dict(generate_queries(ctx.ds, ctx.out("generate", "queries"), seed=ctx.cfg.seed,
                                    train_split=ctx.cfg.dataset.train_split, **ctx.cfg.generate.model_dump()))


def _filter(ctx: Context, folder: Path) -> dict[str, Any]:
    return as_dict(filter_queries(ctx.out("generate", "queries"), ctx.out("filter", "filtered"), dataset=ctx.ds,
                                  seed=ctx.cfg.seed, index_dir=ctx.index_dir, bm25=ctx.cfg.retrieve.index_params(),
                                  **ctx.cfg.filter.model_dump()))


def _negatives(ctx: Context, folder: Path) -> dict[str, Any]:
    records = load_records(ctx.out("filter", "filtered"), ctx.ds)
    held_docs: set[str] = set()
    n_held = 0
    if ctx.pseudo_dev:
        # The held-out documents are drawn from everything generated, and their queries pass the always-on
        # checks only (not the filter steps): the pseudo-dev set is the same whatever the filter, so the
        # settings it compares are compared on the same queries. A run that trains nothing (a given
        # rerank.model: the quick recipe) holds out every document it wrote queries for.
        generated = load_records(ctx.out("generate", "queries"), ctx.ds)
        held_docs = holdout_docs({r.doc_id for r in generated}, ctx.cfg.rerank.tune_queries, ctx.cfg.seed,
                                 share=0.25 if ctx.training else 1.0)
        fc = ctx.cfg.filter
        n_held = filter_queries([r for r in generated if r.doc_id in held_docs], ctx.out("negatives", "pseudo_dev"),
                                dataset=ctx.ds, steps=[], seed=ctx.cfg.seed, min_words=fc.min_words,
                                max_words=fc.max_words, copy_threshold=fc.copy_threshold, index_dir=ctx.index_dir,
                                bm25=ctx.cfg.retrieve.index_params()).n_kept
    else:
        write_jsonl(ctx.out("negatives", "pseudo_dev"), [])
    if not ctx.training:
        write_jsonl(ctx.out("negatives", "train"), [])
        return {"examples": 0, "pseudo_dev_docs": len(held_docs), "pseudo_dev_queries": n_held}
    train = [r for r in records if r.doc_id not in held_docs]
    summary = as_dict(mine_negatives(train, ctx.out("negatives", "train"), dataset=ctx.ds, seed=ctx.cfg.seed,
                                     index_dir=ctx.index_dir, bm25=ctx.cfg.retrieve.index_params(),
                                     qrels_split=ctx.cfg.dataset.train_split, **ctx.cfg.negatives.model_dump()))
    return {**summary, "pseudo_dev_docs": len(held_docs), "pseudo_dev_queries": n_held}


def holdout_docs(doc_ids: set[str], n_docs: int, seed: int, share: float = 0.25) -> set[str]:
    """``n_docs`` of ``doc_ids`` (a seeded choice per document id, independent of their order), but never
    more than ``share`` of them (a quarter: the rest are trained on): the documents whose queries form the
    pseudo-dev set.

    >>> held = holdout_docs(set("abcdefgh"), 5, seed=1)
    >>> len(held), held <= set("abcdefgh"), held == holdout_docs(set("hgfedcba"), 5, seed=1)
    (2, True, True)
    """
    docs = sorted(doc_ids, key=lambda d: (item_seed(seed, "pseudo-dev", d), d))
    return set(docs[: min(n_docs, int(len(docs) * share))])


def pseudo_dev_set(ctx: Context, folder: Path) -> Any:
    """The tuning set of a label-free run: held-out synthetic queries, each with its source document as the
    one relevant document, and their BM25 first stage."""
    tune = synthetic_tune_set(ctx.ds, ctx.out("negatives", "pseudo_dev"), ctx.index_dir,
                              ctx.cfg.retrieve.model_dump())
    write_run(folder / f"bm25.{PSEUDO_DEV}.trec", tune.first, tag="bm25")
    return tune


def synthetic_tune_set(ds: Dataset, path: Path, index_dir: Path, retrieve_options: Mapping[str, Any]) -> Any:
    """A :class:`~inpars.fusion.TuneSet` of the synthetic queries in ``path`` (query id
    ``<doc_id>-<query_index>``), each with its source document as the one relevant document, and their BM25
    first stage (``retrieve_options``: a :class:`~inpars.config.RetrieveConfig` dump)."""
    records = load_records(path, ds)
    queries = {f"{r.doc_id}-{r.query_index}": r.query for r in records}
    first = retrieve(ds, queries=queries, index_dir=index_dir, **retrieve_options)
    # a query BM25 finds nothing for (only stopwords) scores 0 for every candidate: no evidence, left out
    kept = {q: t for q, t in queries.items() if first.get(q)}
    if len(kept) < len(queries):
        log.info("%d synthetic tuning queries without an indexable term left out", len(queries) - len(kept))
    qrels = {f"{r.doc_id}-{r.query_index}": {r.doc_id: 1} for r in records if f"{r.doc_id}-{r.query_index}" in kept}
    return TuneSet(first={q: first[q] for q in kept}, queries=kept, qrels=qrels)


def _train(ctx: Context, folder: Path) -> dict[str, Any]:
    return as_dict(train_reranker(ctx.out("negatives", "train"), folder, seed=ctx.cfg.seed, threads=ctx.cfg.threads,
                                  **ctx.cfg.train.model_dump()))


def _rerank(ctx: Context, folder: Path) -> dict[str, Any]:
    """Decide on the tuning set which model reranks and at what fusion weight (:func:`inpars.decision.decide`),
    rerank the ranked queries with that, and write ``fusion.json`` (the decision and its evidence) and
    ``ranker.json`` (what ``inpars search`` applies to new queries)."""
    rc = ctx.cfg.rerank
    loaders = _model_loaders(ctx)
    tune = _tune_set(ctx, folder)
    out: dict[str, Any] = {}
    chosen, alpha = next(iter(loaders)), rc.alpha
    scorer = None
    if tune is not None:
        decision, fits = decide(ctx.ds, tune, loaders, depth=rc.depth, alphas=rc.alphas, alpha=rc.alpha,
                                min_queries=rc.min_decision_queries, max_p=rc.decision_p, seed=ctx.cfg.seed,
                                where=ctx.tune_split)
        chosen, alpha, scorer = decision.model, decision.alpha, fits[decision.model].scorer
        for name, fit in fits.items():
            if name != chosen:
                release(fit.scorer)
        record = {"alpha": alpha, "alpha_source": decision.alpha_source, "table": decision.table,
                  "measure": "nDCG@10", "tuned_on": ctx.tune_split, "queries": decision.evidence["queries"],
                  "supervised": not ctx.pseudo_dev, "model": chosen, "reason": decision.reason,
                  "evidence": decision.evidence}
        if len(fits) > 1:
            record.update(selected_model=chosen, selection_pseudo_dev=decision.candidates,
                          comparison=decision.comparison)
        write_json(ctx.out("rerank", "fusion"), record)
        out.update(alpha=alpha, alpha_table=decision.table, model=chosen, decision=decision.reason)
    queries = ctx.eval_queries()
    if queries:
        scorer = scorer or loaders[chosen]()
        try:
            first = read_run_dict(_first_stage(ctx))
            t0 = time.perf_counter()
            top = rerank_run(ctx.ds, first, None, queries=queries, scorer=scorer, depth=rc.depth,
                             cache=folder / "eval.scores.jsonl")
            seconds = time.perf_counter() - t0
        finally:
            release(scorer)
        pairs = sum(len(v) for v in top.values())
        write_run(ctx.out("rerank", "top"), top, tag="inpars-rerank")
        write_run(ctx.out("rerank", "reranked"), fuse(first, top, None, rc.depth), tag="inpars-rerank")
        if alpha is not None:
            write_run(ctx.out("rerank", "interpolated"), fuse(first, top, alpha, rc.depth),
                      tag=f"inpars-interp-{alpha:g}")
        out.update(pairs=pairs, rerank_seconds=round(seconds, 2), pairs_per_second=round(pairs / max(seconds, 1e-9), 2))
    elif scorer is not None:
        release(scorer)
    write_json(ctx.out("rerank", "ranker"), _ranker_spec(ctx, chosen, alpha))
    return out


def _model_loaders(ctx: Context) -> dict[str, Any]:
    """The candidate rerankers, by name: ``trained`` (the run's model, or ``rerank.model``) and, in a
    label-free training run whose start checkpoint reranks as the trained model does, ``start``."""
    rc = ctx.cfg.rerank
    kw: dict[str, Any] = dict(batch_size=rc.batch_size, max_length=rc.max_length, engine=rc.engine,
                              threads=ctx.cfg.threads, executor=rc.executor, executor_options=rc.executor_options)
    model, model_type = ctx.model()
    loaders: dict[str, Any] = {"trained" if ctx.training else "given": lambda: load_scorer(model, model_type, **kw)}
    start = _comparable_start(ctx) if ctx.pseudo_dev else None
    if start is not None:
        loaders["start"] = lambda: load_scorer(start, model_type, **kw)
    return loaders


def _tune_set(ctx: Context, folder: Path) -> Any:
    """The set the decision is made on: the pseudo-dev set (label-free), a labelled split's queries
    (``rerank.tune_split``), or None without fusion."""
    if ctx.pseudo_dev:
        return pseudo_dev_set(ctx, folder)
    if not ctx.cfg.rerank.interpolate:
        return None
    tune_first = read_run_dict(ctx.out("retrieve", "tune_run"))
    tune_texts = ctx.ds.queries(ctx.tune_split)
    return TuneSet(first=tune_first, queries={q: tune_texts[q] for q in tune_first},
                   qrels=tuning_qrels(ctx.ds, ctx.tune_split))


def _ranker_spec(ctx: Context, chosen: str, alpha: float | None) -> dict[str, Any]:
    """``ranker.json``: the first stage, the chosen model and the fusion weight, with paths relative to the
    run folder where they lie inside it (the folder can be moved)."""
    rc = ctx.cfg.rerank
    model, model_type = ctx.model()
    if chosen == "start":
        model = ctx.cfg.train.model
    elif Path(model).exists():
        path = Path(model).resolve()
        root = ctx.run_dir.resolve()
        model = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return {
        "format": 1, "dataset": ctx.cfg.dataset.name,
        "first_stage": {"index": ctx.index_dir.name, **ctx.cfg.retrieve.model_dump()},
        "model": model, "model_choice": chosen, "model_type": model_type, "max_length": rc.max_length,
        "engine": rc.engine, "depth": rc.depth, "alpha": alpha,
    }


def _comparable_start(ctx: Context) -> str | None:
    """The start checkpoint of a label-free training run when it can rerank as the trained model does
    (same family: e.g. all-MiniLM-L6-v2 for a bi-encoder, not for a cross-encoder, whose head it lacks)."""
    if not (ctx.training and ctx.cfg.rerank.select_start):
        return None

    start = resolve_model(ctx.cfg.train.model)
    try:
        same = detect_model_type(start) == ctx.cfg.train.model_type
    except (OSError, ValueError):  # a start the transformers config reader cannot read: no comparison
        return None
    return start if same else None


def _first_stage(ctx: Context) -> Path:
    given = ctx.cfg.rerank.first_stage
    return Path(given) if given else ctx.out("retrieve", "eval_run")


def _evaluated_runs(ctx: Context) -> dict[str, Path]:
    runs = {"bm25": ctx.out("retrieve", "eval_run"), "reranked": ctx.out("rerank", "reranked")}
    if ctx.cfg.rerank.interpolate:
        runs["interpolated"] = ctx.out("rerank", "interpolated")
    return runs


def _evaluate(ctx: Context, folder: Path) -> dict[str, Any]:
    """The only stage that reads the evaluation split's judgements."""
    assert ctx.eval_split is not None  # enabled only when judged
    res = evaluate_dataset(ctx.ds, ctx.eval_split, {k: read_run_dict(v) for k, v in _evaluated_runs(ctx).items()},
                           query_ids=ctx.eval_ids, seed=ctx.cfg.seed, **ctx.cfg.evaluate.model_dump())
    write_json(ctx.out("evaluate", "metrics"), res.to_json())
    with atomic_write(ctx.out("evaluate", "markdown")) as f:
        f.write(res.to_markdown() + "\n")
    with atomic_write(ctx.out("evaluate", "text")) as f:
        f.write(res.to_text() + "\n")
    return {"aggregate": res.to_json().get("aggregate", {})}


def _model_input(ctx: Context) -> dict[str, Path]:
    model, _ = ctx.model()
    return {"model": Path(model)} if Path(model).exists() else {}


def _rerank_inputs(ctx: Context) -> dict[str, Path]:
    paths = {**_model_input(ctx)}
    if ctx.eval_ids:
        paths["first_stage"] = _first_stage(ctx)
    if ctx.pseudo_dev:
        paths["pseudo_dev"] = ctx.out("negatives", "pseudo_dev")
    elif ctx.cfg.rerank.interpolate:
        paths["tune_first_stage"] = ctx.out("retrieve", "tune_run")
    return paths


def _training(ctx: Context) -> bool:
    return ctx.training


def _synthesizing(ctx: Context) -> bool:
    return ctx.synthesizing


#: The pipeline, in order. ``report`` is rebuilt by the pipeline after every invocation (it reads the
#: declared outputs of the others) and has no row here.
TABLE: tuple[Stage, ...] = (
    Stage("retrieve", "retrieve", _retrieve,
          identity=lambda ctx: {"eval": ctx.eval_ids, "tune": ctx.tune_ids}),
    Stage("generate", "generate", _generate, enabled=_synthesizing,
          identity=lambda ctx: {"seed": ctx.cfg.seed, "train_split": ctx.cfg.dataset.train_split},
          # a larger random sample contains the smaller one: more documents extend the queries file
          grows=("n_docs",), growable=lambda ctx: ctx.cfg.generate.doc_selection == "random"),
    Stage("filter", "filter", _filter, inputs=(("generate", "queries"),), enabled=_synthesizing,
          identity=lambda ctx: {"bm25": ctx.cfg.retrieve.index_params(), "seed": ctx.cfg.seed}),
    Stage("negatives", "negatives", _negatives, inputs=(("filter", "filtered"), ("generate", "queries")),
          enabled=_synthesizing,
          identity=lambda ctx: {"retrieve": identity(ctx.cfg.retrieve), "seed": ctx.cfg.seed,
                                "checks": {k: v for k, v in identity(ctx.cfg.filter).items() if k != "steps"},
                                "pseudo_dev": ctx.cfg.rerank.tune_queries if ctx.pseudo_dev else 0,
                                # a run that trains nothing holds out all and mines nothing (absent: trains)
                                **({} if ctx.training else {"training": False}),
                                "qrels_split": ctx.cfg.dataset.train_split}),
    Stage("train", "train", _train, inputs=(("negatives", "train"),), enabled=_training,
          identity=lambda ctx: {"seed": ctx.cfg.seed},
          # settings applied after the last step: another value re-uses the finished run's last checkpoint
          reuses=TrainConfig.AFTER_TRAINING),
    Stage("rerank", "rerank", _rerank, extra_inputs=_rerank_inputs,
          identity=lambda ctx: {"model_type": ctx.model()[1], "eval": ctx.eval_ids, "seed": ctx.cfg.seed,
                                "retrieve": identity(ctx.cfg.retrieve), "tune": ctx.tune_split}),
    Stage("evaluate", "evaluate", _evaluate, extra_inputs=_evaluated_runs, enabled=lambda ctx: ctx.judged,
          skipped=lambda ctx: "the collection has no judged split (no qrels/test.tsv and no dataset.eval_split): "
          "nothing to score; the run's ranker is in 06-rerank/ranker.json",
          identity=lambda ctx: {"split": ctx.eval_split, "eval": ctx.eval_ids, "seed": ctx.cfg.seed}),
)
